"""One summary per patch event, once its last rebuild finished, rendered the same three ways."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from patchprop.domain.alerts.block_kit import _HEADER_CHARS, _SECTION_CHARS, _cut, _esc
from patchprop.domain.alerts.model import SUBJECT_LIMIT, Message, Template
from patchprop.domain.alerts.text import _short


class PatchSummary(BaseModel):
    """A patch event once its last rebuild finished: how many were rebuilt, how each came out."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    base: str
    digest: str
    previous_digest: str | None = None
    rebuilds: int = 0
    finished: int = 0
    promoted: int = 0
    blocked: int = 0
    held: int = 0  # passed, not promoted: a newer image was on the tag, or the registry refused
    failed: int = 0
    succeeded: int = 0  # built, not scanned
    stopped: int = 0
    skipped: int = 0  # not rebuilt: a parent failed, or a newer digest of the base came
    detected_at: datetime | None = None
    last_finished_at: datetime | None = None

    @property
    def rebuilt(self) -> int:
        """Rebuilds that produced an image, whatever the gate said of it."""
        return self.promoted + self.blocked + self.held + self.succeeded

    @property
    def took(self) -> timedelta | None:
        """From the base push (as patchprop detected it) to the last rebuild's end."""
        if self.detected_at is None or self.last_finished_at is None:
            return None
        return max(self.last_finished_at - self.detected_at, timedelta(0))


def _duration(span: timedelta | None) -> str:
    if span is None:
        return "(unknown)"
    seconds = int(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def _counts(summary: PatchSummary) -> list[tuple[str, int]]:
    """Each outcome with its count; those that did not happen are left out."""
    found = [
        ("promoted", summary.promoted),
        ("blocked", summary.blocked),
        ("held", summary.held),
        ("not scanned", summary.succeeded),
        ("failed", summary.failed),
        ("stopped", summary.stopped),
        ("skipped", summary.skipped),
    ]
    return [(name, count) for name, count in found if count]


def _summary_line(summary: PatchSummary) -> str:
    """E.g. "3 of 4 images rebuilt (2 promoted, 1 blocked, 1 failed) in 12m 05s"."""
    counts = ", ".join(f"{count} {name}" for name, count in _counts(summary)) or "none finished"
    return f"{summary.rebuilt} of {summary.rebuilds} images rebuilt ({counts}) in {_duration(summary.took)}"


def summary_attributes(summary: PatchSummary) -> dict[str, str | int]:
    return {"outcome": "summary", "base": summary.base, "base_digest": summary.digest}


def summary_email(summary: PatchSummary) -> tuple[str, str]:
    """A subject (ASCII, at most 100 characters) and a plain-text body."""
    tail = f" patched - {summary.rebuilt}/{summary.rebuilds} rebuilt"
    tail += "".join(
        f", {count} {name}" for name, count in _counts(summary) if name in ("blocked", "held", "failed")
    )
    head = "patchprop: "
    room = SUBJECT_LIMIT - len(head) - len(tail)
    base = summary.base if len(summary.base) <= room else "..." + summary.base[-(room - 3) :]
    subject = " ".join(f"{head}{base}{tail}".split()).encode("ascii", "replace").decode()[:SUBJECT_LIMIT]
    lines = [
        f"A new digest of {summary.base} was rolled out: {_summary_line(summary)}.",
        "",
        f"Base:           {summary.base}",
        f"Base digest:    {summary.previous_digest or '(unknown)'}",
        f"             -> {summary.digest}",
        f"Rebuilds:       {summary.rebuilds}",
    ]
    lines += [f"{name.capitalize() + ':':16}{count}" for name, count in _counts(summary)]
    for label, when in (("Detected:", summary.detected_at), ("Last finished:", summary.last_finished_at)):
        lines.append(f"{label:16}{when.isoformat() if when else '(unknown)'}")
    lines.append(f"Push to last rebuild: {_duration(summary.took)}")
    return subject, "\n".join(lines) + "\n"


def summary_chatbot(summary: PatchSummary) -> dict[str, Any]:
    """The summary as an Amazon Q Developer custom notification."""
    title = f"Patch rolled out: {summary.base}"
    digests = f"`{_short(summary.previous_digest)}` → `{_short(summary.digest)}`"
    return {
        "version": "1.0",
        "source": "custom",
        "id": f"{summary.base}@{summary.digest}",
        "content": {
            "textType": "client-markdown",
            "title": title,
            "description": f"{_summary_line(summary)}.\n\n*Base* {summary.base}: {digests}",
            "keywords": ["summary"],
        },
        "metadata": {
            "threadId": f"patchprop {summary.base}",
            "summary": f"{title}: {_summary_line(summary)}",
            "eventType": "patchprop.patch.summary",
            "relatedResources": [summary.base],
            "additionalContext": {name: str(count) for name, count in _counts(summary)},
        },
    }


def summary_block_kit(summary: PatchSummary) -> dict[str, Any]:
    """The summary as a Slack message for an incoming webhook."""
    title = _cut(f"Patch rolled out: {summary.base}", _HEADER_CHARS)
    fields = [
        ("Base", f"`{_esc(summary.base)}`"),
        ("Base digest", f"`{_short(summary.previous_digest)}` → `{_short(summary.digest)}`"),
        ("Rebuilt", f"{summary.rebuilt} of {summary.rebuilds}"),
        ("Push to last rebuild", _duration(summary.took)),
        *[(name.capitalize(), str(count)) for name, count in _counts(summary)],
    ]
    return {
        "text": _cut(f"{title}: {_summary_line(summary)}", _SECTION_CHARS),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _esc(_summary_line(summary)) + "."}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields[:10]],
            },
        ],
    }


def summary_message(summary: PatchSummary, template: Template = "email") -> Message:
    """The SNS message for a patch summary: email text, or chatbot / Slack JSON."""
    subject, body = summary_email(summary)
    if template == "chatbot":
        body = json.dumps(summary_chatbot(summary), ensure_ascii=False)
    elif template == "slack":
        body = json.dumps(summary_block_kit(summary), ensure_ascii=False)
    return Message(subject=subject, body=body, attributes=summary_attributes(summary))
