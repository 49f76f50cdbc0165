"""What `patchprop local` says as it runs: one readable line per event, and the alerts it kept.

`Narrator` is a listener of the stack (`LocalStack.listeners`): a push the registry saw, what the
webhook made of it, each build started and ended (with its log), each alert's subject, errors.
Each alert published on the topic is also kept whole in `<state>/outbox/` (one JSON file each,
numbered in order, written to a temp file and renamed), so a local user sees what email or Slack
would get: `patchprop alerts [--follow]` prints them.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

OUTBOX = "outbox"
_SEEN = {
    "moved": "a patch is planned for the images on it",
    "baseline": "its first digest is recorded",
    "unchanged": "unchanged",
    "untracked": "nobody builds on it",
    "ignored": "the registry does not have it",
}


class Narrator:
    """Prints one line per event with `echo` (unless `quiet`), and keeps each alert in the outbox."""

    def __init__(self, state_dir: Path, echo: Callable[[str], None], quiet: bool = False) -> None:
        self.outbox = Path(state_dir) / OUTBOX
        self.echo = echo
        self.quiet = quiet
        self._lock = threading.Lock()
        existing = [
            int(p.stem.split("-")[0]) for p in self.outbox.glob("*.json") if p.stem.split("-")[0].isdigit()
        ]
        self._numbers = itertools.count(max(existing, default=0) + 1)

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "sns":
            self.keep(data)
        line = self.line(kind, data)
        if line and not self.quiet:
            self.echo(line)

    def line(self, kind: str, data: dict[str, Any]) -> str | None:
        if kind == "push":
            if ":sha256-" in str(data.get("image")):
                return None  # a referrer's fallback tag (signature, SBOM): not an image anyone pushed
            status = (data.get("answer") or {}).get("status") or f"HTTP {data.get('status')}"
            digest = (data.get("digest") or "")[:19]
            return f"push seen: {data.get('image')} {digest} -> {status}: {_SEEN.get(status, status)}"
        if kind == "build":
            return _build_line(data)
        if kind == "sns":
            return f"alert: {data.get('Subject') or '(no subject)'}  (patchprop alerts: the whole message)"
        if kind == "error":
            return f"error in {data.get('where')}: {data.get('error')}"
        if kind == "answer":
            return _answer_line(data.get("answer"))
        return None

    def keep(self, message: dict[str, Any]) -> Path:
        """Write one alert to the outbox: subject, body, attributes (temp file, then rename)."""
        attributes = {k: v.get("Value") for k, v in (message.get("MessageAttributes") or {}).items()}
        record = {
            "subject": message.get("Subject"),
            "message": message.get("Message"),
            "attributes": attributes,
            "timestamp": message.get("Timestamp"),
        }
        with self._lock:
            self.outbox.mkdir(parents=True, exist_ok=True)
            path = self.outbox / f"{next(self._numbers):06d}.json"
            temp = path.with_suffix(".tmp")
            temp.write_text(json.dumps(record, indent=2), encoding="utf-8")
            os.replace(temp, path)
        return path


def _build_line(detail: dict[str, Any]) -> str:
    status = detail.get("build-status")
    info = detail.get("additional-information") or {}
    env = {v["name"]: v["value"] for v in (info.get("environment") or {}).get("environment-variables", [])}
    image = env.get("TARGET_IMAGE", "?")
    base = env.get("BASE_IMAGE_NAME", "?")
    link = (info.get("logs") or {}).get("deep-link") or ""
    log = unquote(urlparse(link).path) if link.startswith("file:") else link
    mode = env.get("PATCHPROP_MODE")
    if mode in ("rescan", "base-check"):  # scans only, builds nothing
        what = "rescan build" if mode == "rescan" else "check-only scan"
        scanned = env.get("RESCAN_IMAGE") or env.get("BASE_IMAGE", "?")
        ended = "started" if status == "IN_PROGRESS" else str(status).lower()
        return f"{what} {ended}: {scanned}  log: {log}"
    if status == "IN_PROGRESS":
        return f"build started: {image} on {base} {env.get('BASE_IMAGE_DIGEST', '')[:19]}  log: {log}"
    return f"build {str(status).lower()}: {image}  log: {log}"


def _answer_line(answer: Any) -> str | None:
    """What a handler's answer says worth a line: a rescan's outcome once its scan ended."""
    if isinstance(answer, dict) and answer.get("status") == "rescan" and answer.get("outcome"):
        return f"rescan of {answer.get('image')}: {answer['outcome']}"
    return None


def read_outbox(state_dir: Path, after: int = 0) -> list[tuple[int, dict[str, Any]]]:
    """The alerts kept, in order, numbered; only those after number `after`."""
    found = []
    for path in sorted((Path(state_dir) / OUTBOX).glob("*.json")):
        number = int(path.stem) if path.stem.isdigit() else 0
        if number > after:
            found.append((number, json.loads(path.read_text(encoding="utf-8"))))
    return found
