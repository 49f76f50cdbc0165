"""The alert: what is told about one finished rebuild, its SNS attributes and links."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlparse

from pydantic import BaseModel, ConfigDict, Field

from patchprop.domain.findings import Finding, Severity
from patchprop.domain.gate import GateResult
from patchprop.domain.records import BUILD_OUTCOME, Outcome, Rebuild, RebuildStatus


@dataclass(frozen=True)
class Message:
    """One published alert: subject, body and the attributes filter policies match."""

    subject: str
    body: str
    # A tuple is an SNS String.Array: a filter policy {"owner": ["team-a"]} matches it when it
    # holds team-a, as it matches the String "team-a".
    attributes: Mapping[str, str | int | float | tuple[str, ...]] = field(default_factory=dict)


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
    "held": "Rebuild passed, not promoted",
}
_VERBS: dict[str, str] = {
    "promoted": "was promoted",
    "blocked": "was blocked",
    "failed": "failed",
    "succeeded": "succeeded (not scanned)",
    "stopped": "was stopped",
    "held": "passed, but its tag was not moved",
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
    method: str | None = None  # "rebuilt" or "rebased" (Rebuild.method)

    @classmethod
    def from_rebuild(
        cls, rebuild: Rebuild, result: GateResult | None = None, *, report_url: str | None = None
    ) -> Alert:
        """The alert for a finished rebuild; `result` is the gate's verdict when it was scanned."""
        if not rebuild.status.final:
            raise ValueError(f"rebuild {rebuild.rebuild_id} is {rebuild.status.value}, not finished")
        outcome = BUILD_OUTCOME[rebuild.status]
        reasons = [rebuild.reason] if rebuild.reason else []
        if rebuild.trigger:  # started by a rescan, not a base: why comes first
            reasons.insert(0, f"Rebuilt because {rebuild.trigger}.")
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
            method=rebuild.method,
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
    if alert.method:
        found["method"] = alert.method  # rebuilt or rebased: route or count them apart
    return found


def report_link(uri: str | None) -> str | None:
    """Where a person opens the report: the S3 console for s3://, the location itself otherwise."""
    if not uri:
        return None
    where = urlparse(uri)
    if where.scheme == "s3":
        key = quote(where.path.lstrip("/"), safe="/")
        return f"https://s3.console.aws.amazon.com/s3/object/{where.netloc}?prefix={key}"
    return uri
