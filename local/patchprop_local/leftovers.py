"""What a `patchprop local` that was killed leaves behind, found and cleaned on the next start.

- its `docker-registry` (a child process, so it outlives a SIGKILL of the stack): ended, since it
  holds the registry port the registered images name and writes to `.patchprop/registry`;
- `.patchprop/local.json` of a run that did not stop: replaced by this run's;
- the build scripts it was running (each in its own session, so they outlive it too): ended, so a
  cut-off build does not go on beside its rerun, or fail at the registry this start restarts
  and leave a result that looks like its end;
- buildah containers of cut-off builds: emptied by the local CodeBuild's resume() (codebuild.py);
- the lock: an flock, released by the kernel when its holder dies, so never stale.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

GRACE = 5.0


def _processes() -> Iterator[tuple[Path, list[bytes]]]:
    """Each running process's /proc entry and argv (those gone or unreadable skipped)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield entry, (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue


def registry_processes(state_dir: Path) -> list[int]:
    """Pids of `docker-registry serve <state_dir>/registry/config.yml` still running."""
    config = str(state_dir / "registry" / "config.yml").encode()
    return [
        int(entry.name)
        for entry, argv in _processes()
        if len(argv) >= 3 and argv[0].endswith(b"docker-registry") and argv[2] == config
    ]


def build_processes(state_dir: Path) -> list[int]:
    """Pids of the local builds' scripts still running: their RESULT_FILE is under `state_dir`/builds."""
    result_file = b"RESULT_FILE=" + (str(state_dir / "builds") + os.sep).encode()
    found = []
    for entry, argv in _processes():
        if len(argv) < 2 or not argv[1].endswith(b"rebuild.sh"):
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(result_file) for v in environ):
            found.append(int(entry.name))
    return found


def _wait_gone(pid: int, timeout: float, kill: Callable[[int, int], None]) -> None:
    """Wait until `pid` (kill=os.kill) or the group `pid` (os.killpg) has exited, reaping it if
    it is our own child (a zombie until then); past `timeout`, SIGKILL what is left."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ProcessLookupError):
        while time.monotonic() < deadline:
            kill(pid, 0)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        kill(pid, signal.SIGKILL)


def wait_for_group(pgid: int, timeout: float) -> None:
    """Wait until every process of the group (the script, buildah, its RUN steps) has exited."""
    _wait_gone(pgid, timeout, os.killpg)


def _end(pid: int, kill: Callable[[int, int], None] = os.kill) -> None:
    """SIGTERM, then up to GRACE for it to go. A build script is its session's leader: with
    kill=os.killpg its whole group (buildah, RUN steps) ends with it."""
    with contextlib.suppress(ProcessLookupError):
        kill(pid, signal.SIGTERM)
        _wait_gone(pid, GRACE, kill)


def clean(state_dir: Path) -> list[str]:
    """End what a killed run left running; one note for each thing found."""
    notes = []
    if (state_dir / "local.json").exists():
        notes.append(f"the last run on {state_dir} did not stop cleanly (killed?); its state is restored")
    for pid in build_processes(state_dir):
        _end(pid, os.killpg)
        notes.append(f"ended build script pid {pid} left running by the last run; the build runs again")
    for pid in registry_processes(state_dir):
        _end(pid)
        notes.append(f"ended docker-registry pid {pid} left running by the last run")
    return notes
