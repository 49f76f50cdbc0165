"""People stay in charge: promote a rebuild the gate held back, roll an image's tag back.

Both change nothing when they cannot be done (NotFound, NotPromotable: the API's 404 / 409).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import BaseModel, Field

from patchprop.domain.alerts import Alert, Message, message
from patchprop.domain.events import BuildResult
from patchprop.domain.models import Digest, PatchRequest, utcnow
from patchprop.domain.outcome_events import rollback_event
from patchprop.domain.receipt import Promoter
from patchprop.domain.records import Outcome, Promotion, Rebuild
from patchprop.logic.alerts import count_on_patch
from patchprop.logic.announce import announce_rebuild
from patchprop.logic.conclude import resume_cascade
from patchprop.logic.promote import Evidence, attach_evidence, check_promotable, move_by_hand, roll_back
from patchprop.logic.verdict import judge, read_result
from patchprop.ports import Builds, EventBus, Queue, Store, TagMover, Topic

log = logging.getLogger(__name__)

# ---- what the API takes and answers ---------------------------------------------------------


class PromoteRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=1000, description="Why a person promotes it")


class PromoteAnswer(BaseModel):
    rebuild_id: str
    image: str
    digest: str
    promoted_by: str
    promoted_at: str
    released: list[str] = Field(description="Images of its cascade enqueued now")

    @classmethod
    def of(cls, rebuild: Rebuild, who: str, released: list[str]) -> PromoteAnswer:
        return cls(
            rebuild_id=rebuild.rebuild_id,
            image=rebuild.image,
            digest=rebuild.image_digest or "",
            promoted_by=rebuild.promoted_by or who,
            promoted_at=(rebuild.promoted_at.isoformat() if rebuild.promoted_at else ""),
            released=released,
        )


class RollbackRequest(BaseModel):
    to: Digest | None = Field(None, description="An earlier digest of the tag (default: the previous)")


class RollbackAnswer(BaseModel):
    image: str
    from_digest: str
    to_digest: str
    rolled_back_by: str
    dependents_patch: str | None = Field(
        None,
        description="The patch of the images built on it, onto to_digest, started now (<image>@<digest>)",
    )


# ---- promote, roll back ----------------------------------------------------------------------


def promote_by_hand(
    rebuild_id: str,
    *,
    who: str,
    reason: str,
    store: Store,
    tag_mover: TagMover,
    topic: Topic,
    rebuild_queue: Queue,
    builds: Builds | None = None,
    evidence: Evidence | None = None,
    bus: EventBus | None = None,
) -> tuple[Rebuild, list[str]]:
    """Move the tag to a finished rebuild's digest on a person's word; returns it and the images
    its cascade released."""
    promoter = Promoter(by="person", name=who, reason=reason, at=utcnow())  # refuses no name or reason
    rebuild = check_promotable(store.get_rebuild(rebuild_id), rebuild_id)
    move_by_hand(rebuild, store=store, tag_mover=tag_mover)
    said = f"Promoted by hand by {who} at {promoter.at.isoformat()}: {reason}"
    recorded = (
        store.record_promotion(
            rebuild_id,
            Promotion(
                outcome=Outcome.PROMOTED,
                reasons=[*rebuild.reasons, said],
                promoted_by=who,
                promoted_at=promoter.at,
                promotion_reason=reason,
            ),
        )
        or rebuild
    )
    if evidence is not None:
        recorded = _evidence(recorded, promoter, store=store, builds=builds, evidence=evidence)
    _tell(recorded, said, store=store, topic=topic, bus=bus)
    released = resume_cascade(recorded, store=store, rebuild_queue=rebuild_queue)
    # Counted on its patch as what the gate said; it is promoted now (after the images released
    # are uncounted, so the patch's summary waits for them).
    if store.uncount_finished(rebuild.patch, rebuild_id, rebuild.told_outcome.value):
        count_on_patch(
            rebuild.patch, rebuild_id, Outcome.PROMOTED.value, promoter.at, store=store, topic=topic, bus=bus
        )
    return recorded, released


def _evidence(
    rebuild: Rebuild, promoter: Promoter, *, store: Store, builds: Builds | None, evidence: Evidence
) -> Rebuild:
    result = None
    if builds is not None and rebuild.build_id:
        result, _ = read_result(builds, rebuild.build_id)
    if result is None:  # no builder to ask (the API): what the rebuild recorded of its result
        result = BuildResult(digest=rebuild.image_digest, report=rebuild.report_uri, sbom=rebuild.sbom_uri)
    gate_result = None
    if result.report:
        gate_result = judge(rebuild, result, store=store, reports=evidence.reports, require_scan=False).result
    attached, notes = attach_evidence(rebuild, result, gate_result, promoter, store=store, evidence=evidence)
    signed = evidence.signer is not None and not any(note.startswith("Signing ") for note in notes)
    promotion = Promotion(
        outcome=Outcome.PROMOTED, reasons=[*rebuild.reasons, *notes], evidence=attached, signed=signed
    )
    return store.record_promotion(rebuild.rebuild_id, promotion) or rebuild


def _tell(rebuild: Rebuild, said: str, *, store: Store, topic: Topic, bus: EventBus | None) -> None:
    alert = Alert.from_rebuild(rebuild).model_copy(
        update={"outcome": Outcome.PROMOTED, "reasons": rebuild.reasons}
    )
    told = message(alert, "email")
    topic.publish(Message(told.subject, told.body, {**told.attributes, "promoted_by": "person"}))
    announce_rebuild(rebuild, alert, store=store, bus=bus)


@dataclass(frozen=True)
class RolledBack:
    """A tag moved back, and the patch of the images built on it that the move started."""

    from_digest: str
    to_digest: str
    patch: PatchRequest | None = None
    note: str | None = None  # why no patch was started when one was due


def rollback(
    image: str,
    to: str | None,
    *,
    who: str,
    store: Store,
    tag_mover: TagMover,
    topic: Topic,
    patches: Queue | None = None,
    bus: EventBus | None = None,
) -> RolledBack:
    """Move `image`'s tag back to its previous promoted digest (or `to`); the images built on it
    are patched onto that digest (with `patches`, once per move); told on the topic and the bus."""
    at = utcnow()
    before, after, undone = roll_back(image, to, who, store=store, tag_mover=tag_mover)
    done = RolledBack(before, after)
    if patches is not None:
        done = patch_dependents(image, done, undone, store=store, patches=patches)
    body = f"{who} rolled {image} back: its tag moved from {before} to {after}."
    if done.patch is not None:
        body += f" The images built on it are patched onto {after}."
    elif done.note:
        body += f" {done.note}"
    topic.publish(
        Message(f"patchprop: {image} rolled back"[:100], body, {"outcome": "rollback", "image": image})
    )
    if bus is not None:
        patched = done.patch.cascade_id if done.patch else None
        bus.put(rollback_event(image, before, after, by=who, at=at, rolled_back=undone, patched=patched))
    return done


def patch_dependents(
    image: str, done: RolledBack, undone: Rebuild, *, store: Store, patches: Queue
) -> RolledBack:
    """`image` is a base of others: send the planner a patch of them onto the digest the tag went
    back to, forced now, once per move (a repeated rollback of the same move starts nothing)."""
    if next(iter(store.dependents_of(image)), None) is None:
        return done
    if not store.claim_rollback(image, done.to_digest, undone.rebuild_id):
        return done
    patch = PatchRequest(
        base=image,
        digest=done.to_digest,
        previous_digest=done.from_digest or None,
        detected_by="person",
        force_now=True,
        rollback_of=undone.rebuild_id,
    )
    try:
        patches.send(patch)
    except Exception as exc:  # the tag is back all the same: told, not raised
        store.release_rollback(image, done.to_digest, undone.rebuild_id)
        log.warning("the patch of %s's dependents onto %s was not sent: %s", image, done.to_digest, exc)
        note = f"The patch of the images built on it could not be started ({exc}): patch them by hand."
        return RolledBack(done.from_digest, done.to_digest, note=note)
    return RolledBack(done.from_digest, done.to_digest, patch)
