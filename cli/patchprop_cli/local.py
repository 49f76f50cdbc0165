"""`patchprop local`: the whole system on one machine, on 127.0.0.1 only.

- moto's server for the AWS APIs, with the tables, queues, topic and secret of template.yaml;
- a real OCI registry (Debian's docker-registry), storage under `.patchprop/registry`;
- the REST routes of template.yaml served over HTTP as API Gateway proxy events;
- the SQS event-source mappings, EventBridge rules and schedules of template.yaml delivered to
  the same handlers Lambda runs (rules are created in moto's EventBridge, so moto matches them);
- a local CodeBuild that rebuilds for real with buildah and emits genuine build state changes;
- the registry's push notifications delivered to the webhook as Docker Hub pushes, so a
  rebuilt image that others are built on takes the same path as any patched base.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from patchprop import wiring
from patchprop_cli.local_aws import LocalAws, subscribe_queue
from patchprop_cli.local_builds import LocalCodeBuild
from patchprop_cli.registry_server import LocalRegistry, free_port, port_in_use
from patchprop_cli.template import queue_arn

STATE_DIR = Path(".patchprop")
DEFAULT_PORTS = {"api": 8780, "aws": 8781, "registry": 8782}
REGISTRY_EVENTS_PATH = "/_local/registry-events"
MANIFEST_TYPES = ("manifest", "index")  # media types of a tag push; layers are blobs

Listener = Callable[[str, dict[str, Any]], None]


class LocalStackError(RuntimeError):
    """The local stack cannot start (port taken, tool missing, already running)."""


def choose_port(name: str, wanted: int | None, notes: list[str]) -> int:
    """The wanted port (0: any free one), or the default; if that is taken, a free one, saying which."""
    if wanted == 0:
        return free_port()
    port = wanted or DEFAULT_PORTS[name]
    if not port_in_use(port):
        return port
    if wanted:
        raise LocalStackError(f"port {port} on 127.0.0.1 ({name}) is already in use")
    chosen = free_port()
    notes.append(f"port {port} ({name}) is in use; using {chosen} instead")
    return chosen


def rate_seconds(expression: str) -> float:
    """Seconds between runs of an EventBridge `rate(N unit)` expression."""
    found = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not found:
        raise LocalStackError(f"template.yaml: cannot run schedule {expression!r} locally (only rate(...))")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[found.group(2).rstrip("s")]
    return int(found.group(1)) * unit


@dataclass
class LocalStack:
    """Everything `patchprop local` runs; start() it, then stop() it (or use `with`)."""

    state_dir: Path = STATE_DIR
    ports: dict[str, int | None] = field(default_factory=dict)
    projects: tuple[str, ...] = ("patchprop-rebuild",)
    poll_interval: float | None = None  # None: the template's PollSchedule
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()
        self._lock_file: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._invoke_lock = threading.Lock()  # one handler at a time, like one Lambda container
        self.registry: LocalRegistry | None = None
        self.aws: LocalAws | None = None
        self.builds: LocalCodeBuild | None = None
        self.http: ThreadingHTTPServer | None = None
        self.token = ""
        self._rule_queues: dict[str, tuple[str, str]] = {}  # function -> (queue url, arn)
        self._outcomes: tuple[str, str] | None = None

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> dict[str, Any]:
        api_port = choose_port("api", self.ports.get("api"), self.notes)
        aws_port = choose_port("aws", self.ports.get("aws"), self.notes)
        registry_port = choose_port("registry", self.ports.get("registry"), self.notes)
        self.registry = LocalRegistry(
            self.state_dir / "registry",
            port=registry_port,
            notify_url=f"http://127.0.0.1:{api_port}{REGISTRY_EVENTS_PATH}",
        )
        # Local builds scan only where trivy is installed: an unscanned rebuild is told as
        # "succeeded" rather than failed, unless the caller's env says REQUIRE_SCAN=true.
        env = {"REQUIRE_SCAN": "false", "PATCHPROP_BUILDS": "local", **self.env}
        if shutil.which("trivy") is None:
            self.notes.append(
                "trivy not found: rebuilt images are not scanned, and their outcome is "
                '"succeeded" (not scanned) instead of promoted or blocked'
            )
        self.aws = LocalAws({"RebuildProjects": ",".join(self.projects)}, port=aws_port, env=env)
        stack = self.aws.start()
        self.token = json.loads(
            self.aws.client("secretsmanager").get_secret_value(SecretId=stack.refs["WebhookSecret"])[
                "SecretString"
            ]
        )["current"]
        self.builds = builds = LocalCodeBuild(self.projects, self.state_dir, emit=self._emit_build_event)
        wiring.reset()
        wiring.register_builds("local", lambda: builds)  # the handlers' env says PATCHPROP_BUILDS=local
        self._create_rules()
        self._outcomes = self._subscribe_outcomes()
        self.http = ThreadingHTTPServer(("127.0.0.1", api_port), _handler_for(self))
        self._spawn("http", self.http.serve_forever)
        self.registry.start()  # after the HTTP server: its notifications come to us
        self._spawn("sqs", self._pump_loop)
        self._spawn("schedules", self._schedule_loop)
        info = self.describe()
        (self.state_dir / "local.json").write_text(json.dumps(info, indent=2) + "\n")
        return info

    def stop(self) -> None:
        """Stop everything this stack started; safe to call twice."""
        self._stop.set()
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
            self.http = None
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        if self.builds is not None:
            self.builds.shutdown()
            self.builds = None
        wiring.register_builds("local", None)
        wiring.reset()
        if self.registry is not None:
            self.registry.stop()
            self.registry = None
        if self.aws is not None:
            self.aws.stop()
            self.aws = None
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / "local.json").unlink()
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take_lock(self) -> None:
        lock_path = self.state_dir / "local.lock"
        handle = open(lock_path, "a+")  # noqa: SIM115 - held open for the stack's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            handle.close()
            raise LocalStackError(
                f"another `patchprop local` (pid {pid}) is using {self.state_dir}; stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"patchprop-local-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    # ---- what it tells --------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        assert self.aws is not None and self.aws.stack is not None and self.registry is not None
        assert self.http is not None
        stack = self.aws.stack
        api = f"http://127.0.0.1:{self.http.server_address[1]}"
        return {
            "pid": os.getpid(),
            "api_url": api,
            "webhook_url": f"{api}/webhooks/dockerhub/{self.token}",
            "aws_endpoint_url": self.aws.endpoint_url,
            "region": "us-east-1",
            "registry": self.registry.address,
            "rebuild_projects": list(self.projects),
            "resources": {name: stack.refs[name] for name in sorted(stack.refs)},
        }

    def tell(self, kind: str, data: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(kind, data)

    # ---- handlers, as Lambda would invoke them ----------------------------------------

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        assert self.aws is not None
        with self._invoke_lock:
            return self.aws.invoke(function, event)

    def call_api(
        self, method: str, path: str, body: str | None, query: dict[str, list[str]] | None = None
    ) -> dict[str, Any]:
        assert self.aws is not None
        with self._invoke_lock:
            return self.aws.call_api(method, path, body, query=query)

    def _emit_build_event(self, detail: dict[str, Any]) -> None:
        """The local CodeBuild's state changes, put on (moto's) EventBridge like CodeBuild does."""
        assert self.aws is not None
        self.tell("build", detail)
        self.aws.client("events").put_events(
            Entries=[
                {
                    "Source": "aws.codebuild",
                    "DetailType": "CodeBuild Build State Change",
                    "Detail": json.dumps(detail),
                    "Resources": [detail["build-id"]],
                }
            ]
        )

    def registry_pushed(self, events: list[dict[str, Any]]) -> None:
        """Registry notifications: each tag push goes to the webhook as a Docker Hub push."""
        assert self.registry is not None
        for event in events:
            target = event.get("target", {})
            media_type = str(target.get("mediaType", ""))
            if event.get("action") != "push" or not target.get("tag"):
                continue
            if not any(kind in media_type for kind in MANIFEST_TYPES):
                continue
            body = json.dumps(
                {
                    "push_data": {"tag": target["tag"], "pusher": "local-registry"},
                    "repository": {"repo_name": f"{self.registry.address}/{target['repository']}"},
                }
            )
            answer = self.call_api("POST", f"/webhooks/dockerhub/{self.token}", body)
            self.tell(
                "push",
                {
                    "image": f"{self.registry.address}/{target['repository']}:{target['tag']}",
                    "digest": target.get("digest"),
                    "status": answer["statusCode"],
                    "answer": json.loads(answer.get("body") or "{}"),
                },
            )

    # ---- event sources ------------------------------------------------------------

    def _create_rules(self) -> None:
        """Each EventBridgeRule of the template as a moto rule targeting a delivery queue."""
        assert self.aws is not None and self.aws.stack is not None
        events, sqs = self.aws.client("events"), self.aws.client("sqs")
        for function, props in self.aws.stack.events("EventBridgeRule"):
            url = sqs.create_queue(QueueName=f"patchprop-local-{function}-rule")["QueueUrl"]
            arn = queue_arn(sqs, url)
            events.put_rule(Name=f"patchprop-local-{function}", EventPattern=json.dumps(props["Pattern"]))
            events.put_targets(Rule=f"patchprop-local-{function}", Targets=[{"Id": "deliver", "Arn": arn}])
            self._rule_queues[function] = (url, arn)

    def _subscribe_outcomes(self) -> tuple[str, str]:
        assert self.aws is not None and self.aws.stack is not None
        return subscribe_queue(
            self.aws.client("sqs"),
            self.aws.client("sns"),
            self.aws.stack.refs["OutcomeTopic"],
            "patchprop-local-outcomes",
        )

    def _pump_loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.pump_once()
            except Exception as exc:  # keep the stack up; the handler's own errors are logged
                self.tell("error", {"where": "event delivery", "error": repr(exc)})
                busy = False
            self._stop.wait(0.05 if busy else 0.25)

    def pump_once(self) -> bool:
        """One round of every event source; True if anything was delivered."""
        assert self.aws is not None
        with self._invoke_lock:
            delivered = sum(d.received for d in self.aws.poll_sqs().values())
        sqs = self.aws.client("sqs")
        for function, (url, _arn) in self._rule_queues.items():
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                delivered += 1
                event = json.loads(message["Body"])
                event.setdefault("account", "123456789012")  # moto's rule targets leave it out
                try:
                    self.invoke(function, event)
                except Exception as exc:
                    # Lambda retries async invocations, then sends them to the OnFailure DLQ.
                    self.tell("error", {"where": function, "error": repr(exc)})
                    if int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")) < 3:
                        continue
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if self._outcomes:
            for message in sqs.receive_message(QueueUrl=self._outcomes[0], MaxNumberOfMessages=10).get(
                "Messages", []
            ):
                self.tell("sns", json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self._outcomes[0], ReceiptHandle=message["ReceiptHandle"])
                delivered += 1
        return delivered > 0

    def _schedule_loop(self) -> None:
        assert self.aws is not None and self.aws.stack is not None
        schedules = self.aws.stack.events("ScheduleV2")
        if not schedules:
            return
        interval = self.poll_interval or rate_seconds(schedules[0][1]["ScheduleExpression"])
        while not self._stop.wait(interval):
            try:
                self.run_schedules()
            except Exception as exc:
                self.tell("error", {"where": "schedule", "error": repr(exc)})

    def run_schedules(self) -> list[tuple[str, Any]]:
        assert self.aws is not None
        with self._invoke_lock:
            answers = self.aws.run_schedules()
        self.tell("poll", {"answers": [a for _, a in answers]})
        return answers

    def wait_idle(self, timeout: float = 60.0, quiet: float = 1.0) -> bool:
        """Wait until no build runs and no event is delivered for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        calm_since: float | None = None
        while time.monotonic() < deadline:
            busy = self.pump_once() or bool(self.builds and self.builds.running())
            now = time.monotonic()
            calm_since = None if busy else (calm_since or now)
            if calm_since is not None and now - calm_since >= quiet:
                return True
            time.sleep(0.1)
        return False


def _handler_for(stack: LocalStack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self._serve("POST")

        def do_GET(self) -> None:
            self._serve("GET")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else None
            path, _, query = self.path.partition("?")
            if path == REGISTRY_EVENTS_PATH and method == "POST":
                envelope = json.loads(body or "{}")
                stack.registry_pushed(envelope.get("events", []))
                self._answer(HTTPStatus.OK, {}, "{}")
                return
            answer = stack.call_api(method, path, body, parse_qs(query) or None)
            headers = {
                k: v[0] if isinstance(v, list) else v
                for k, v in {**answer.get("headers", {}), **answer.get("multiValueHeaders", {})}.items()
            }
            self._answer(HTTPStatus(answer["statusCode"]), headers, answer.get("body") or "")

        def _answer(self, status: HTTPStatus, headers: dict[str, str], body: str) -> None:
            data = body.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            # The default access log prints the path, and the webhook's path holds the token.
            return

    return Handler
