"""A SIGKILLed `patchprop local` leaves its build scripts running (each in its own session): the
next start ends them, and a cut-off build whose orphaned script wrote a failure runs again.

The crash this comes from: the orphan went on pushing, failed when the restart ended the old
registry, and its failure result.json was taken for a success, so the image was never rebuilt.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from patchprop_local import build_records, leftovers
from patchprop_local.codebuild import LocalCodeBuild

PROJECT = "patchprop-rebuild"
LOOPING = "#!/usr/bin/env bash\nsleep 600 &\nwait\n"  # stands still until it is ended
SUCCEEDS = """#!/usr/bin/env bash
printf '{"image": "%s", "digest": "sha256:%064d"}' "$TARGET_IMAGE" 1 >"$RESULT_FILE"
"""


def orphan(script: Path, result_file: Path) -> subprocess.Popen[bytes]:
    """A build script as the local CodeBuild starts it: bash rebuild.sh, its own session."""
    return subprocess.Popen(
        ["bash", str(script)],
        env={"PATH": "/usr/bin:/bin", "RESULT_FILE": str(result_file)},
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.fixture
def running(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_the_build_scripts_a_killed_run_left_are_ended_and_another_stacks_are_not(
    tmp_path: Path, running: list[subprocess.Popen[bytes]]
) -> None:
    # Given a build script of this stack's state folder still running, and one of another stack's
    script = tmp_path / "rebuild.sh"
    script.write_text(LOOPING)
    state, other = tmp_path / "mine" / ".patchprop", tmp_path / "other" / ".patchprop"
    mine = orphan(script, state / "builds" / "patchprop-rebuild:1" / "result.json")
    theirs = orphan(script, other / "builds" / "patchprop-rebuild:2" / "result.json")
    running.extend([mine, theirs])
    # When this stack starts again and cleans what its last run left
    notes = leftovers.clean(state)
    # Then its script (and its group) has ended and says so; the other stack's runs on
    assert mine.wait(timeout=30) is not None
    assert theirs.poll() is None
    assert f"ended build script pid {mine.pid} left running by the last run; the build runs again" in notes


def cut_off(builds: Path, name: str, source: Path, result: dict[str, Any]) -> str:
    """The record of a build a kill cut off (IN_PROGRESS), whose folder holds `result`."""
    build_id = f"{PROJECT}:{name}"
    record = {
        "id": build_id,
        "project": PROJECT,
        "env": {"TARGET_IMAGE": f"127.0.0.1:5000/acme/{name}:1", "PATCHPROP_REBUILD_ID": f"rb-{name}"},
        "source_location": str(source),
        "source_version": None,
        "status": "IN_PROGRESS",
        "result": None,
        "token": f"rb-{name}",
        "request": "[]",
        "acknowledged": False,
    }
    (builds / build_id).mkdir(parents=True)
    (builds / build_id / "result.json").write_text(json.dumps(result))
    (builds / f"{build_id}.json").write_text(json.dumps(record))
    return build_id


def test_a_cut_off_build_whose_script_failed_runs_again_and_one_that_succeeded_keeps_its_result(
    tmp_path: Path,
) -> None:
    # Given two builds cut off by a kill: one script wrote a failure (the registry went away
    # under it), the other a success just before the kill
    source, script = tmp_path / "src", tmp_path / "rebuild.sh"
    source.mkdir()
    script.write_text(SUCCEEDS)
    builds = tmp_path / "work" / "builds"
    failed = cut_off(builds, "failed", source, {"image": "x", "failure": {"step": "pushing", "exit": 1}})
    done = cut_off(builds, "done", source, {"image": "y", "digest": "sha256:" + "2" * 64})
    events: list[dict[str, Any]] = []
    local = LocalCodeBuild([PROJECT], tmp_path / "work", emit=events.append, script=script)
    try:
        # When the local CodeBuild resumes
        told = local.resume()
        assert local.wait(60)
    finally:
        local.shutdown()
    # Then the failed one ran again and succeeded; the other ended with the result it had
    assert told == {"rerun": [failed], "retold": [done]}
    ends = {
        e["build-id"].rsplit("/", 1)[1]: e["build-status"]
        for e in events
        if e["build-status"] != "IN_PROGRESS"
    }
    assert ends == {failed: "SUCCEEDED", done: "SUCCEEDED"}
    rerun = build_records.read_result(builds / failed)
    assert rerun is not None and "failure" not in rerun, rerun
    kept = json.loads((builds / f"{done}.json").read_text())
    assert kept["result"]["digest"] == "sha256:" + "2" * 64
