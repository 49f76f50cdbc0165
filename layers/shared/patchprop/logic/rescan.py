"""Rescan promoted images against current advisories; rebuild one whose own packages have fixes.

Each poller tick (OwnPackageRescansPerDay > 0) takes the promoted images whose last rescan is
oldest, as many as the day's budget has left (stored: a restart or a redelivered tick spends
nothing twice), and reads the current findings of the digest on each image's tag. Findings with
a fixed version that the base's findings (for the base digest the image is built on) do not
list are the image's own: a rebuild of that image alone is sent to the rebuild queue, on the
same base digest, with the reason "own packages have fixes: …", under the same gate and
promotion. It is no cascade: the images built on it follow when their base moves, as always.
The same (image, digest, finding set) gives the same rebuild id, so it never starts twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

from patchprop.domain.errors import InvalidReference, NotFound, NotPromotable, PatchpropError
from patchprop.domain.findings import ScanReport
from patchprop.domain.judging import optional_report
from patchprop.domain.models import Dependent, PatchRequest, RebuildRequest, utcnow
from patchprop.domain.records import Rebuild
from patchprop.domain.refs import ImageRef, parse_ref
from patchprop.domain.rescan import (
    RescanState,
    day_of,
    fingerprint,
    oldest_first,
    own_fixable,
    own_fixes_reason,
    rescan_rebuild_id,
)
from patchprop.domain.scan.ecr import read_ecr_findings
from patchprop.ports import Queue, Reports, Rescans, Scans, Store

log = logging.getLogger(__name__)
STARTED = "rebuild started"
NOTHING = "no fixable own findings"


@dataclass(frozen=True)
class Rescanned:
    image: str
    outcome: str
    rebuild_id: str | None = None


@dataclass(frozen=True)
class RescanParts:
    store: Store
    rescans: Rescans
    scans: Scans
    reports: Reports
    rebuild_queue: Queue


def on_tag(image: str, *, store: Store, within: int = 100) -> Rebuild | None:
    """The image's newest rebuild whose digest is on its tag (promoted, not rolled back)."""
    for rebuild in store.recent_rebuilds(image, limit=within):
        if rebuild.on_tag and rebuild.image_digest:
            return rebuild
    return None


def rescan_due(
    parts: RescanParts,
    *,
    per_day: int,
    scan_source: str,
    only: str | None = None,
    now: datetime | None = None,
) -> list[Rescanned]:
    """One tick: rescan the oldest-rescanned promoted images, at most the day's remaining budget.

    `only` rescans that one image (it still spends one of the day's budget, once a day).
    """
    if per_day <= 0:
        return []
    if scan_source != "ecr":
        log.warning("own-package rescans need ScanSource=ecr; with trivy they are not built yet")
        return []
    now = now or utcnow()
    day = day_of(now)
    if parts.rescans.rescans_spent(day) >= per_day:
        return []  # one read, not one per image, on every tick after the budget is spent
    waiting: dict[str, RescanState | None] = {}
    promoted: dict[str, tuple[Dependent, Rebuild]] = {}
    for dependent in parts.store.list_dependents():
        if (only and dependent.image != only) or not dependent.auto_rebuild:
            continue
        state = parts.rescans.get_rescan(dependent.image)
        if state is not None and state.day == day:
            continue  # rescanned today already (this tick delivered twice, or an earlier one)
        rebuild = on_tag(dependent.image, store=parts.store)
        if rebuild is not None:
            waiting[dependent.image], promoted[dependent.image] = state, (dependent, rebuild)
    done: list[Rescanned] = []
    for image in oldest_first(waiting):
        if len(done) >= per_day:
            break
        if not parts.rescans.claim_rescan(image, day, per_day):
            continue  # the day's budget is spent, or another tick took this image
        dependent, rebuild = promoted[image]
        done.append(rescan_one(dependent, rebuild, waiting[image], parts, at=now))
    return done


class RescanOutcome(BaseModel):
    image: str
    outcome: str
    rebuild_id: str | None = None


class RescanAnswer(BaseModel):
    """What a rescan asked for by hand did: each image rescanned, its outcome and rebuild."""

    rescanned: list[RescanOutcome] = Field(default_factory=list)
    note: str = ""


def rescan_by_hand(
    parts: RescanParts,
    *,
    per_day: int,
    scan_source: str,
    image: str | None = None,
    now: datetime | None = None,
) -> RescanAnswer:
    """`patchprop rescan [IMAGE]`: the named image now, whatever the day's budget (and spending
    none of it), or else what the tick would rescan (within the budget). Its rebuild, if its own
    packages have fixes, goes under the same gate and promotion as every other."""
    if scan_source != "ecr":
        raise NotPromotable("own-package rescans need ScanSource=ecr (ECR's current findings)", field="image")
    now = now or utcnow()
    if image is None:
        done = rescan_due(parts, per_day=per_day, scan_source=scan_source, now=now)
        note = "" if per_day > 0 else "OwnPackageRescansPerDay is 0: nothing is due; name an image"
        return RescanAnswer(rescanned=[RescanOutcome(**vars(r)) for r in done], note=note)
    dependent = parts.store.get_dependent(image)
    if dependent is None:
        raise NotFound(f"{image} is not a registered image", field="image")
    if not dependent.auto_rebuild:
        raise NotPromotable(f"{image} is tracked only (auto_rebuild off): nothing rebuilds it", field="image")
    rebuild = on_tag(image, store=parts.store)
    if rebuild is None:
        raise NotPromotable(
            f"no digest of {image} was promoted by patchprop: nothing to rescan", field="image"
        )
    done_one = rescan_one(dependent, rebuild, parts.rescans.get_rescan(image), parts, at=now)
    return RescanAnswer(rescanned=[RescanOutcome(**vars(done_one))])


def rescan_one(
    dependent: Dependent, rebuild: Rebuild, state: RescanState | None, parts: RescanParts, *, at: datetime
) -> Rescanned:
    """Read the promoted digest's findings; rebuild the image alone if its own packages have fixes."""
    image, digest = dependent.image, rebuild.image_digest or ""
    kept = state or RescanState(image=image)
    try:
        outcome, rebuild_id, seen = _judge(dependent, rebuild, kept, parts)
    except PatchpropError as exc:  # one image's registry or store failure does not stop the rest
        outcome, rebuild_id, seen = f"not scanned: {exc}", None, kept.fingerprint
    parts.rescans.put_rescan(
        kept.model_copy(
            update={
                "day": day_of(at),
                "at": at,
                "digest": digest,
                "outcome": outcome,
                "fingerprint": seen,
                "rebuild_id": rebuild_id or kept.rebuild_id,
            }
        )
    )
    log.info("rescanned %s@%s: %s", image, digest, outcome)
    return Rescanned(image, outcome, rebuild_id)


def _judge(
    dependent: Dependent, rebuild: Rebuild, state: RescanState, parts: RescanParts
) -> tuple[str, str | None, str | None]:
    image, digest = dependent.image, rebuild.image_digest or ""
    if rebuild.base not in dependent.bases:
        return f"not rebuilt: {image} is no longer built on {rebuild.base}", None, state.fingerprint
    base = parts.store.get_base(rebuild.base)
    if base is None or base.digest != rebuild.base_digest:
        return f"not rebuilt: {rebuild.base} moved since; its patch rebuilds it", None, state.fingerprint
    ref = _in_ecr(image)
    if ref is None:
        return f"not scanned: {image} is not in ECR (ScanSource=ecr)", None, state.fingerprint
    scan = parts.scans.scan(ref, digest)
    if not scan.complete:
        return f"not scanned: the ECR scan is {scan.status or 'missing'}", None, state.fingerprint
    report = read_ecr_findings(scan.pages)
    from_base = _base_findings(rebuild, parts)
    if from_base is None:
        why = f"no findings of {rebuild.base}@{rebuild.base_digest}: own packages not told apart"
        return f"not rebuilt: {why}", None, state.fingerprint
    own = own_fixable(report, from_base)
    if not own:
        return f"{NOTHING} ({report.total} findings)", None, state.fingerprint
    seen = fingerprint(image, digest, own)
    if seen == state.fingerprint:
        return f"{STARTED} before ({state.rebuild_id}), same findings", state.rebuild_id, seen
    request = request_for(dependent, rebuild, own_fixes_reason(own), rescan_rebuild_id(image, digest, own))
    parts.rebuild_queue.send(request)  # sent first, recorded second: a resend has the same id
    return STARTED, request.rebuild_id, seen


def request_for(dependent: Dependent, rebuild: Rebuild, reason: str, rebuild_id: str) -> RebuildRequest:
    """A rebuild of the image alone (no cascade, no rebase) on the base digest it is built on."""
    same = PatchRequest(
        base=rebuild.base,
        digest=rebuild.base_digest,
        previous_digest=rebuild.base_digest,
        detected_by="poller",
    )
    request = RebuildRequest.for_dependent(dependent, same, None, base_report=rebuild.base_report)
    return request.model_copy(update={"rebuild_id": rebuild_id, "trigger": reason, "patch_by": "rebuild"})


def _base_findings(rebuild: Rebuild, parts: RescanParts) -> ScanReport | None:
    """The base's findings for its digest: its ECR scan when the base is in ECR, else its report."""
    base = _in_ecr(rebuild.base)
    if base is not None:
        scan = parts.scans.scan(base, rebuild.base_digest)
        if scan.complete:
            return read_ecr_findings(scan.pages)
    if not rebuild.base_report:
        return None
    uri = rebuild.base_report
    return optional_report(lambda: parts.reports.read_report(uri), "the base's", [])


def _in_ecr(image: str) -> ImageRef | None:
    try:
        ref = parse_ref(image)
    except InvalidReference:
        return None
    return ref if ".dkr.ecr." in ref.registry else None
