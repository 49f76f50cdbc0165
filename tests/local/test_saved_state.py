"""`.patchprop/state.json`: a state this version cannot read is refused, a full disk keeps the last."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from patchprop_local import persist


def _saved(path: Path, **changes: Any) -> None:
    data = {"format": persist.FORMAT, "ports": {}, "token": "t", "secret": "{}", "tables": {}, "queues": {}}
    path.write_text(json.dumps({**data, **changes}))


def test_a_truncated_state_is_refused_naming_the_file_and_how_to_reset(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    _saved(path)
    path.write_text(path.read_text()[:20])
    with pytest.raises(persist.StateError, match=r"state\.json is truncated.*rm -r"):
        persist.load(path)


def test_a_state_of_another_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    _saved(path, format=0)
    with pytest.raises(persist.StateError, match=r"another version of patchprop \(format 0"):
        persist.load(path)


def test_no_state_is_a_first_start_and_a_good_one_loads(tmp_path: Path) -> None:
    assert persist.load(tmp_path / "state.json") is None
    _saved(tmp_path / "state.json", token="abc")
    assert persist.load(tmp_path / "state.json")["token"] == "abc"  # type: ignore[index]


def test_a_full_disk_is_told_and_the_last_good_state_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a state saved once
    path = tmp_path / "state.json"
    told: list[tuple[str, dict[str, Any]]] = []
    persister = persist.Persister(
        path,
        threading.Lock(),
        {"ports": {}},
        [],
        persist.write_json,
        lambda kind, data: told.append((kind, data)),
    )
    tables = {"t": [{"PK": {"S": "1"}}]}
    monkeypatch.setattr(persist, "snapshot_tables", lambda names: tables)
    monkeypatch.setattr(persist, "snapshot_queues", lambda: {})
    assert persister.save()
    good = path.read_text()
    # When the disk fills up before the next change is saved
    real_write = persist.write_json

    def full(p: Path, data: dict[str, Any], indent: int | None = 2) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    persister._write = full
    tables["t"].append({"PK": {"S": "2"}})
    # Then it says so, and the file on disk is still the last good one, whole
    assert not persister.save()
    assert [kind for kind, _ in told] == ["error"] and "disk is full" in told[0][1]["error"]
    assert path.read_text() == good
    # And once there is room again, the change is saved
    persister._write = real_write
    assert persister.save() and len(json.loads(path.read_text())["tables"]["t"]) == 2


def test_binary_attributes_survive_a_snapshot(tmp_path: Path) -> None:
    item = {"PK": {"S": "k"}, "data": {"B": b"\x00\xff"}}
    assert persist._decoded(json.loads(json.dumps(persist._encoded(item)))) == item
