"""The AWS side of patchprop on one machine: moto's server with the template's resources, and the
template's functions invoked as Lambda would invoke them (their environment set, one context each)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import requests
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from moto.server import ThreadedMotoServer

from patchprop_local.gateway import Route, routes_of
from patchprop_local.lambdas import Handler, LocalContext, load_handler
from patchprop_local.provision import provision
from patchprop_local.registry_server import free_port, port_in_use
from patchprop_local.template import REGION, Stack

# What boto3 inside the handlers needs to find moto and never reach real AWS.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "patchprop-local",
    "AWS_SECRET_ACCESS_KEY": "patchprop-local",
    "AWS_SESSION_TOKEN": "patchprop-local",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def isolate_from_aws() -> None:
    """Point this process's boto3 at nothing real: fake credentials, no profile, no endpoint."""
    os.environ.update(FAKE_CREDENTIALS)
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(var, None)


@contextmanager
def environment(changes: dict[str, str]) -> Iterator[None]:
    """`changes` set in os.environ for the block, then every variable as it was."""
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        _restore(saved)


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class LocalAws:
    """moto's server on 127.0.0.1 with the template's resources, and the template's functions."""

    def __init__(
        self, parameters: dict[str, Any], port: int | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.parameters = parameters
        self.env = env or {}  # set after the template's, e.g. a quieter LOG_LEVEL
        self.port = port or free_port()
        self.server: ThreadedMotoServer | None = None
        self.stack: Stack | None = None
        self._handlers: dict[str, Handler] = {}
        self._saved_env: dict[str, str | None] = {}

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Stack:
        if port_in_use(self.port):
            raise RuntimeError(f"port {self.port} on 127.0.0.1 is already in use")
        changed = {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint_url}
        self._saved_env = {k: os.environ.get(k) for k in changed}
        os.environ.update(changed)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per AWS call
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        # moto's backends live in this process, and outlive a stopped server: start from empty
        # (a second stack in one process, e.g. the tests, found the first one's tables).
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=30).raise_for_status()
        self.stack = provision(self.parameters, endpoint_url=self.endpoint_url)
        for function in self.stack.of_type("AWS::Serverless::Function"):
            env = self.function_env(function)
            self._saved_env.update({k: os.environ.get(k) for k in env if k not in self._saved_env})
            os.environ.update(env)
        return self.stack

    def stop(self) -> None:
        if self.server is not None:
            # moto keeps its state in the process, not the server: without a reset, the next stack
            # started in this process (the next test module) would find this one's tables.
            with contextlib.suppress(requests.RequestException):
                requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10)
            self.server.stop()
            self.server = None
        _restore(self._saved_env)  # leave the process as it was found
        self._saved_env = {}

    def __enter__(self) -> LocalAws:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=REGION)  # type: ignore[call-overload]

    @property
    def started(self) -> Stack:
        if self.stack is None:
            raise RuntimeError("LocalAws is not started")
        return self.stack

    # ---- invoking handlers as Lambda would ------------------------------------------

    def function_env(self, function: str) -> dict[str, str]:
        """The function's environment from the template, then this stack's own settings."""
        return {**self.started.function_env(function), **self.env}

    def handler(self, function: str) -> Handler:
        if function not in self._handlers:
            self._handlers[function] = _unflushed_metrics_dropped(
                load_handler(self.started.function_dir(function))
            )
        return self._handlers[function]

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        with environment(self.function_env(function)):
            return self.handler(function)(event, LocalContext(function_name=function))

    def routes(self) -> list[Route]:
        """The template's API routes (see gateway.py)."""
        return routes_of(self.started)


EMPTY_FLUSH = "No application metrics to publish"


def _unflushed_metrics_dropped(handler: Handler) -> Handler:
    """The handler, then, when metrics are disabled (`patchprop local` without --verbose), its
    metrics dropped. Powertools keeps disabled metrics in a buffer every Metrics shares, never
    cleared, and prints it anyway once a metric has 100 values: here all functions share one
    process, so the quiet stack printed a JSON line of every function's metrics now and then.
    Its "No application metrics to publish" warning, printed at every empty flush (`patchprop
    local` and `patchprop demo` alike), says nothing when metrics are off: it is filtered."""

    @functools.wraps(handler)
    def run(event: dict[str, Any], context: Any) -> Any:
        if is_metrics_disabled():
            warnings.filterwarnings("ignore", message=EMPTY_FLUSH, category=UserWarning)
        try:
            return handler(event, context)
        finally:
            if is_metrics_disabled():
                Metrics().clear_metrics()

    return run
