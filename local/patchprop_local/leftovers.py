"""What a `patchprop local` that was killed leaves behind, found and cleaned on the next start.

- its `docker-registry` (a child process, so it outlives a SIGKILL of the stack): ended, since it
  holds the registry port the registered images name and writes to `.patchprop/registry`;
- `.patchprop/local.json` of a run that did not stop: replaced by this run's;
- buildah containers of cut-off builds: emptied by the local CodeBuild's resume() (codebuild.py);
- the lock: an flock, released by the kernel when its holder dies, so never stale.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

GRACE = 5.0


def registry_processes(state_dir: Path) -> list[int]:
    """Pids of `docker-registry serve <state_dir>/registry/config.yml` still running."""
    config = str(state_dir / "registry" / "config.yml")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) >= 3 and argv[0].endswith(b"docker-registry") and argv[2] == config.encode():
            found.append(int(entry.name))
    return found


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
    for pid in registry_processes(state_dir):
        _end(pid)
        notes.append(f"ended docker-registry pid {pid} left running by the last run")
    return notes
