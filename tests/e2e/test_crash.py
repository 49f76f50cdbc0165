"""e2e: `patchprop local` SIGKILLed in the middle of a cascade, started again: the cascade finishes.

Each image is rebuilt once on its parent's new digest: one rebuild record per image and digest,
one local build per rebuild id, and the build that had ended before the kill is not run again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.registry import RegistryClient
from patchprop.domain.models import Dependent
from patchprop.domain.records import RebuildStatus
from patchprop.domain.refs import parse_ref
from patchprop_cli.demo import EXAMPLES, _annotations, _build, _build_base
from patchprop_local import leftovers
from patchprop_local.resources import CHECKOUT as ROOT

pytestmark = pytest.mark.e2e
PROJECT = "patchprop-rebuild"
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT / "cli"), str(ROOT / "local")]),
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "LOG_LEVEL": "WARNING",
}


def digest(image: str) -> str:
    return RegistryClient().resolve_digest(parse_ref(image))


def wait_until(done: Callable[[], Any], timeout: float, what: str, process: subprocess.Popen) -> Any:
    """Poll `done()` until it is truthy; fail naming `what` (and the output) if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = done()
        if found:
            return found
        if process.poll() is not None:
            pytest.fail(f"patchprop local ended while waiting for {what}: {_output(process)}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _output(process: subprocess.Popen) -> str:
    return process.stdout.read() if process.stdout and process.poll() is not None else ""


class Local:
    """`patchprop local` in its own process, in `folder`, on the ports it saved (0: free ones)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.process: subprocess.Popen | None = None
        self.log = folder / "local.out"

    def start(self, first: bool) -> dict[str, Any]:
        cli = shutil.which("patchprop") or str(Path(sys.executable).parent / "patchprop")
        ports = ["--port", "0", "--aws-port", "0", "--registry-port", "0"] if first else []
        state = self.folder / ".patchprop" / "local.json"  # a SIGKILLed run leaves its own behind
        self.process = subprocess.Popen(
            [cli, "local", "--poll-interval", "3600", *ports],
            cwd=self.folder,
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            text=True,
            env=ENV,
        )
        pid = self.process.pid
        return dict(wait_until(lambda: _info_of(state, pid), 90, "local.json", self.process))

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _info_of(state: Path, pid: int) -> dict[str, Any] | None:
    """local.json once the process `pid` wrote it (written atomically: whole or absent)."""
    try:
        info = json.loads(state.read_text())
    except FileNotFoundError:
        return None
    return info if info.get("pid") == pid else None


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    running = Local(tmp_path)
    try:
        yield running
    finally:
        running.stop()
        leftovers.clean(tmp_path / ".patchprop")  # a registry a failed test left after its SIGKILL


def build_records(folder: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted((folder / ".patchprop" / "builds").glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except ValueError:  # being written: the rename is atomic, but glob can race it
            continue
    return records


def test_a_sigkill_mid_cascade_then_a_restart_finishes_it_each_image_built_once(
    local: Local, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given `patchprop local` running, with base -> golden -> app-a, app-b registered and baselined
    info = local.start(first=True)
    monkeypatch.setenv("AWS_ENDPOINT_URL", info["aws_endpoint_url"])
    registry = info["registry"]
    images = {name: f"{registry}/crash/{name}:1" for name in ("base", "golden", "app-a", "app-b")}
    _build_base(tmp_path, images["base"], patch_level=1)
    store = Store(info["resources"]["PatchpropTable"])
    for name, parent in (("golden", "base"), ("app-a", "golden"), ("app-b", "golden")):
        pinned = f"{parse_ref(images[parent]).name}@{digest(images[parent])}"
        _build(EXAMPLES / name, images[name], pinned, images[parent], tmp_path)
        store.put_dependent(
            Dependent(
                image=images[name],
                bases=[images[parent]],
                project=PROJECT,
                source_location=str(EXAMPLES / name),
            )
        )
    for name in ("base", "golden"):
        store.track_base(str(parse_ref(images[name])), digest(images[name]))
    before = {name: digest(image) for name, image in images.items()}
    # When the base is re-published, and the process is SIGKILLed while an app (level 2) builds
    _build_base(tmp_path, images["base"], patch_level=2)
    apps = {str(parse_ref(images["app-a"])), str(parse_ref(images["app-b"]))}

    def app_building() -> bool:
        return any(
            r["env"].get("TARGET_IMAGE") in apps and r["status"] == "IN_PROGRESS"
            for r in build_records(tmp_path)
        )

    assert local.process is not None
    wait_until(app_building, 300, "a build of app-a or app-b", local.process)
    golden_ended = [
        r for r in build_records(tmp_path) if r["env"].get("TARGET_IMAGE") == str(parse_ref(images["golden"]))
    ]
    local.kill()
    # And it is started again
    local.start(first=False)
    assert local.process is not None
    new_base = digest(images["base"])

    def cascade_done() -> bool:
        rebuilds = [r for name in ("golden", "app-a", "app-b") for r in store.recent_rebuilds(images[name])]
        return len(rebuilds) >= 3 and all(r.status.final and r.notified for r in rebuilds)

    wait_until(cascade_done, 400, "the cascade to finish after the restart", local.process)
    # Then every image was rebuilt once, on its parent's new digest
    after = {name: digest(image) for name, image in images.items()}
    unchanged = [n for n in images if after[n] == before[n]]
    assert not unchanged, f"not rebuilt: {unchanged}; see {local.log}"
    for name, parent in (("golden", "base"), ("app-a", "golden"), ("app-b", "golden")):
        (rebuild,) = store.recent_rebuilds(images[name])
        assert rebuild.status is RebuildStatus.SUCCEEDED, rebuild
        assert _annotations(images[name])["org.opencontainers.image.base.digest"] == after[parent]
    assert store.get_base(str(parse_ref(images["base"]))).digest == new_base  # type: ignore[union-attr]
    # And one local build per rebuild: the cut-off one ran again under its id, nothing doubled
    ids = [r["env"]["PATCHPROP_REBUILD_ID"] for r in build_records(tmp_path)]
    assert len(ids) == len(set(ids)) == 3, ids
    # And the golden build, ended before the kill, was not run again
    assert golden_ended and golden_ended[0]["status"] == "SUCCEEDED", golden_ended
    told = re.search(r"run again: (\d+)", local.log.read_text())
    assert told and int(told.group(1)) >= 1, local.log.read_text()
