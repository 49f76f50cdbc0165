"""An alert as an Amazon Q Developer (chat applications) custom notification, for Slack and Teams."""

from __future__ import annotations

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


def chatbot(alert: Alert, list_limit: int = LIST_LIMIT) -> dict[str, Any]:
    """An Amazon Q Developer custom notification: Slack and Teams channels render it as a card."""
    parts = [_summary(alert)]
    reasons = _reasons(alert)
    if reasons:
        parts.append("*Why*\n" + "\n".join(f"• {reason}" for reason in reasons))
    parts.append(f"*Base* {alert.base}: `{_short(alert.previous_digest)}` → `{_short(alert.base_digest)}`")
    for title, findings, line in _lists(alert):
        if not findings:
            continue
        shown = [f"• {line(finding)}" for finding in findings[:list_limit]]
        if len(findings) > list_limit:
            shown.append(_more(alert, len(findings) - list_limit))
        parts.append(f"*{title} ({len(findings)})*\n" + "\n".join(shown))
    links = [
        f"{label}: {url}"
        for label, url in (("Build log", alert.log_url), ("Scan report", alert.report_url))
        if url
    ]
    if links:
        parts.append("\n".join(links))
    context = {
        "outcome": alert.outcome,
        "severity": alert.severity,
        "image": alert.image,
        "base": alert.base,
        "previousBaseDigest": alert.previous_digest or "",
        "baseDigest": alert.base_digest,
        "fixed": str(len(alert.fixed)),
        "newOwn": str(len(alert.new_own)),
        "newFromBase": str(len(alert.new_from_base)),
        "owner": alert.owner or "",
        "buildLog": alert.log_url or "",
        "scanReport": alert.report_url or "",
    }
    notification: dict[str, Any] = {"version": "1.0", "source": "custom"}
    if alert.rebuild_id:
        notification["id"] = alert.rebuild_id
    notification["content"] = {
        "textType": "client-markdown",
        "title": _title(alert),
        "description": "\n\n".join(parts),
        "nextSteps": _next_steps(alert),
        "keywords": [alert.outcome, alert.severity],
    }
    notification["metadata"] = {
        "threadId": f"patchprop {alert.image}",
        "summary": _headline(alert),
        "eventType": f"patchprop.rebuild.{alert.outcome}",
        "relatedResources": [r for r in (alert.image, alert.base, alert.build_id) if r],
        "additionalContext": {k: v for k, v in context.items() if v},
    }
    return notification


def _next_steps(alert: Alert) -> list[str]:
    steps = []
    if alert.outcome == "blocked":
        for finding in alert.new_own[:3]:
            fix = (
                f"to {finding.fixed_version}"
                if finding.fixed_version
                else "(no fix yet: remove or accept it)"
            )
            steps.append(f"Upgrade {finding.package} {fix} for {finding.id}, then rebuild")
        steps.append(
            "Try a policy on the same reports: patchprop gate --report R --previous P --base B --policy …"
        )
    elif alert.outcome in ("failed", "stopped"):
        steps.append("Read the build log to see why the rebuild did not finish")
    if alert.log_url:
        steps.append(f"Build log: {alert.log_url}")
    if alert.report_url:
        steps.append(f"Scan report: {alert.report_url}")
    return steps
