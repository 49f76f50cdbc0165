"""What patchprop tells people about a finished rebuild.

One `Alert` per finished rebuild, rendered three ways from the same data: a plain-text email,
an Amazon Q Developer (AWS Chatbot) custom notification for Slack and Teams, and Slack Block
Kit for an incoming webhook. Long lists become "and N more" plus a link, and `message()` keeps
the whole SNS message, subject and attributes included, within SNS's 256 KB. One
`PatchSummary` per patch event, once its last rebuild finished, rendered the same three ways.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlparse

from pydantic import BaseModel, ConfigDict, Field

from patchprop.domain.gate import GateResult
from patchprop.domain.records import BUILD_OUTCOME, Outcome, Rebuild, RebuildStatus
from patchprop.domain.scan import Finding, Severity


@dataclass(frozen=True)
class Message:
    """One published alert: subject, body and the attributes filter policies match."""

    subject: str
    body: str
    attributes: Mapping[str, str | int | float] = field(default_factory=dict)


MAX_MESSAGE_BYTES = 256 * 1024
# Findings a list shows before "and N more".
LIST_LIMIT = 20
SUBJECT_LIMIT = 100  # SNS: ASCII, no newlines, at most 100 characters
Template = Literal["email", "chatbot", "slack"]
NotifyFormat = Literal["email", "chatbot"]  # what goes to SNS (the template's NotificationFormat)

_TITLES: dict[str, str] = {
    "promoted": "Rebuild promoted",
    "blocked": "Rebuild blocked",
    "failed": "Rebuild failed",
    "succeeded": "Rebuild succeeded",
    "stopped": "Rebuild stopped",
}
_VERBS: dict[str, str] = {
    "promoted": "was promoted",
    "blocked": "was blocked",
    "failed": "failed",
    "succeeded": "succeeded (not scanned)",
    "stopped": "was stopped",
}
# A reason longer than this (a CodeBuild error, say) is cut: it is read, not parsed.
_REASON_CHARS = 1000


class Alert(BaseModel):
    """Everything a message about one finished rebuild says."""

    model_config = ConfigDict(frozen=True)

    image: str
    base: str
    previous_digest: str | None = None  # the base digest the image was built on until now
    base_digest: str  # the new base digest it was rebuilt on
    project: str | None = None
    build_id: str | None = None
    rebuild_id: str | None = None
    log_url: str | None = None
    report_url: str | None = None
    owner: str | None = None
    status: str
    outcome: Outcome
    reasons: list[str] = Field(default_factory=list)
    scanned: bool = False
    fixed: list[Finding] = Field(default_factory=list)
    new_own: list[Finding] = Field(default_factory=list)
    new_from_base: list[Finding] = Field(default_factory=list)
    still_present: int = 0
    highest_new: Severity | None = None

    @classmethod
    def from_rebuild(
        cls, rebuild: Rebuild, result: GateResult | None = None, *, report_url: str | None = None
    ) -> Alert:
        """The alert for a finished rebuild; `result` is the gate's verdict when it was scanned."""
        if not rebuild.status.final:
            raise ValueError(f"rebuild {rebuild.rebuild_id} is {rebuild.status.value}, not finished")
        outcome = BUILD_OUTCOME[rebuild.status]
        reasons = [rebuild.reason] if rebuild.reason else []
        gated: dict[str, Any] = {}
        # A gate verdict only stands for an image that was built.
        if result is not None and rebuild.status is RebuildStatus.SUCCEEDED:
            outcome = Outcome(result.outcome)
            reasons += result.reasons
            gated = {
                "scanned": result.outcome != "failed",
                "fixed": result.fixed,
                "new_own": result.new_own,
                "new_from_base": result.new_from_base,
                "still_present": len(result.still_present),
                "highest_new": result.highest_new,
            }
        return cls(
            image=rebuild.image,
            base=rebuild.base,
            previous_digest=rebuild.previous_digest,
            base_digest=rebuild.base_digest,
            project=rebuild.project,
            build_id=rebuild.build_id,
            rebuild_id=rebuild.rebuild_id,
            log_url=rebuild.log_url,
            report_url=report_url,
            owner=rebuild.owner,
            status=rebuild.status.value,
            outcome=outcome,
            reasons=reasons,
            **gated,
        )

    @property
    def severity(self) -> str:
        """The highest new severity, or "NONE"."""
        return self.highest_new.value if self.highest_new else "NONE"

    @property
    def severity_rank(self) -> int:
        return self.highest_new.rank if self.highest_new else 0


def attributes(alert: Alert) -> dict[str, str | int]:
    """SNS message attributes for subscription filter policies; severity_rank is a Number."""
    found: dict[str, str | int] = {
        "outcome": alert.outcome,
        "severity": alert.severity,
        "severity_rank": alert.severity_rank,
        "image": alert.image,
        "base": alert.base,
    }
    if alert.owner:
        found["owner"] = alert.owner
    if alert.rebuild_id:
        found["rebuild_id"] = alert.rebuild_id  # the Slack function reads the rebuild by it
    return found


def attribute_bytes(attrs: Mapping[str, str | int | float]) -> int:
    """What SNS counts of the attributes toward its message size: name, data type and value."""
    total = 0
    for name, value in attrs.items():
        kind = "Number" if isinstance(value, int | float) and not isinstance(value, bool) else "String"
        total += len(name.encode()) + len(kind) + len(str(value).encode())
    return total


def fit(text: str, limit: int, note: str = "\n[shortened to fit the 256 KB message limit]\n") -> str:
    """`text` cut to at most `limit` UTF-8 bytes, ending with `note` when it was cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    kept = data[: max(limit - len(note.encode()), 0)].decode(errors="ignore")
    return (kept + note).encode()[:limit].decode(errors="ignore")


def message(alert: Alert, template: Template = "email", list_limit: int = LIST_LIMIT) -> Message:
    """The SNS message for `alert`: email text, or chatbot / Slack JSON, always within 256 KB."""
    attrs = attributes(alert)
    subject, body = email(alert, list_limit)
    budget = MAX_MESSAGE_BYTES - attribute_bytes(attrs) - len(subject.encode())
    if template == "chatbot":
        body = _fit_json(chatbot, alert, budget, list_limit)
    elif template == "slack":
        body = _fit_json(block_kit, alert, budget, list_limit)
    link = alert.report_url or alert.log_url
    note = f"\n[shortened to fit the 256 KB message limit{f'; full report: {link}' if link else ''}]\n"
    return Message(subject=subject, body=fit(body, budget, note[:1000]), attributes=attrs)


def _fit_json(render: Callable[..., dict[str, Any]], alert: Alert, budget: int, list_limit: int) -> str:
    """Fewer list items until the JSON fits; failing that, a bare title and summary."""
    for limit in dict.fromkeys((list_limit, min(list_limit, 5), 0)):
        text = json.dumps(render(alert, list_limit=limit), ensure_ascii=False)
        if len(text.encode()) <= budget:
            return text
    title, summary = _cut(_title(alert), _HEADER_CHARS), _cut(_summary(alert), _SECTION_CHARS)
    if render is block_kit:
        return json.dumps({"text": f"{title}\n{summary}"}, ensure_ascii=False)
    content = {"textType": "client-markdown", "title": title, "description": summary}
    return json.dumps({"version": "1.0", "source": "custom", "content": content}, ensure_ascii=False)


# ---- what every rendering says ------------------------------------------------------------


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


# ---- email --------------------------------------------------------------------------------


def email(alert: Alert, list_limit: int = LIST_LIMIT) -> tuple[str, str]:
    """A subject (ASCII, at most 100 characters) and a plain-text body that reads well in email."""
    lines = [_summary(alert), ""]
    reasons = _reasons(alert)
    if reasons:
        lines += ["Why:", *[f"  - {reason}" for reason in reasons], ""]
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


# ---- Amazon Q Developer in chat applications (custom notification) ----------------------


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


# ---- Slack Block Kit (incoming webhook) ----------------------------------------------------

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


# ---- one summary per patch event ---------------------------------------------------------


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
    failed: int = 0
    succeeded: int = 0  # built, not scanned
    stopped: int = 0
    skipped: int = 0  # not rebuilt: a parent failed, or a newer digest of the base came
    detected_at: datetime | None = None
    last_finished_at: datetime | None = None

    @property
    def rebuilt(self) -> int:
        """Rebuilds that produced an image, whatever the gate said of it."""
        return self.promoted + self.blocked + self.succeeded

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
    tail += "".join(f", {count} {name}" for name, count in _counts(summary) if name in ("blocked", "failed"))
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


def report_link(uri: str | None) -> str | None:
    """Where a person opens the report: the S3 console for s3://, the location itself otherwise."""
    if not uri:
        return None
    where = urlparse(uri)
    if where.scheme == "s3":
        key = quote(where.path.lstrip("/"), safe="/")
        return f"https://s3.console.aws.amazon.com/s3/object/{where.netloc}?prefix={key}"
    return uri
