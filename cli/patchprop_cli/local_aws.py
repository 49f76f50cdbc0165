"""The AWS side of patchprop on one machine: moto's server, the template's resources, and the
template's event sources (API routes, SQS mappings, EventBridge rules) delivered to the same
handlers Lambda runs."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from patchprop_cli.lambdas import (
    Delivery,
    Handler,
    LocalContext,
    api_event,
    deliver_sqs,
    eventbridge_event,
    load_handler,
)
from patchprop_cli.registry_server import free_port, port_in_use
from patchprop_cli.template import REGION, Stack, provision, queue_arn

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


def subscribe_queue(
    sqs: Any, sns: Any, topic_arn: str, name: str, filter_policy: dict[str, Any] | None = None
) -> tuple[str, str]:
    """A new SQS queue subscribed to `topic_arn` (filtered on message attributes if asked)."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = queue_arn(sqs, url)
    attributes = {"FilterPolicy": json.dumps(filter_policy), "FilterPolicyScope": "MessageAttributes"}
    sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes=attributes if filter_policy else {}
    )
    return url, arn


@dataclass
class Route:
    method: str
    resource: str  # e.g. /webhooks/dockerhub/{token}
    function: str
    pattern: re.Pattern[str] = field(repr=False, default=re.compile(""))

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None


def _route(method: str, resource: str, function: str) -> Route:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(resource))
    return Route(method.upper(), resource, function, re.compile(regex))


def matches(pattern: Any, value: Any) -> bool:
    """EventBridge pattern matching, for the parts patchprop's rules use (exact values, nesting)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(matches(p, value.get(k)) for k, p in pattern.items())
    if isinstance(pattern, list):
        values = value if isinstance(value, list) else [value]
        return any(v in pattern for v in values)
    return bool(pattern == value)


class LocalAws:
    """moto's server on 127.0.0.1 with the template's resources, and its event sources wired."""

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
        self.stack = provision(self.parameters, endpoint_url=self.endpoint_url)
        for function in self.stack.of_type("AWS::Serverless::Function"):
            env = {**self.stack.function_env(function), **self.env}
            self._saved_env.update({k: os.environ.get(k) for k in env if k not in self._saved_env})
            os.environ.update(env)
        return self.stack

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        for key, value in self._saved_env.items():  # leave the process as it was found
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

    def __enter__(self) -> LocalAws:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=REGION)  # type: ignore[call-overload]

    # ---- invoking handlers as Lambda would ------------------------------------------

    def handler(self, function: str) -> Handler:
        if function not in self._handlers:
            self._handlers[function] = load_handler(self._stack.function_dir(function))
        return self._handlers[function]

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        with self._function_env(function):
            return self.handler(function)(event, LocalContext(function_name=function))

    @contextmanager
    def _function_env(self, function: str) -> Iterator[None]:
        env = {**self._stack.function_env(function), **self.env}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    @property
    def _stack(self) -> Stack:
        if self.stack is None:
            raise RuntimeError("LocalAws is not started")
        return self.stack

    # ---- event sources read from the template ----------------------------------------

    def routes(self) -> list[Route]:
        return [_route(p["Method"], p["Path"], fn) for fn, p in self._stack.events("Api")]

    def call_api(
        self,
        method: str,
        path: str,
        body: str | None,
        headers: dict[str, str] | None = None,
        query: dict[str, list[str]] | None = None,
    ) -> dict[str, Any]:
        """An HTTP request turned into the API Gateway proxy event of the matching route."""
        for route in self.routes():
            params = route.match(method.upper(), path)
            if params is not None:
                event = api_event(method.upper(), path, route.resource, params, body, headers, query=query)
                return dict(self.invoke(route.function, event))
        return {
            "statusCode": 404,
            "body": '{"error": "no such route"}',
            "headers": {"Content-Type": "application/json"},
        }

    def poll_sqs(self) -> dict[str, Delivery]:
        """One poll of every SQS event-source mapping in the template."""
        sqs = self.client("sqs")
        done = {}
        for function, props in self._stack.events("SQS"):
            queue = self._stack.queue_logical_id(props["Queue"])
            with self._function_env(function):
                done[queue] = deliver_sqs(
                    sqs,
                    self._stack.refs[queue],
                    props["Queue"],
                    self.handler(function),
                    batch_size=int(props.get("BatchSize", 10)),
                    function_name=function,
                )
        return done

    def drain(self, rounds: int = 100) -> int:
        """Poll every queue until a whole round delivers nothing; returns messages delivered."""
        total = 0
        for _ in range(rounds):
            delivered = sum(d.received for d in self.poll_sqs().values())
            if not delivered:
                break
            total += delivered
        return total

    def put_event(
        self, source: str, detail_type: str, detail: dict[str, Any], resources: list[str] | None = None
    ) -> list[tuple[str, Any]]:
        """Deliver an event to every function whose EventBridge rule matches it."""
        event = eventbridge_event(source, detail_type, detail, resources)
        answers = []
        for function, props in self._stack.events("EventBridgeRule"):
            if matches(props["Pattern"], event):
                answers.append((function, self.invoke(function, event)))
        return answers

    def run_schedules(self) -> list[tuple[str, Any]]:
        """Fire every scheduled event once (EventBridge schedules do not fire in moto)."""
        answers = []
        for kind in ("ScheduleV2", "Schedule"):
            for function, _props in self._stack.events(kind):
                event = eventbridge_event("aws.scheduler", "Scheduled Event", {})
                answers.append((function, self.invoke(function, event)))
        return answers
