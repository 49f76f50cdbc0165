"""The local API Gateway: the template's REST routes served over HTTP on 127.0.0.1, each request
turned into the API Gateway proxy event of its route and handed to the route's function.

Every method a route of the template names is served (POST, GET, PATCH, DELETE, ...); a path no
route matches answers 404, a routed path with another method 405; a function that raises answers
502, as API Gateway does. Local-only paths (the registry's notifications) can be added as POST
hooks: they are not in the template, so they take only requests with the per-start `hook_secret`
(`Authorization: Bearer <secret>`), and a body that is not a JSON object is a 400.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from patchprop_local.fairlock import HandlerLock
from patchprop_local.lambdas import api_event
from patchprop_local.template import Stack

if TYPE_CHECKING:
    from patchprop_local.aws import LocalAws

Hook = Callable[[dict[str, Any]], None]  # a local POST path: its JSON body; ValueError: a 400
logger = logging.getLogger(__name__)
# Answered with JSON (404, 405) when no route takes them, rather than http.server's HTML 501.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


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


def routes_of(stack: Stack) -> list[Route]:
    """Every `Api` event of the template's functions, as a route."""
    found = []
    for function, props in stack.events("Api"):
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(props["Path"]))
        found.append(Route(props["Method"].upper(), props["Path"], function, re.compile(regex)))
    return found


class BurstServer(ThreadingHTTPServer):
    """One thread a request, and a listen backlog for bursts: with http.server's 5, a burst of
    webhooks overflowed the queue and a sender got its connection reset."""

    request_queue_size = 1024  # the kernel caps it at net.core.somaxconn
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A sender that hung up before its answer (the registry's notifier times out while a slow
        handler, e.g. the base check's syft, holds the lock) is not an error: it sends again."""
        if not isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            super().handle_error(request, client_address)


class GatewayStopping(RuntimeError):
    """The stack is stopping: a request that arrives now is answered 503 (its sender retries)."""


def _json_answer(status: int, error: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "body": json.dumps({"error": error}),
        "headers": {"Content-Type": "application/json"},
    }


class Gateway:
    """The routes of `aws`'s template on 127.0.0.1:`port` (0: a free one); start() it, then stop() it."""

    def __init__(
        self,
        aws: LocalAws,
        port: int = 0,
        hooks: dict[str, Hook] | None = None,
        invoke_lock: HandlerLock | None = None,
        saved: Callable[[], None] | None = None,
        hook_secret: str | None = None,
    ) -> None:
        self.aws = aws
        self.saved = saved or (lambda: None)  # after each handler: the state is on disk before we answer
        self.routes = aws.routes()
        self.hooks = dict(hooks or {})
        self.hook_secret = hook_secret or secrets.token_urlsafe(32)
        self._lock: HandlerLock = invoke_lock or threading.Lock()  # one handler at a time, like one container
        self._http = BurstServer(("127.0.0.1", port), _handler_for(self))
        self._thread: threading.Thread | None = None
        self.stopping = False  # set by stop(): late requests (a registry's retry) get a 503

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def methods(self) -> set[str]:
        """Every method a route of the template names, and the common ones."""
        return {route.method for route in self.routes} | HTTP_METHODS

    def start(self) -> Gateway:
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="patchprop-local-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping = True
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._http.server_close()

    def call(
        self,
        method: str,
        path: str,
        body: str | None,
        query: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """An HTTP request turned into the API Gateway proxy event of the matching route."""
        method = method.upper()
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                event = api_event(method, path, route.resource, params, body, headers, query=query)
                with self._lock:
                    try:
                        answer = dict(self.aws.invoke(route.function, event))
                    except Exception:  # a Lambda error: API Gateway answers 502, the log tells it
                        logger.exception("%s raised on %s %s", route.function, method, route.resource)
                        return _json_answer(HTTPStatus.BAD_GATEWAY, "Internal server error")
                self.saved()
                return answer
        if any(route.pattern.fullmatch(path) for route in self.routes):
            return _json_answer(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}")
        return _json_answer(HTTPStatus.NOT_FOUND, "no such route")


def _handler_for(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            if gateway.stopping:
                self._answer(HTTPStatus.SERVICE_UNAVAILABLE, {"Retry-After": "5"}, '{"error": "stopping"}')
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else None
            path, _, query = self.path.partition("?")
            hook = gateway.hooks.get(path)
            if hook is not None and self.command == "POST":
                status, error = self._hook(hook, body)
                said = {"error": error} if error else {}
                self._answer(status, {"Content-Type": "application/json"}, json.dumps(said))
                return
            answer = gateway.call(self.command, path, body, parse_qs(query, keep_blank_values=True) or None)
            headers = {
                k: v[0] if isinstance(v, list) else v
                for k, v in {**answer.get("headers", {}), **answer.get("multiValueHeaders", {})}.items()
            }
            self._answer(HTTPStatus(answer["statusCode"]), headers, answer.get("body") or "")

        def _hook(self, hook: Hook, body: str | None) -> tuple[HTTPStatus, str | None]:
            given = self.headers.get("Authorization") or ""
            if not hmac.compare_digest(given.encode(), f"Bearer {gateway.hook_secret}".encode()):
                return HTTPStatus.UNAUTHORIZED, "unauthorized"
            try:
                data = json.loads(body or "")
            except ValueError as exc:
                return HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}"
            if not isinstance(data, dict):
                return HTTPStatus.BAD_REQUEST, "body must be a JSON object"
            try:
                hook(data)
            except ValueError as exc:
                return HTTPStatus.BAD_REQUEST, str(exc)
            except GatewayStopping:  # the stack stopped while it was delivered: the sender retries
                logger.info("notification dropped: the local stack is stopping")
                return HTTPStatus.SERVICE_UNAVAILABLE, "stopping"
            return HTTPStatus.OK, None

        def _answer(self, status: HTTPStatus, headers: dict[str, str], body: str) -> None:
            data = body.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":  # a HEAD answer has the headers of a GET's, and no body
                self.wfile.write(data)

        def __getattr__(self, name: str) -> Any:
            # Any other method (QUERY, PROPFIND...) too: a JSON 404 or 405, never http.server's 501.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:
            # The default access log prints the path, and the webhook's path holds the token.
            return

    # http.server answers 501 to a method without a do_<METHOD>: one for each the routes use
    # (there was none for PATCH once, so `patchprop update` failed against `patchprop local`).
    for method in gateway.methods:
        setattr(Handler, f"do_{method}", Handler._serve)
    return Handler
