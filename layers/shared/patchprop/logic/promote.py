"""Promote a judged rebuild: move its tag to the candidate's digest, attach its evidence, sign.

The tag moves only from the digest it had when the rebuild started (recorded at start), so an
older candidate never overwrites a newer promotion. `promote_built` is the automatic path (a
build that passed the gate); `promote_by_hand` and `roll_back` are the people's (API and CLI).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patchprop.domain.errors import (
    ManifestNotFound,
    NotFound,
    NotPromotable,
    PromotionPending,
    RegistryError,
    TagMoved,
    TagMoveRefused,
)
from patchprop.domain.events import BuildResult
from patchprop.domain.findings import ScanReport, ScanReportError
from patchprop.domain.gate import GateResult, parse_policy
from patchprop.domain.models import utcnow
from patchprop.domain.receipt import RECEIPT_ARTIFACT_TYPE, BaseMove, Promoter, Receipt, build_receipt
from patchprop.domain.records import Outcome, Promotion, Rebuild
from patchprop.domain.refs import ImageRef, parse_ref
from patchprop.domain.scan import parse_report
from patchprop.logic.verdict import last_promoted_with_sbom
from patchprop.ports import Referrers, Reports, Signer, Store, TagMover

log = logging.getLogger(__name__)
MOVE_ATTEMPTS = 3  # failed tag moves (registry down) before the rebuild is told "passed, not promoted"
SBOM_ARTIFACT_TYPE = "application/vnd.cyclonedx+json"
SCAN_ARTIFACT_TYPE = "application/vnd.patchprop.scan-report.v1+json"


def by_hand_hint(rebuild_id: str) -> str:
    return f"The tag did not move. To promote it by hand: patchprop promote {rebuild_id} --reason '…'"


def tag_now(image: str, tag_mover: TagMover) -> str | None:
    """The digest `image`'s tag holds now (None: no such tag), recorded when a rebuild starts."""
    ref = parse_ref(image)
    try:
        return tag_mover.tag_digest(ref, ref.tag or "latest")
    except ManifestNotFound:
        return None


@dataclass(frozen=True)
class Moved:
    """What a tag move came to: on the tag (promoted_at set) or held with the reason."""

    outcome: Outcome
    reasons: list[str]
    promoted_at: datetime | None = None


def move_candidate(rebuild: Rebuild, digest: str, *, store: Store, tag_mover: TagMover) -> Moved:
    """Move the tag of a rebuild that passed to its candidate. PromotionPending: try again later."""
    ref = parse_ref(rebuild.image)
    try:
        expect = rebuild.tag_digest_at_start
        if not rebuild.tag_checked:  # unknown at start: from what it holds now (a weaker guard)
            expect = tag_now(rebuild.image, tag_mover)
        tag_mover.move_tag(ref.without_digest(), ref.tag or "latest", digest, expect)
    except TagMoved as exc:
        return Moved(Outcome.HELD, [f"A newer image is on the tag: {exc}.", by_hand_hint(rebuild.rebuild_id)])
    except TagMoveRefused as exc:
        return Moved(
            Outcome.HELD, [f"The registry refused the tag move: {exc}.", by_hand_hint(rebuild.rebuild_id)]
        )
    except RegistryError as exc:
        attempts = store.count_promotion_attempt(rebuild.rebuild_id, str(exc))
        if attempts < MOVE_ATTEMPTS:
            raise PromotionPending(f"moving {rebuild.image} to {digest} failed ({attempts}): {exc}") from exc
        reason = f"The tag move failed {attempts} times: {exc}."
        return Moved(Outcome.HELD, [reason, by_hand_hint(rebuild.rebuild_id)])
    _record_base_digest(rebuild.image, digest, store=store)
    return Moved(Outcome.PROMOTED, [], promoted_at=utcnow())


def _record_base_digest(image: str, digest: str, *, store: Store) -> None:
    """An image that is a base now has `digest`: recorded so our own tag move is not a new patch."""
    base = store.get_base(image)
    if base is not None and base.digest != digest:
        store.record_digest(image, base.digest, digest)


# ---- evidence ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """Where the evidence goes and what it is read from."""

    referrers: Referrers
    reports: Reports
    signer: Signer | None = None


def attach_evidence(
    rebuild: Rebuild,
    result: BuildResult | None,
    gate_result: GateResult | None,
    promoter: Promoter,
    *,
    store: Store,
    evidence: Evidence,
) -> tuple[list[str], list[str]]:
    """Attach the SBOM, scan report and receipt to the promoted digest, then sign it.

    Best effort: the tag has moved already; what could not be attached is returned as notes.
    Returns (referrer digests, notes).
    """
    if not rebuild.image_digest:
        return [], []
    subject = parse_ref(rebuild.image).with_digest(rebuild.image_digest)
    attached: list[str] = []
    notes: list[str] = []
    sbom = _read_json(result.sbom if result else None, evidence.reports, notes, "SBOM")
    for uri, kind in (
        (result.sbom if result else None, SBOM_ARTIFACT_TYPE),
        (result.report if result else None, SCAN_ARTIFACT_TYPE),
    ):
        if uri:
            _attach(
                subject, kind, functools.partial(evidence.reports.read_report, uri), evidence, attached, notes
            )
    if sbom is not None:
        receipt = _receipt(
            rebuild, result, gate_result, promoter, sbom, store=store, reports=evidence.reports
        )
        _attach(subject, RECEIPT_ARTIFACT_TYPE, receipt.to_json, evidence, attached, notes)
    else:
        notes.append(
            "No receipt attached: the build left no SBOM (install syft in the build, or SBOM=required)."
        )
    if evidence.signer is not None:
        try:
            evidence.signer.sign(subject)
        except Exception as exc:  # the tag stays moved: the failure is logged and told (its note)
            log.warning("signing %s failed: %s", subject.pinned, exc)
            notes.append(f"Signing {subject.pinned} failed: {exc}.")
    return attached, notes


def _attach(
    subject: ImageRef,
    kind: str,
    read: Callable[[], bytes],
    evidence: Evidence,
    attached: list[str],
    notes: list[str],
) -> None:
    try:
        blob = read()
        descriptor = evidence.referrers.attach_referrer(
            subject, kind, blob, kind, {"org.opencontainers.image.created": utcnow().isoformat()}
        )
        attached.append(str(descriptor["digest"]))
    except Exception as exc:
        log.warning("attaching %s to %s failed: %s", kind, subject.pinned, exc)
        notes.append(f"Could not attach {kind} to {subject.pinned}: {exc}.")


def _read_json(uri: str | None, reports: Reports, notes: list[str], what: str) -> dict[str, Any] | None:
    if not uri:
        return None
    try:
        value = json.loads(reports.read_report(uri))
        return value if isinstance(value, dict) else None
    except (ScanReportError, ValueError, OSError) as exc:
        notes.append(f"The {what} ({uri}) could not be read: {exc}.")
        return None


def _receipt(
    rebuild: Rebuild,
    result: BuildResult | None,
    gate_result: GateResult | None,
    promoter: Promoter,
    sbom: dict[str, Any],
    *,
    store: Store,
    reports: Reports,
) -> Receipt:
    earlier = last_promoted_with_sbom(rebuild, store=store)
    old_sbom = _read_json(earlier.sbom_uri if earlier else None, reports, [], "previous SBOM")
    base_report: ScanReport | None = None
    if result and result.base_report:
        try:
            base_report = parse_report(reports.read_report(result.base_report))
        except ScanReportError:
            base_report = None
    decided = gate_result or GateResult(
        outcome="promoted", reasons=["not scanned: RequireScan=false lets a rebuild that built through"]
    )
    return build_receipt(
        rebuild_id=rebuild.rebuild_id,
        image=parse_ref(rebuild.image),
        digest=rebuild.image_digest or "",
        previous_digest=rebuild.tag_digest_at_start,
        base=BaseMove(name=rebuild.base, old_digest=rebuild.previous_digest, new_digest=rebuild.base_digest),
        gate_result=decided,
        policy=parse_policy(rebuild.policy),
        promoted_by=promoter,
        old_sbom=old_sbom,
        new_sbom=sbom,
        base_report=base_report,
        method=rebuild.method,
        fallback_reason=rebuild.fallback_reason,
    )


# ---- by hand ----------------------------------------------------------------------------------


def check_promotable(rebuild: Rebuild | None, rebuild_id: str) -> Rebuild:
    """The rebuild a person may promote, or NotFound / NotPromotable naming why not."""
    if rebuild is None:
        raise NotFound(f"no rebuild {rebuild_id}", field="rebuild_id")
    if not rebuild.status.final:
        raise NotPromotable(
            f"rebuild {rebuild_id} is still {rebuild.status.value}: wait for its verdict", field="rebuild_id"
        )
    if rebuild.on_tag:
        raise NotPromotable(
            f"rebuild {rebuild_id} is promoted already ({rebuild.image_digest})", field="rebuild_id"
        )
    if not rebuild.image_digest:
        raise NotPromotable(
            f"rebuild {rebuild_id} pushed no image ({rebuild.told_outcome.value}): nothing to promote",
            field="rebuild_id",
        )
    return rebuild


def move_by_hand(rebuild: Rebuild, *, store: Store, tag_mover: TagMover) -> None:
    """Move the tag for a person; NotPromotable when the tag moved since the rebuild started."""
    ref = parse_ref(rebuild.image)
    digest = rebuild.image_digest or ""
    try:
        tag_mover.move_tag(ref.without_digest(), ref.tag or "latest", digest, rebuild.tag_digest_at_start)
    except TagMoved as exc:
        raise NotPromotable(f"{exc}; a newer rebuild or push is on the tag", field="rebuild_id") from exc
    except TagMoveRefused as exc:
        raise NotPromotable(str(exc), field="rebuild_id") from exc
    _record_base_digest(rebuild.image, digest, store=store)


def rollback_target(image: str, to: str | None, current: str | None, *, store: Store) -> tuple[str, Rebuild]:
    """(digest to go back to, the promoted rebuild that is on the tag now); NotPromotable if none."""
    promoted = [r for r in store.recent_rebuilds(image, limit=100) if r.on_tag and r.image_digest]
    on_tag = next((r for r in promoted if r.image_digest == current), None)
    if on_tag is None:
        raise NotPromotable(
            f"{image}'s tag ({current or 'absent'}) is not a digest patchprop promoted: nothing to roll back",
            field="image",
        )
    earlier = [r.image_digest for r in promoted if r.image_digest != current]
    earlier += [
        r.tag_digest_at_start for r in promoted if r.tag_digest_at_start and r.tag_digest_at_start != current
    ]
    if to is not None:
        if to not in earlier:
            raise NotPromotable(
                f"{to} was never on {image}'s tag before {current}: not rolling back to it", field="to"
            )
        return to, on_tag
    if on_tag.tag_digest_at_start and on_tag.tag_digest_at_start != current:
        return on_tag.tag_digest_at_start, on_tag
    if not earlier:
        raise NotPromotable(f"{image} has no earlier promoted digest to roll back to", field="image")
    return str(earlier[0]), on_tag


def roll_back(
    image: str, to: str | None, who: str, *, store: Store, tag_mover: TagMover
) -> tuple[str, str, Rebuild]:
    """Move `image`'s tag back (to `to`, else the digest before the current promotion).

    Returns (from, to, the rebuild whose promotion it undid). Nothing is changed when it cannot be done.
    """
    if store.get_dependent(image) is None:
        raise NotFound(f"no image {image} is registered", field="image")
    ref = parse_ref(image)
    current = tag_now(image, tag_mover)
    target, on_tag = rollback_target(image, to, current, store=store)
    try:
        tag_mover.move_tag(ref.without_digest(), ref.tag or "latest", target, current)
    except (TagMoved, TagMoveRefused) as exc:
        raise NotPromotable(str(exc), field="image") from exc
    _record_base_digest(image, target, store=store)
    at = utcnow()
    store.record_promotion(
        on_tag.rebuild_id,
        Promotion(
            outcome=on_tag.told_outcome,
            reasons=[*on_tag.reasons, f"Rolled back by {who} at {at.isoformat()}: the tag is at {target}."],
            rolled_back_at=at,
        ),
    )
    return current or "", target, on_tag
