"""persist.Persister under a burst: one snapshot write serves every caller that waited for it,
and no caller returns before a snapshot holding its change is on disk."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from patchprop_local import persist


def test_a_burst_of_saves_is_written_in_few_snapshots_each_holding_its_callers_change(tmp_path: Path) -> None:
    # Given a persister whose writes are slow (a disk's fsync), over a state callers change
    lock = threading.RLock()
    changes: list[int] = []
    header: dict[str, Any] = {"ports": {}, "token": "t", "changes": changes}
    written: list[set[int]] = []
    first_write_started, release = threading.Event(), threading.Event()

    def slow_write(path: Path, data: dict[str, Any]) -> None:
        written.append(set(data["changes"]))
        first_write_started.set()
        release.wait(timeout=30)

    persister = persist.Persister(tmp_path / "state.json", lock, header, [], slow_write, lambda *a: None)
    taken: list[int] = []
    take = persister.take

    def counted_take() -> dict[str, Any]:
        with lock:  # the state as it is under the handlers' lock, copied
            taken.append(1)
            data = take()
            return {**data, "changes": list(data["changes"])}

    persister.take = counted_take  # type: ignore[method-assign]
    every_caller_waits = threading.Event()
    persister.waiting = lambda n: n < 20 or every_caller_waits.set()

    def change_then_save(n: int) -> set[int]:
        with lock:  # a handler's change, made under the handlers' lock
            changes.append(n)
        assert persister.save()
        return written[-1]  # what was on disk when save() returned

    # When 20 callers change the state and save, while the first write is still under way
    with ThreadPoolExecutor(max_workers=20) as pool:
        first = pool.submit(change_then_save, 0)
        assert first_write_started.wait(timeout=30)
        rest = [pool.submit(change_then_save, n) for n in range(1, 20)]
        assert every_caller_waits.wait(timeout=30)  # all 19 asked to save during the first write
        release.set()
        on_disk = [first.result(timeout=60), *(f.result(timeout=60) for f in rest)]
    # Then each caller returned once a snapshot holding its own change was written
    for n, snapshot in enumerate(on_disk):
        assert n in snapshot, (n, snapshot)
    # And the 19 callers that waited on the first write shared one snapshot, not one each
    assert len(taken) == len(written) == 2, [sorted(w) for w in written]
    assert written[-1] == set(range(20))


def test_a_failed_write_is_not_counted_as_saved_and_the_next_save_writes_again(tmp_path: Path) -> None:
    # Given a persister whose first write fails (a full disk)
    attempts: list[dict[str, Any]] = []

    def write(path: Path, data: dict[str, Any]) -> None:
        attempts.append(data)
        if len(attempts) == 1:
            raise OSError(28, "No space left on device")

    told: list[tuple[str, dict[str, Any]]] = []
    header: dict[str, Any] = {"ports": {}, "token": "t"}
    persister = persist.Persister(
        tmp_path / "state.json", threading.Lock(), header, [], write, lambda k, d: told.append((k, d))
    )
    # When it saves twice
    # Then the first says it failed (and tells why), the second writes the same state again
    assert persister.save() is False
    assert told and "disk is full" in told[0][1]["error"]
    assert persister.save() is True
    assert len(attempts) == 2
