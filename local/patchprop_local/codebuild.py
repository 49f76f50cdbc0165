"""A local CodeBuild for `patchprop local`: real rebuilds with buildah, genuine build events.

`LocalCodeBuild` has the `Builds` protocol of `patchprop.adapters.codebuild.CodeBuild`. `start_build`
checks the project, honours the idempotency token for 5 minutes and returns `<project>:<uuid>`
at once; a worker thread fetches the source (a local directory is copied, a git repository is
cloned at `source_version`) and runs `buildspec/rebuild.sh` (resources.py), the script the
CodeBuild buildspec runs, with buildah (vfs storage, chroot isolation: no daemon, no Docker
engine). Each build logs to a file, and `emit` receives the `detail` of each "CodeBuild Build
State Change": IN_PROGRESS, then SUCCEEDED, FAILED or STOPPED. Nothing a build does raises out of its worker.

Every build is also recorded in `builds/<id>.json` (build_records.py) before start_build returns,
so `resume()` after a crash knows them: a build cut off is run again under the same id (its
idempotency token still gives that id), a finished one whose last event may be lost is told
again, and one whose script wrote a successful result.json just before the stop ended with it (a
failed one runs again: the stop, or the end of its orphaned script, may have caused it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from patchprop.domain.errors import BuildStartFailed, NotFound
from patchprop.domain.events import BuildResult, parse_build_result
from patchprop_local import build_records, resources
from patchprop_local.build_source import BuildFailed, fetch_source, note, source_kind
from patchprop_local.leftovers import wait_for_group
from patchprop_local.sbom import find_syft

ARN_PREFIX = "arn:aws:codebuild:us-east-1:123456789012:build/"
TOKEN_TTL = 300.0  # CodeBuild remembers an idempotency token for 5 minutes
BUILD_TIMEOUT = 3600.0
STOP_GRACE = 10.0
log = logging.getLogger(__name__)


@dataclass
class _Build:
    id: str
    project: str
    env: dict[str, str]
    source_location: str | None
    source_version: str | None
    directory: Path
    log_path: Path
    status: str = "IN_PROGRESS"
    start_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    end_time: datetime | None = None
    result: dict[str, Any] | None = None
    stop_requested: bool = False
    interrupted: bool = False  # stopped by shutdown(): not an end, resume() runs it again
    process: subprocess.Popen[bytes] | None = None

    @property
    def source_type(self) -> str:
        return source_kind(self.source_location)[0]

    @property
    def complete(self) -> bool:
        return self.status != "IN_PROGRESS"


class LocalCodeBuild:
    """CodeBuild's StartBuild and StopBuild (and a finished build's result), building for real here."""

    def __init__(
        self,
        projects: Collection[str],
        workdir: Path,
        emit: Callable[[dict[str, Any]], None],
        max_parallel: int = 2,
        script: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.projects = frozenset(projects)
        self.workdir = Path(workdir)
        self.emit = emit
        self.script = Path(script or resources.rebuild_script())
        self.extra_env = dict(extra_env or {})
        self.bash = shutil.which("bash") or "/bin/bash"
        self._pool = ThreadPoolExecutor(max_parallel, thread_name_prefix="local-codebuild")
        self._lock = threading.Lock()
        self._builds: dict[str, _Build] = {}
        self._futures: list[Future[None]] = []
        self._tokens: dict[str, tuple[str, str, float]] = {}  # token -> (request, build id, when)

    def start_build(
        self,
        project: str,
        env: Mapping[str, str],
        idempotency_token: str,
        source_version: str | None = None,
        source_location: str | None = None,
    ) -> str:
        """Queue a build and return its id; the same token within 5 minutes returns the same build."""
        if project not in self.projects:
            known = ", ".join(sorted(self.projects)) or "none"
            raise BuildStartFailed(f"ResourceNotFoundException: no local project {project!r} ({known})")
        request = json.dumps([project, sorted(env.items()), source_version, source_location])
        now = time.monotonic()
        with self._lock:
            seen = self._tokens.get(idempotency_token)
            if seen and now - seen[2] < TOKEN_TTL:
                if seen[0] != request:
                    raise BuildStartFailed(
                        f"IdempotentParameterMismatchException: token {idempotency_token!r} "
                        "was used for a different build"
                    )
                return seen[1]
            build_id = f"{project}:{uuid.uuid4()}"
            builds = self.workdir / "builds"
            build = _Build(
                build_id, project, dict(env), source_location, source_version,
                directory=builds / build_id, log_path=builds / f"{build_id}.log",
            )  # fmt: skip
            try:
                self._futures.append(self._pool.submit(self._run, build))
            except RuntimeError as exc:  # shut down
                raise BuildStartFailed(f"the local CodeBuild is shut down: {exc}") from exc
            self._builds[build_id] = build
            self._tokens[idempotency_token] = (request, build_id, now)
            build_records.save(build, idempotency_token, request)
        return build_id

    def resume(self) -> dict[str, list[str]]:
        """After a restart: run again the builds cut off, tell again the ends not acknowledged."""
        told: dict[str, list[str]] = {"rerun": [], "retold": []}
        self._prune()  # containers a killed buildah left in this builder's storage
        for record in build_records.load_all(self.workdir / "builds"):
            build = _Build(
                record["id"], record["project"], record["env"], record["source_location"],
                record["source_version"], directory=self.workdir / "builds" / record["id"],
                log_path=self.workdir / "builds" / f"{record['id']}.log",
                status=record["status"], result=record.get("result"),
            )  # fmt: skip
            ended = build_records.read_result(build.directory) if not build.complete else None
            if ended is not None and not ended.get("failure"):  # it ended well just before the stop
                build.status, build.result = "SUCCEEDED", ended
            with self._lock:
                self._builds[build.id] = build
                self._tokens[record["token"]] = (record["request"], build.id, time.monotonic())
            if not build.complete:
                shutil.rmtree(build.directory, ignore_errors=True)  # what the cut-off run left
                self._futures.append(self._pool.submit(self._run, build))
                told["rerun"].append(build.id)
            elif not record.get("acknowledged"):
                self._acknowledge(build, record["token"], record["request"])
                told["retold"].append(build.id)
        return told

    def _acknowledge(self, build: _Build, token: str, request: str) -> None:
        if self._emit(build):
            build_records.save(build, token, request, acknowledged=True)

    def stop_build(self, build_id: str) -> None:
        """Stop a queued or running build (it ends STOPPED)."""
        with self._lock:
            build = self._builds.get(build_id)
            if build is None:
                raise NotFound(f"ResourceNotFoundException: no build {build_id!r}")
            if not build.complete:
                build.stop_requested = True
                self._signal(build, signal.SIGTERM)

    def build_result(self, build_id: str) -> BuildResult | None:
        """What the finished build left (rebuild.sh's result file), as CodeBuild's PATCHPROP_RESULT."""
        with self._lock:
            build = self._builds.get(build_id)
            raw = dict(build.result) if build is not None and build.result is not None else None
        return parse_build_result(raw)

    def running(self) -> list[str]:
        """Ids of the builds queued or running."""
        with self._lock:
            return [b.id for b in self._builds.values() if not b.complete]

    def running_builds(self, projects: Collection[str]) -> int:
        """Builds of `projects` queued or running here (for the cap's reconciler)."""
        with self._lock:
            return sum(1 for b in self._builds.values() if not b.complete and b.project in projects)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every build started so far; False if some are still running after `timeout`."""
        with self._lock:
            futures = list(self._futures)
        return not wait_for(futures, timeout).not_done

    def shutdown(self, interrupt: bool = False) -> None:
        """Stop every queued and running build and wait for the workers.

        interrupt: the stack stops, not the builds; they tell no end and resume() runs them again.
        """
        with self._lock:
            running = [b for b in self._builds.values() if not b.complete]
            for build in running:
                build.interrupted = interrupt
        for build in running:
            self.stop_build(build.id)
        if not self.wait(STOP_GRACE):
            with self._lock:
                for build in running:
                    self._signal(build, signal.SIGKILL)
        self._pool.shutdown(wait=True)
        self._prune()

    # ---- the worker --------------------------------------------------------------------

    def _run(self, build: _Build) -> None:
        self._emit(build)
        status = "FAILED"
        try:
            build.directory.mkdir(parents=True, exist_ok=True)
            with build.log_path.open("ab") as out:
                note(out, f"local CodeBuild build {build.id} of project {build.project}")
                try:
                    status = self._execute(build, out)
                except BuildFailed as exc:
                    note(out, str(exc))
                    if not (build.result or {}).get("failure"):  # failed before the script could tell
                        build.result = {**(build.result or {}), "failure": {"message": str(exc)}}
                except Exception as exc:
                    log.exception("local build %s failed", build.id)
                    note(out, f"internal error: {exc!r}")
                if build.stop_requested:
                    status = "STOPPED"
                if build.interrupted:
                    note(out, "interrupted: the stack stopped; the build runs again when it starts")
                    return
                note(out, f"build {status}")
        except OSError:
            log.exception("local build %s: cannot write its log %s", build.id, build.log_path)
        with self._lock:
            build.status, build.end_time, build.process = status, datetime.now(UTC), None
            token, request = next(((t, v[0]) for t, v in self._tokens.items() if v[1] == build.id), ("", ""))
            build_records.save(build, token, request)
        self._acknowledge(build, token, request)

    def _execute(self, build: _Build, out: IO[bytes]) -> str:
        if build.stop_requested:
            return "STOPPED"
        src = fetch_source(build.source_location, build.source_version, build.directory / "src", out)
        result = build.directory / "result.json"
        env = {
            **os.environ,
            "BUILDER": "buildah",
            # As the reference project: pushed by digest, the tag moves when the gate promotes it.
            "PUSH": "candidate",
            **({"SYFT": syft} if (syft := find_syft()) else {}),
            **self._storage,  # keep off the machine's own storage
            "REGISTRY_TLS_VERIFY": "false",
            **self.extra_env,
            **build.env,
        }
        env["CONTEXT_DIR"] = str(src / env.get("CONTEXT_DIR", "."))
        env["RESULT_FILE"] = str(result)
        with self._lock:
            if build.stop_requested:
                return "STOPPED"
            process = build.process = subprocess.Popen(
                [self.bash, str(self.script)],
                cwd=src, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop_build ends buildah too
            )  # fmt: skip
        try:
            code = process.wait(timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._signal(build, signal.SIGKILL)
            process.wait()
            raise BuildFailed(f"build timed out after {BUILD_TIMEOUT:g}s") from None
        if code != 0 and build.stop_requested:
            wait_for_group(process.pid, STOP_GRACE)  # buildah outlives the script by a moment
            return "STOPPED"
        # A failed script's result is read too: a failed smoke test says why (its output's tail).
        with contextlib.suppress(OSError, ValueError):
            build.result = json.loads(result.read_text())
        if code != 0:
            raise BuildFailed(f"{self.script.name} failed with exit code {code}")
        if build.result is None:
            raise BuildFailed(f"{self.script.name} left no result in {result}")
        return "SUCCEEDED"

    # ---- helpers ---------------------------------------------------------------------------

    @property
    def _storage(self) -> dict[str, str]:
        storage = self.workdir / "containers"
        return {"BUILDAH_ROOT": str(storage / "storage"), "BUILDAH_RUNROOT": str(storage / "run")}

    def _prune(self) -> None:
        """Empty this builder's own storage: stopped builds' containers, then every image."""
        root = self._storage["BUILDAH_ROOT"]
        if "BUILDAH_ROOT" in self.extra_env or not Path(root).is_dir() or shutil.which("buildah") is None:
            return
        command = ["buildah", "--root", root, "--runroot", self._storage["BUILDAH_RUNROOT"]]
        command += ["--storage-driver", self.extra_env.get("BUILDAH_STORAGE_DRIVER", "vfs")]
        try:
            subprocess.run([*command, "rm", "--all"], capture_output=True, timeout=120, check=False)
            subprocess.run(
                [*command, "rmi", "--all", "--force"], capture_output=True, timeout=120, check=False
            )
        except subprocess.TimeoutExpired:
            log.warning("emptying the local builds' storage timed out")

    @staticmethod
    def _signal(build: _Build, signum: int) -> None:
        if build.process is not None and build.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(build.process.pid, signum)

    def _emit(self, build: _Build) -> bool:
        try:
            self.emit(build_records.detail(build, BUILD_TIMEOUT))
        except Exception:
            log.exception("delivering the %s event of build %s failed", build.status, build.id)
            return False
        return True
