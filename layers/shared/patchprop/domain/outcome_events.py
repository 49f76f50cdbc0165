"""Outcome events: what deployment tools read on EventBridge about each verdict (no I/O here).

One event per verdict of a rebuild ("Image Promoted", "Image Blocked", "Rebuild Failed") and one
per patch once its last rebuild is counted ("Patch Completed"), one per rollback by hand ("Image
Rolled Back"), all with `source: patchprop`.
`detail.event_id` is the same for every delivery of one verdict, for consumers that dedupe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from patchprop.domain.alerts import Alert
from patchprop.domain.errors import InvalidReference
from patchprop.domain.records import PROMOTABLE, Outcome, Patch, Rebuild
from patchprop.domain.refs import parse_ref

SOURCE = "patchprop"
IMAGE_PROMOTED = "Image Promoted"
IMAGE_BLOCKED = "Image Blocked"
REBUILD_FAILED = "Rebuild Failed"
PATCH_COMPLETED = "Patch Completed"
IMAGE_ROLLED_BACK = "Image Rolled Back"
DETAIL_TYPES = (IMAGE_PROMOTED, IMAGE_BLOCKED, REBUILD_FAILED, PATCH_COMPLETED, IMAGE_ROLLED_BACK)
_REASONS = 5  # reasons an event carries (the report link has the rest)
_REASON_CHARS = 500


@dataclass(frozen=True)
class OutcomeEvent:
    """One EventBridge entry: its detail-type, detail and the resources it is about."""

    detail_type: str
    detail: dict[str, Any]
    resources: list[str] = field(default_factory=list)

    @property
    def event_id(self) -> str:
        return str(self.detail["event_id"])


def detail_type_of(outcome: Outcome, on_tag: bool) -> str:
    """Promoted only when the tag holds the digest; failed and stopped builds failed; the rest
    (blocked, held, passed but not moved) kept the tag where it was."""
    if outcome in PROMOTABLE and on_tag:
        return IMAGE_PROMOTED
    if outcome in (Outcome.FAILED, Outcome.STOPPED):
        return REBUILD_FAILED
    return IMAGE_BLOCKED


def _repository(image: str) -> tuple[str, str, str | None]:
    """(registry, repository, tag) of an image reference; the reference itself when unparsable."""
    try:
        ref = parse_ref(image)
    except InvalidReference:
        return "", image, None
    return ref.registry, ref.repository, ref.tag


def rebuild_event(rebuild: Rebuild, alert: Alert) -> OutcomeEvent:
    """The event for a finished rebuild's verdict, as told in `alert`."""
    outcome = alert.outcome
    kind = detail_type_of(outcome, rebuild.on_tag)
    registry, repository, tag = _repository(rebuild.image)
    promoted = rebuild.image_digest if kind == IMAGE_PROMOTED else None
    name = f"{registry}/{repository}" if registry else repository
    detail: dict[str, Any] = {
        "event_id": f"{rebuild.rebuild_id}:{outcome.value}",
        "outcome": outcome.value,
        "image": rebuild.image,
        "registry": registry,
        "repository": repository,
        "tag": tag,
        "digest": rebuild.image_digest,
        "promoted_digest": promoted,
        "promoted_image": f"{name}@{promoted}" if promoted else None,
        "promoted_by": rebuild.promoted_by if promoted else None,
        "base": rebuild.base,
        "base_digest": rebuild.base_digest,
        "previous_base_digest": rebuild.previous_digest,
        "rebuild_id": rebuild.rebuild_id,
        "build_id": rebuild.build_id,
        "owner": rebuild.owner,
        "scanned": alert.scanned,
        "severity": alert.severity,
        "report_url": alert.report_url,
        "log_url": rebuild.log_url,
        "reasons": [r[:_REASON_CHARS] for r in alert.reasons[:_REASONS]],
    }
    return OutcomeEvent(kind, detail, [rebuild.image])


def patch_event(patch: Patch) -> OutcomeEvent:
    """The event for a patch whose every rebuild (or skipped image) is counted."""
    counts = {
        name: getattr(patch, name)
        for name in ("rebuilds", "finished", "promoted", "blocked", "failed", "succeeded", "stopped")
    }
    detail: dict[str, Any] = {
        "event_id": f"patch:{patch.base}@{patch.digest}:{patch.finished}:{patch.promoted}",
        "base": patch.base,
        "base_digest": patch.digest,
        "previous_base_digest": patch.previous_digest,
        "detected_by": patch.detected_by,
        "detected_at": patch.detected_at.isoformat() if patch.detected_at else None,
        "finished_at": patch.last_finished_at.isoformat() if patch.last_finished_at else None,
        **counts,
        "held": patch.held,
        "skipped": patch.skipped,
    }
    return OutcomeEvent(PATCH_COMPLETED, detail, [patch.base])


def rollback_event(
    image: str, from_digest: str, to_digest: str, *, by: str, at: datetime, rolled_back: Rebuild,
    patched: str | None,
) -> OutcomeEvent:  # fmt: skip
    """The event for a tag a person moved back: from the promoted digest to `to_digest`, undoing
    `rolled_back`'s promotion; `patched` is the patch of its dependents it started, if any."""
    registry, repository, tag = _repository(image)
    name = f"{registry}/{repository}" if registry else repository
    detail: dict[str, Any] = {
        "event_id": f"rollback:{image}:{from_digest}:{to_digest}:{at.isoformat()}",
        "outcome": "rolled_back",
        "image": image,
        "registry": registry,
        "repository": repository,
        "tag": tag,
        "from_digest": from_digest,
        "digest": to_digest,
        "promoted_image": f"{name}@{to_digest}",  # what the tag holds now: deploy this
        "rolled_back_by": by,
        "rolled_back_at": at.isoformat(),
        "rolled_back_rebuild_id": rolled_back.rebuild_id,
        "owner": rolled_back.owner,
        "dependents_patch": patched,
    }
    return OutcomeEvent(IMAGE_ROLLED_BACK, detail, [image])
