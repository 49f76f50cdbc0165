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
from collections.abc import Iterator
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


def wait_for_group(pgid: int, timeout: float) -> None:
    """Wait until every process of the group (the script, buildah, its RUN steps) has exited;
    past `timeout`, kill what is left."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ProcessLookupError):
        while time.monotonic() < deadline:
            os.killpg(pgid, 0)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pgid, os.WNOHANG)  # our own child: a zombie until reaped
            time.sleep(0.05)
        os.killpg(pgid, signal.SIGKILL)


def _end_group(pgid: int) -> None:
    """A build script is its session's leader: its group (buildah, RUN steps) ends with it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
        wait_for_group(pgid, GRACE)


def _end(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


def clean(state_dir: Path) -> list[str]:
    """End what a killed run left running; one note for each thing found."""
    notes = []
    if (state_dir / "local.json").exists():
        notes.append(f"the last run on {state_dir} did not stop cleanly (killed?); its state is restored")
    for pid in build_processes(state_dir):
        _end_group(pid)
        notes.append(f"ended build script pid {pid} left running by the last run; the build runs again")
    for pid in registry_processes(state_dir):
        _end(pid)
        notes.append(f"ended docker-registry pid {pid} left running by the last run")
    return notes
