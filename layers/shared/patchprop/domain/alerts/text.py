"""What every rendering of an alert says: title, tally, summary, subject, lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from patchprop.domain.alerts.model import _REASON_CHARS, _TITLES, _VERBS, SUBJECT_LIMIT, Alert
from patchprop.domain.findings import Finding


def _title(alert: Alert) -> str:
    return f"{_TITLES[alert.outcome]}: {alert.image}"


def _tally(alert: Alert) -> str:
    """E.g. "fixed 3, new 1 from the image's own packages, new 0 from the base"."""
    return (
        f"fixed {len(alert.fixed)}, new {len(alert.new_own)} from the image's own packages, "
        f"new {len(alert.new_from_base)} from the base"
    )


def _headline(alert: Alert) -> str:
    return f"{_title(alert)} ({_tally(alert)})" if alert.scanned else _title(alert)


def _summary(alert: Alert) -> str:
    text = f"The rebuild of {alert.image} on a new digest of {alert.base} {_VERBS[alert.outcome]}"
    return f"{text}: {_tally(alert)}." if alert.scanned else f"{text}."


def _reasons(alert: Alert) -> list[str]:
    return [r if len(r) <= _REASON_CHARS else r[: _REASON_CHARS - 1] + "…" for r in alert.reasons]


def _new_line(finding: Finding) -> str:
    return f"{finding.severity.value} {finding.summary()}"


def _fixed_line(finding: Finding) -> str:
    return f"{finding.severity.value} {finding.id} in {finding.package} {finding.installed_version}".rstrip()


def _lists(alert: Alert) -> list[tuple[str, Sequence[Finding], Callable[[Finding], str]]]:
    if not alert.scanned:
        return []
    return [
        ("New from the image's own packages", alert.new_own, _new_line),
        ("New that came with the base", alert.new_from_base, _new_line),
        ("Fixed since the previous build", alert.fixed, _fixed_line),
    ]


def _more(alert: Alert, count: int) -> str:
    link = alert.report_url or alert.log_url
    return f"…and {count} more: {link}" if link else f"…and {count} more (see the scan report)"


def _short(digest: str | None) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "(unknown)"


def _subject(alert: Alert) -> str:
    tail = f" {alert.outcome}"
    if alert.scanned:
        new = alert.new_own + alert.new_from_base
        at_highest = sum(1 for f in new if f.severity == alert.highest_new)
        tail += f" - fixed {len(alert.fixed)}"
        tail += f", {at_highest} new {alert.severity}" if new else ", nothing new"
    head = "patchprop: "
    room = SUBJECT_LIMIT - len(head) - len(tail)
    image = alert.image if len(alert.image) <= room else "..." + alert.image[-(room - 3) :]
    subject = " ".join(f"{head}{image}{tail}".split())  # no newlines
    return subject.encode("ascii", "replace").decode()[:SUBJECT_LIMIT]
