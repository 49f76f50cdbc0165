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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patchprop import config, wiring
from patchprop_local import base_reports, leftovers, persist
from patchprop_local.aws import LocalAws
from patchprop_local.codebuild import LocalCodeBuild
from patchprop_local.events import EventPump
from patchprop_local.fairlock import FairLock
from patchprop_local.gateway import Gateway, GatewayStopping
from patchprop_local.ports import LocalStackError, choose_port
from patchprop_local.registry_bridge import EVENTS_PATH, RegistryBridge, ecr_env
from patchprop_local.registry_server import LocalRegistry, release_ports
from patchprop_local.signing import CosignSigner

STATE_DIR = Path(".patchprop")
Listener = Callable[[str, dict[str, Any]], None]


def write_state(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON to `path` atomically: a temporary file in the same folder, then a rename."""
    persist.write_json(path, data)


def _write_snapshot(path: Path, data: dict[str, Any]) -> None:
    persist.write_json(path, data, indent=None)


@dataclass
class LocalStack:
    """Everything `patchprop local` runs; start() it, then stop() it."""

    state_dir: Path = STATE_DIR
    ports: dict[str, int | None] = field(default_factory=dict)
    projects: tuple[str, ...] = ("patchprop-rebuild",)
    poll_interval: float | None = None  # None: the template's PollSchedule
    env: dict[str, str] = field(default_factory=dict)
    # A cosign key (file, awskms:///…, …): each promoted digest is signed with it, and only those.
    signing_key: str | None = None
    notes: list[str] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()
        self._lock_file: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._invoke_lock = FairLock()  # one handler at a time, like one Lambda container
        self.registry: LocalRegistry | None = None
        self.aws: LocalAws | None = None
        self.builds: LocalCodeBuild | None = None
        self.gateway: Gateway | None = None
        self.pump: EventPump | None = None
        self.persister: persist.Persister | None = None
        self.token = ""
        self._held_ports: list[Any] = []  # sockets holding the free ports chosen, until bound

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

    @property
    def saved_state_file(self) -> Path:
        return self.state_dir / "state.json"

    def _start(self) -> dict[str, Any]:
        try:
            saved = persist.load(self.saved_state_file)
        except persist.StateError as exc:
            raise LocalStackError(str(exc)) from None
        self.notes.extend(leftovers.clean(self.state_dir))
        old = (saved or {}).get("ports", {})
        held = self._held_ports
        api_port = choose_port("api", self.ports.get("api"), self.notes, old.get("api"), held)
        aws_port = choose_port("aws", self.ports.get("aws"), self.notes, old.get("aws"), held)
        registry_port = choose_port(
            "registry", self.ports.get("registry"), self.notes, old.get("registry"), held
        )
        # Only the registry we start may post its notifications: a secret of this start, in a header.
        hook_secret = secrets.token_urlsafe(32)
        self.registry = LocalRegistry(
            self.state_dir / "registry",
            port=registry_port,
            notify_url=f"http://127.0.0.1:{api_port}{EVENTS_PATH}",
            notify_headers={"Authorization": f"Bearer {hook_secret}"},
        )
        # Unscanned rebuilds are "succeeded" unless the caller's env says REQUIRE_SCAN=true; base
        # reports are read from the state folder, and syft makes the base's SBOM (base_reports.py).
        env = {**base_reports.local_env(self.state_dir), **ecr_env(self.registry), **self.env}
        if shutil.which("trivy") is None:
            self.notes.append(
                "trivy not found: rebuilt images are not scanned, and their outcome is "
                '"succeeded" (not scanned) instead of promoted or blocked'
            )
        self.aws = LocalAws({"RebuildProjects": ",".join(self.projects)}, port=aws_port, env=env)
        stack = self.aws.start()
        sm = self.aws.client("secretsmanager")
        if saved:  # the same webhook token as before: senders' URLs hold it
            sm.put_secret_value(SecretId=stack.refs["WebhookSecret"], SecretString=saved["secret"])
        secret = sm.get_secret_value(SecretId=stack.refs["WebhookSecret"])["SecretString"]
        self.token = json.loads(secret)["current"]
        self.builds = builds = LocalCodeBuild(self.projects, self.state_dir, emit=self._emit_build_event)
        wiring.reset()
        config.env_vars.cache_clear()  # each start has its own resources in the env
        wiring.register_builds("local", lambda: builds)  # the handlers' env says PATCHPROP_BUILDS=local
        if self.signing_key:
            signer = CosignSigner(self.signing_key, allow_insecure_registry=True)
            wiring.register_signer(lambda: signer)  # called after a tag moved, on its digest
        # The base's SBOM is made before the planner is handed its patch, outside the lock.
        warm = base_reports.warm_sboms(self.state_dir, env.get("BASE_SYFT") or None)
        self.pump = pump = EventPump(
            self.aws, self._invoke_lock, self.tell, saved=self.save, prepare={"PatchQueue": warm}
        )
        ports = {"api": api_port, "aws": aws_port, "registry": registry_port}
        header: dict[str, Any] = {"ports": ports, "token": self.token, "secret": secret}
        tables = [stack.refs[t] for t in stack.of_type("AWS::DynamoDB::Table")]
        self.persister = persist.Persister(
            self.saved_state_file, self._invoke_lock, header, tables, _write_snapshot, self.tell
        )
        if saved:
            counts = persist.restore(saved, self.aws.client("dynamodb"), self.aws.client("sqs"))
            self.notes.append(
                f"restored {counts['items']} items and {counts['messages']} queued messages "
                f"from {self.saved_state_file}"
            )
        self.save()
        bridge = RegistryBridge.of(self.registry.address, self.token, self._post, self.tell, env, self.aws)
        self.gateway = Gateway(
            self.aws,
            api_port,
            {EVENTS_PATH: bridge.deliver},
            self._invoke_lock,
            saved=self.save,
            hook_secret=hook_secret,
        ).start()
        self.registry.start()  # after the gateway: its notifications come to us
        release_ports(self._held_ports)  # all three listen now
        resumed = builds.resume()
        if resumed["rerun"] or resumed["retold"]:
            self.notes.append(
                f"builds cut off by the last stop, run again: {len(resumed['rerun'])}; "
                f"build ends told again: {len(resumed['retold'])}"
            )
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
            self.builds.shutdown(interrupt=True)  # they run again on the next start
            self.builds = None
        if self.persister is not None and self.aws is not None and self.aws.server is not None:
            self.save()
        self.persister = None
        wiring.register_builds("local", None)
        wiring.register_signer(None)
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
        release_ports(self._held_ports)
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

    def save(self) -> None:
        """Snapshot the state to `.patchprop/state.json` if it changed (persist.py)."""
        if self.persister is not None:
            self.persister.save()

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
        gateway = self.gateway
        if gateway is None or gateway.stopping:  # a late notification: a 503, the registry retries
            raise GatewayStopping("the local stack is stopping")
        return gateway.call("POST", path, body)

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
        with self._invoke_lock:  # no snapshot half-way through it
            self.aws.client("events").put_events(Entries=[entry])
        self.save()

    # ---- driving it from the demo and the tests -------------------------------------

    def run_schedules(self) -> list[tuple[str, Any]]:
        """Fire every schedule of the template once, now."""
        assert self.pump is not None
        return self.pump.run_schedules()

    def wait_for(self, done: Callable[[], bool], timeout: float = 180.0) -> bool:
        """Deliver events until `done()` holds and nothing is left moving; False at `timeout`.

        The caller names the outcome it waits for (rebuilds recorded final, a message told): the
        registry sends its push notifications when it likes, so no quiet period can stand in for it.
        Once `done()` holds, the round that found it delivered nothing and no build runs.
        """
        assert self.pump is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = self.pump.pump_once() or bool(self.builds and self.builds.running())
            if not busy and done():
                return True
            time.sleep(0.1)
        return False

    def wait_idle(self, timeout: float = 60.0, quiet: float = 1.0) -> bool:
        """Wait until no build runs and no event is delivered for `quiet` seconds.

        For a person at the demo; a test waits on what it asserts instead (`wait_for`).
        """
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
