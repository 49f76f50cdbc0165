"""An alert as Slack Block Kit, for an incoming webhook."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from patchprop.domain.alerts.model import LIST_LIMIT, Alert
from patchprop.domain.alerts.text import (
    _headline,
    _lists,
    _more,
    _reasons,
    _short,
    _summary,
    _title,
)

# Slack's limits: header text 150 characters, section text 3000, each field 2000, 10 fields.
_HEADER_CHARS = 150
_SECTION_CHARS = 3000
_FIELD_CHARS = 2000
_MORE_ROOM = 300  # kept free in a section for its "and N more: <link>" line


def _esc(text: str) -> str:
    """Slack mrkdwn control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    safe = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")
    return f"<{safe}|{_esc(label)}>"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn_list(title: str, lines: Sequence[str], total: int, more: Callable[[int], str]) -> str:
    """A bulleted list within one section's 3000 characters; what is left out becomes `more(n)`."""
    text, shown = f"*{_esc(title)}*", 0
    for line in lines:
        bullet = f"\n• {_esc(line)}"
        if len(text) + len(bullet) + _MORE_ROOM > _SECTION_CHARS:
            break
        text, shown = text + bullet, shown + 1
    hidden = total - shown
    return _cut(text + (f"\n{_esc(more(hidden))}" if hidden else ""), _SECTION_CHARS)


def block_kit(alert: Alert, list_limit: int = LIST_LIMIT) -> dict[str, Any]:
    """A Slack message (`text` fallback and `blocks`) for an incoming webhook."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(_title(alert), _HEADER_CHARS)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(_esc(_summary(alert)), _SECTION_CHARS)}},
    ]
    reasons = _reasons(alert)
    if reasons:
        why = _mrkdwn_list("Why", reasons, len(reasons), lambda n: f"…and {n} more reasons")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": why}})
    fields = [
        ("Image", f"`{_esc(alert.image)}`"),
        ("Base", f"`{_esc(alert.base)}`"),
        ("Base digest", f"`{_short(alert.previous_digest)}` → `{_short(alert.base_digest)}`"),
        ("Outcome", alert.outcome),
    ]
    if alert.scanned:
        fields += [
            ("Fixed", str(len(alert.fixed))),
            ("New", f"{len(alert.new_own)} own, {len(alert.new_from_base)} from the base"),
            ("Highest new severity", alert.severity),
        ]
    if alert.owner:
        fields.append(("Owner", _esc(alert.owner)))
    blocks.append(
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": _cut(f"*{k}*\n{v}", _FIELD_CHARS)} for k, v in fields[:10]],
        }
    )
    lists = [(t, f, line) for t, f, line in _lists(alert) if f]
    if lists:
        blocks.append({"type": "divider"})
    for title, findings, line in lists:
        shown = [line(finding) for finding in findings[:list_limit]]
        text = _mrkdwn_list(f"{title} ({len(findings)})", shown, len(findings), lambda n: _more(alert, n))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    context = [
        _link(url, label)
        for url, label in ((alert.log_url, "Build log"), (alert.report_url, "Scan report"))
        if url
    ]
    if alert.rebuild_id:
        context.append(_esc(f"rebuild {alert.rebuild_id}"))
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    return {"text": _cut(_headline(alert), _SECTION_CHARS), "blocks": blocks}
