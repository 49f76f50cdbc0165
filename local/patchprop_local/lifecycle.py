"""`patchprop local`: the whole system on one machine, on 127.0.0.1 only.

This module starts and stops it, holds the lock that keeps a second one off the same folder, and
writes `.patchprop/local.json` (atomically: a reader never sees half of it). The parts:

- aws.py: moto's server with the tables, queues, topic and secret of template.yaml;
- registry_server.py: a real OCI registry (Debian's docker-registry) under `.patchprop/registry`;
- gateway.py: the REST routes of template.yaml served over HTTP as API Gateway proxy events;
- events.py: the SQS event-source mappings, EventBridge rules and schedules of template.yaml;
- codebuild.py: a local CodeBuild that rebuilds for real with buildah and emits build events;
- registry_bridge.py: the registry's push notifications delivered to the webhook.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patchprop import config, wiring
from patchprop_local.aws import LocalAws
from patchprop_local.codebuild import LocalCodeBuild
from patchprop_local.events import EventPump
from patchprop_local.gateway import Gateway
from patchprop_local.registry_bridge import EVENTS_PATH, RegistryBridge
from patchprop_local.registry_server import LocalRegistry, free_port, port_in_use

STATE_DIR = Path(".patchprop")
DEFAULT_PORTS = {"api": 8780, "aws": 8781, "registry": 8782}

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


def write_state(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON to `path` atomically: a temporary file in the same folder, then a rename."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        try:
            tmp.write(json.dumps(data, indent=2) + "\n")
            tmp.flush()
            os.fsync(tmp.fileno())
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, path)


@dataclass
class LocalStack:
    """Everything `patchprop local` runs; start() it, then stop() it."""

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
        self.gateway: Gateway | None = None
        self.pump: EventPump | None = None
        self.token = ""

    @property
    def state_file(self) -> Path:
        return self.state_dir / "local.json"

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
        # Only the registry we start may post its notifications: a secret of this start, in a header.
        hook_secret = secrets.token_urlsafe(32)
        self.registry = LocalRegistry(
            self.state_dir / "registry",
            port=registry_port,
            notify_url=f"http://127.0.0.1:{api_port}{EVENTS_PATH}",
            notify_headers={"Authorization": f"Bearer {hook_secret}"},
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
        secret = self.aws.client("secretsmanager").get_secret_value(SecretId=stack.refs["WebhookSecret"])
        self.token = json.loads(secret["SecretString"])["current"]
        self.builds = builds = LocalCodeBuild(self.projects, self.state_dir, emit=self._emit_build_event)
        wiring.reset()
        config.env_vars.cache_clear()  # each start has its own resources in the env
        wiring.register_builds("local", lambda: builds)  # the handlers' env says PATCHPROP_BUILDS=local
        self.pump = pump = EventPump(self.aws, self._invoke_lock, self.tell)
        bridge = RegistryBridge(self.registry.address, self.token, self._post, self.tell)
        self.gateway = Gateway(
            self.aws, api_port, {EVENTS_PATH: bridge.deliver}, self._invoke_lock, hook_secret=hook_secret
        ).start()
        self.registry.start()  # after the gateway: its notifications come to us
        self._spawn("events", lambda: pump.run(self._stop))
        interval = self.poll_interval or pump.poll_interval()
        if interval:
            self._spawn("schedules", lambda: pump.run_schedules_every(interval, self._stop))
        info = self.describe()
        write_state(self.state_file, info)
        return info

    def stop(self) -> None:
        """Stop everything this stack started; safe to call twice."""
        self._stop.set()
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        self.pump = None
        if self.builds is not None:
            self.builds.shutdown()
            self.builds = None
        wiring.register_builds("local", None)
        wiring.reset()
        config.env_vars.cache_clear()  # each start has its own resources in the env
        if self.registry is not None:
            self.registry.stop()
            self.registry = None
        if self.aws is not None:
            self.aws.stop()
            self.aws = None
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

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
        assert self.aws is not None and self.registry is not None and self.gateway is not None
        stack = self.aws.started
        api = self.gateway.url
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

    def _post(self, path: str, body: str) -> dict[str, Any]:
        assert self.gateway is not None
        return self.gateway.call("POST", path, body)

    def _emit_build_event(self, detail: dict[str, Any]) -> None:
        """The local CodeBuild's state changes, put on (moto's) EventBridge like CodeBuild does."""
        assert self.aws is not None
        self.tell("build", detail)
        entry = {
            "Source": "aws.codebuild",
            "DetailType": "CodeBuild Build State Change",
            "Detail": json.dumps(detail),
            "Resources": [detail["build-id"]],
        }
        self.aws.client("events").put_events(Entries=[entry])

    # ---- driving it from the demo and the tests -------------------------------------

    def run_schedules(self) -> list[tuple[str, Any]]:
        """Fire every schedule of the template once, now."""
        assert self.pump is not None
        return self.pump.run_schedules()

    def wait_idle(self, timeout: float = 60.0, quiet: float = 1.0) -> bool:
        """Wait until no build runs and no event is delivered for `quiet` seconds."""
        assert self.pump is not None
        deadline = time.monotonic() + timeout
        calm_since: float | None = None
        while time.monotonic() < deadline:
            busy = self.pump.pump_once() or bool(self.builds and self.builds.running())
            now = time.monotonic()
            calm_since = None if busy else (calm_since or now)
            if calm_since is not None and now - calm_since >= quiet:
                return True
            time.sleep(0.1)
        return False
