"""What is stored about the work: rebuilds with their outcome, patches with their counters, and
the nodes of a cascade. The store returns these; storage types stay in the adapter."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_validator

from patchprop.domain.base_check import BaseJudgement
from patchprop.domain.cascade import Node
from patchprop.domain.models import (
    CascadeId,
    Dependent,
    Digest,
    DomainModel,
    PatchRequest,
    RebuildFields,
    RebuildRequest,
    utcnow,
)


class RebuildStatus(StrEnum):
    STARTED = "STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    # CodeBuild refused the build for good (unknown or forbidden project, bad input).
    NOT_STARTED = "NOT_STARTED"

    @property
    def final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {RebuildStatus.SUCCEEDED, RebuildStatus.FAILED, RebuildStatus.STOPPED, RebuildStatus.NOT_STARTED}
)


class Outcome(StrEnum):
    """What a finished rebuild came to, as told."""

    PROMOTED = "promoted"
    BLOCKED = "blocked"
    FAILED = "failed"
    SUCCEEDED = "succeeded"  # built, not scanned (RequireScan=false)
    STOPPED = "stopped"
    # Passed the gate, but its tag did not move (the registry refused or kept failing the move,
    # or a newer rebuild moved the tag first): "passed, not promoted".
    HELD = "held"


# What may move a tag: the gate promoted it, or no scan was required and it built.
PROMOTABLE = frozenset({Outcome.PROMOTED, Outcome.SUCCEEDED})


# The outcome a build's own status gives, before (or without) the gate.
BUILD_OUTCOME = {
    RebuildStatus.SUCCEEDED: Outcome.SUCCEEDED,
    RebuildStatus.FAILED: Outcome.FAILED,
    RebuildStatus.STOPPED: Outcome.STOPPED,
    RebuildStatus.NOT_STARTED: Outcome.FAILED,
}
SKIPPED = "skipped"  # counted on a patch for an image that will not be rebuilt


class Rebuild(RebuildFields):
    """A rebuild as stored: what was asked, and what CodeBuild made of it."""

    status: RebuildStatus
    build_id: str | None = None
    reason: str | None = None
    log_url: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    notified: bool = False
    # The verdict once it finished, why, and the scan report it was judged on.
    outcome: Outcome | None = None
    reasons: list[str] = Field(default_factory=list)
    report_uri: str | None = None
    # The digest the rebuilt image was pushed at (from the build's result).
    image_digest: Digest | None = None
    # The digest the image's tag held when the rebuild started (None: no such tag): a promotion
    # moves the tag only from there, so an older candidate never overwrites a newer promotion.
    tag_digest_at_start: Digest | None = None
    tag_checked: bool = False  # False: the registry could not be asked at start
    # Set once the tag holds image_digest: who moved it (patchprop, or a person), when and why.
    promoted_by: str | None = None
    promoted_at: datetime | None = None
    promotion_reason: str | None = None
    rolled_back_at: datetime | None = None  # a person moved the tag away from image_digest
    sbom_uri: str | None = None
    evidence: list[str] = Field(default_factory=list)  # referrer digests attached to image_digest
    promote_attempts: int = 0
    # For the report (domain/report.py); None: not recorded (a record from before them).
    fixed_findings: dict[str, int] | None = None  # by severity: in the last build, not in this one
    blocking_findings: dict[str, int] | None = None  # by severity: new ones the gate kept off the tag
    open_findings: dict[str, int] | None = None  # by severity: in this build's scan report
    signed: bool | None = None  # the promoted digest was signed
    base_verified: bool | None = None  # the base's signature was verified before the build
    # How it was patched: "rebuilt" (a build) or "rebased" (registry API, then a verify-only build),
    # and why a rebase was not done when the image's method allowed one.
    method: str | None = None
    fallback_reason: str | None = None
    # The outcome last put on the event bus (domain/outcome_events.py): each verdict goes once.
    announced: Outcome | None = None

    @property
    def on_tag(self) -> bool:
        """The tag was moved to this rebuild's digest (by patchprop or by hand), and not rolled
        back since."""
        if self.promoted_at is None:
            return False
        return self.rolled_back_at is None or self.rolled_back_at < self.promoted_at

    @classmethod
    def started(cls, request: RebuildRequest, build_id: str, tag_digest: str | None = None) -> Rebuild:
        return cls(
            **request.common(),
            status=RebuildStatus.STARTED,
            build_id=build_id,
            started_at=utcnow(),
            tag_digest_at_start=tag_digest,
        )

    @classmethod
    def not_started(cls, request: RebuildRequest, reason: str) -> Rebuild:
        """CodeBuild (or this stack) refused it for good: it failed."""
        return cls(
            **request.common(),
            status=RebuildStatus.NOT_STARTED,
            reason=reason,
            outcome=Outcome.FAILED,
            finished_at=utcnow(),
        )

    @property
    def told_outcome(self) -> Outcome:
        """The recorded outcome, else the one its build status gives."""
        return self.outcome or BUILD_OUTCOME.get(self.status, Outcome.FAILED)


class Finish(DomainModel):
    """What a rebuild's end records, once: its final status and the verdict on it."""

    status: RebuildStatus
    build_id: str
    log_url: str | None = None
    at: datetime = Field(default_factory=utcnow)
    outcome: Outcome | None = None
    reasons: list[str] | None = None
    report_uri: str | None = None
    image_digest: Digest | None = None
    sbom_uri: str | None = None
    promoted_by: str | None = None
    promoted_at: datetime | None = None
    evidence: list[str] | None = None
    fixed_findings: dict[str, int] | None = None
    blocking_findings: dict[str, int] | None = None
    open_findings: dict[str, int] | None = None
    reason: str | None = None  # why a build failed (its failing step and log tail)


class Promotion(DomainModel):
    """A tag moved to a rebuild's digest (or back, for a rollback), recorded on the rebuild."""

    outcome: Outcome
    reasons: list[str]
    promoted_by: str | None = None
    promoted_at: datetime | None = None
    promotion_reason: str | None = None
    evidence: list[str] | None = None
    rolled_back_at: datetime | None = None
    signed: bool | None = None


class Patch(PatchRequest):
    """A planned patch with its counters: how many rebuilds it has, and how each finished."""

    rebuilds: int = 0
    finished: int = 0
    promoted: int = 0
    blocked: int = 0
    failed: int = 0
    succeeded: int = 0
    stopped: int = 0
    held: int = 0
    skipped: int = 0
    summarized: bool = False
    last_finished_at: datetime | None = None
    announced: bool = False  # its "Patch Completed" event is on the bus
    base_check: BaseJudgement | None = None  # the one check of the new digest (logic/base_check.py)

    @field_validator("base_check", mode="before")
    @classmethod
    def _stored_json(cls, value: object) -> object:
        return BaseJudgement.model_validate_json(value) if isinstance(value, str) else value

    @property
    def complete(self) -> bool:
        return self.finished >= self.rebuilds


class NodeStatus(StrEnum):
    WAITING = "WAITING"  # for patched parents still being rebuilt
    READY = "READY"  # enqueued
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    BLOCKED = "BLOCKED"  # a parent failed
    SUPERSEDED = "SUPERSEDED"  # a newer digest of the base came before it started


class CascadeNode(DomainModel):
    """One image of a cascade: its dependent, the images below it, and what it waits for."""

    cascade: CascadeId
    image: str
    dependent: Dependent
    children: list[str] = Field(default_factory=list)
    priority: float = 0.0
    status: NodeStatus
    waiting: frozenset[str] = frozenset()

    def as_node(self) -> Node:
        """As the cascade algorithm's node, to order a wave."""
        return Node(self.dependent, priority=self.priority)


class Hold(DomainModel):
    """A new digest of a base held back (a batch window, a soak) until `release_at`; one per base,
    the latest digest replacing an older one. Stored, so a restart loses and repeats nothing."""

    patch: PatchRequest
    release_at: datetime
    urgency: str
    reason: str = ""
