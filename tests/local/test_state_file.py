"""`.patchprop/local.json` is replaced whole: a reader sees the old state or the new one, never half."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from patchprop_local.lifecycle import write_state


def test_a_reader_never_sees_a_half_written_state_file(tmp_path: Path) -> None:
    # Given a state file that is rewritten again and again, each time larger than one write
    path = tmp_path / "local.json"
    states = [
        {"api_url": f"http://127.0.0.1:{n}", "resources": {f"R{i}": "x" * 64 for i in range(400)}}
        for n in range(2)
    ]
    write_state(path, states[0])
    done = threading.Event()

    def rewrite() -> None:
        for n in range(300):
            write_state(path, states[n % 2])
        done.set()

    writer = threading.Thread(target=rewrite)
    writer.start()
    # When it is read meanwhile, as the CLI reads it
    seen = []
    while not done.is_set():
        seen.append(json.loads(path.read_text(encoding="utf-8")))
    writer.join()
    # Then every read parsed into one of the whole states, and no temporary file is left behind
    assert seen and all(state in states for state in seen)
    assert [p.name for p in tmp_path.iterdir()] == ["local.json"]


def test_a_failed_write_leaves_the_previous_state_and_no_temporary_file(tmp_path: Path) -> None:
    # Given a state file
    path = tmp_path / "local.json"
    write_state(path, {"api_url": "http://127.0.0.1:1"})
    # When a state that cannot be written as JSON is written
    with pytest.raises(TypeError):
        write_state(path, {"api_url": object()})
    # Then the previous state is still there, whole, and nothing else
    assert json.loads(path.read_text(encoding="utf-8")) == {"api_url": "http://127.0.0.1:1"}
    assert [p.name for p in tmp_path.iterdir()] == ["local.json"]
