"""The local stack's state on disk: `.patchprop/state.json`, restored on the next start.

moto keeps everything in memory and has no persistence that fits (its recorder replays every
request, receives and deletes included, so a replay redelivers consumed messages and grows without
end). So the stack snapshots what it wrote itself: every item of every table (registrations,
bases and digests, patches, cascades, rebuilds, idempotency records, the cap's counter), every
message still in a queue (visible or in flight), the ports and the webhook token. A snapshot is
taken under the handlers' lock (no handler half-way), after each handler run and each build
event, written only when it changed, atomically (temp file + fsync + rename). After a SIGKILL the
last snapshot is restored: work done since then is redone from its messages, and every handler is
idempotent (deterministic rebuild ids, conditional writes), so it is never doubled.

Reading moto's in-process backends is the one place the stack touches moto's internals: a scan
through the API would be 10x slower and a receive through the API would change what it reads.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from patchprop_local.fairlock import HandlerLock

FORMAT = 1  # bump when the layout changes; an older file is refused, never half-read
ACCOUNT = "123456789012"
REGION = "us-east-1"
RESET_HINT = "move it away (or delete the folder) to start empty: `rm -r {folder}`"


def write_json(path: Path, data: dict[str, Any], indent: int | None = 2) -> None:
    """Write `data` as JSON to `path` atomically: a temporary file in the same folder, fsync, rename.

    A failed write (disk full) leaves the previous file as it was and no temporary file.
    """
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        try:
            tmp.write(json.dumps(data, indent=indent) + "\n")
            tmp.flush()
            os.fsync(tmp.fileno())
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, path)


def _encoded(value: Any) -> Any:
    """Binary attributes (bytes) as {"$b64": ...}: JSON has no bytes."""
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _encoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encoded(v) for v in value]
    return value


def _decoded(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$b64"}:
            return base64.b64decode(value["$b64"])
        return {k: _decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value


class StateError(RuntimeError):
    """The state folder cannot be used as it is (older version, truncated, unreadable)."""


def load(path: Path) -> dict[str, Any] | None:
    """The saved state, None if there is none; StateError if it is not one this version reads."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc}; {RESET_HINT.format(folder=path.parent)}") from exc
    try:
        data = json.loads(text)
    except ValueError:
        raise StateError(
            f"{path} is truncated or corrupted (not JSON); {RESET_HINT.format(folder=path.parent)}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise StateError(
            f"{path} was written by another version of patchprop (format {found!r}, this one reads "
            f"{FORMAT}); {RESET_HINT.format(folder=path.parent)}"
        )
    for key in ("ports", "token", "tables", "queues"):
        if key not in data:
            raise StateError(f"{path} lacks {key!r}: truncated? {RESET_HINT.format(folder=path.parent)}")
    return data


def snapshot_tables(names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every item of the named tables of moto's (in-process) DynamoDB, as DynamoDB JSON."""
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[ACCOUNT][REGION]
    out = {}
    for name in names:
        table = backend.tables.get(name)
        out[name] = [_encoded(item.to_json()["Attributes"]) for item in table.all_items()] if table else []
    return out


def snapshot_queues() -> dict[str, list[dict[str, Any]]]:
    """Every message still in each queue of moto's (in-process) SQS: visible, delayed or in flight."""
    from moto.sqs.models import sqs_backends

    backend = sqs_backends[ACCOUNT][REGION]
    out = {}
    for name, queue in sorted(backend.queues.items()):
        out[name] = [{"body": m.body, "attributes": m.message_attributes} for m in list(queue._messages)]
    return out


def restore(data: dict[str, Any], dynamodb: Any, sqs: Any) -> dict[str, int]:
    """Put the saved items and messages back (into the tables and queues just created)."""
    counts = {"items": 0, "messages": 0}
    for table, items in data["tables"].items():
        for start in range(0, len(items), 25):
            batch = [{"PutRequest": {"Item": _decoded(item)}} for item in items[start : start + 25]]
            pending: dict[str, Any] = {table: batch}
            while pending:
                pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        counts["items"] += len(items)
    for name, messages in data["queues"].items():
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        for start in range(0, len(messages), 10):
            entries = []
            for i, message in enumerate(messages[start : start + 10]):
                entry: dict[str, Any] = {"Id": str(i), "MessageBody": message["body"]}
                if message["attributes"]:
                    entry["MessageAttributes"] = _decoded(message["attributes"])
                entries.append(entry)
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
        counts["messages"] += len(messages)
    return counts


class Persister:
    """Saves the stack's state to `path` when it changed; `save()` is safe from any thread."""

    def __init__(
        self,
        path: Path,
        invoke_lock: HandlerLock,
        header: dict[str, Any],
        tables: list[str],
        write: Callable[[Path, dict[str, Any]], None],
        tell: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.path = path
        self._invoke_lock = invoke_lock
        self._save_lock = threading.Lock()
        # Group commit: each save() takes a ticket; a snapshot begun after ticket n covers n.
        self._tickets = threading.Lock()
        self._issued = 0
        self._covered = 0
        self.header = header
        self.tables = tables
        self._write = write
        self.tell = tell
        self._last = ""
        self.saves = 0
        self.seconds = 0.0  # time spent taking and writing snapshots, for the README's figures
        self.failing: str | None = None  # why the last save failed (disk full ...), None when it worked
        self.waiting: Callable[[int], object] = lambda ticket: None  # each save's ticket (tests)

    def take(self) -> dict[str, Any]:
        for attempt in range(3):  # a moto request still finishing could change a dict mid-read
            try:
                with self._invoke_lock:
                    return {
                        "format": FORMAT,
                        **self.header,
                        "tables": snapshot_tables(self.tables),
                        "queues": snapshot_queues(),
                    }
            except RuntimeError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def save(self) -> bool:
        """Write a snapshot if anything changed; False if it could not be written (told, kept old).

        The caller's changes are made before it calls: a snapshot another thread began after that
        (while this one waited for the save lock) holds them too, so one write serves a burst.
        """
        with self._tickets:
            self._issued += 1
            ticket = self._issued
            self.waiting(ticket)
        with self._save_lock:
            if self._covered >= ticket:
                return True
            with self._tickets:
                covers = self._issued  # every caller up to here changed the state before this take
            began = time.perf_counter()
            data = self.take()
            text = json.dumps(data, sort_keys=True)
            if text == self._last:
                self._covered = covers
                self.seconds += time.perf_counter() - began
                return True
            try:
                self._write(self.path, {**data, "saved_at": time.time()})
            except OSError as exc:
                reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else str(exc)
                if self.failing != reason:
                    self.tell(
                        "error",
                        {
                            "where": "saving state",
                            "error": f"cannot write {self.path}: {reason}; the last good state is kept "
                            "and saving is retried after each change",
                        },
                    )
                self.failing = reason
                return False
            finally:
                self.seconds += time.perf_counter() - began
            self._last = text
            self._covered = covers
            self.saves += 1
            self.failing = None
            return True
