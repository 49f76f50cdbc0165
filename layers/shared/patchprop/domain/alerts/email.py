"""An alert as plain-text email: a subject of at most 100 ASCII characters and a body."""

from __future__ import annotations

from patchprop.domain.alerts.model import LIST_LIMIT, Alert
from patchprop.domain.alerts.text import (
    _lists,
    _more,
    _reasons,
    _subject,
    _summary,
)


def email(alert: Alert, list_limit: int = LIST_LIMIT) -> tuple[str, str]:
    """A subject (ASCII, at most 100 characters) and a plain-text body that reads well in email."""
    lines = [_summary(alert), ""]
    reasons = _reasons(alert)
    if reasons:
        lines += ["Why:", *[f"  - {reason}".replace("\n", "\n    ") for reason in reasons], ""]
    lines += [
        f"Image:          {alert.image}",
        f"Base:           {alert.base}",
        f"Base digest:    {alert.previous_digest or '(unknown)'}",
        f"             -> {alert.base_digest}",
        f"Outcome:        {alert.outcome}",
        f"Build status:   {alert.status}",
    ]
    if alert.project or alert.build_id:
        lines.append(f"CodeBuild:      {alert.project or ''} {alert.build_id or ''}".rstrip())
    if alert.log_url:
        lines.append(f"Build log:      {alert.log_url}")
    if alert.report_url:
        lines.append(f"Scan report:    {alert.report_url}")
    if alert.owner:
        lines.append(f"Owner:          {alert.owner}")
    for title, findings, line in _lists(alert):
        lines += ["", f"{title} ({len(findings)}):" if findings else f"{title}: none"]
        lines += [f"  - {line(finding)}" for finding in findings[:list_limit]]
        if len(findings) > list_limit:
            lines.append(f"  {_more(alert, len(findings) - list_limit)}")
    if alert.scanned:
        lines += ["", f"Still present:  {alert.still_present}"]
    if alert.rebuild_id:
        lines += ["", f"Rebuild id:     {alert.rebuild_id}"]
    return _subject(alert), "\n".join(lines) + "\n"
