"""Rescan promoted images against current advisories; rebuild one whose own packages have fixes.

Each poller tick (OwnPackageRescansPerDay > 0) takes the promoted images whose last rescan is
oldest, as many as the day's budget has left (stored: a restart or a redelivered tick spends
nothing twice), and reads the current findings of the digest on each image's tag: ECR's findings
(ScanSource=ecr), or the report of a scan-only build of that digest that the tick starts
(ScanSource=trivy; its end, in build events, is judged by logic/rescan_build.py). Findings with
a fixed version that the base's findings (for the base digest the image is built on) do not
list are the image's own: a rebuild of that image alone is sent to the rebuild queue, on the
same base digest, with the reason "own packages have fixes: …", under the same gate and
promotion. It is no cascade: the images built on it follow when their base moves, as always.
The same (image, digest, finding set) gives the same rebuild id, so it never starts twice.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
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
    SCANNING,
    RescanState,
    day_of,
    fingerprint,
    oldest_first,
    own_fixable,
    own_fixes_reason,
    rescan_env,
    rescan_rebuild_id,
    rescan_report_uri,
    rescan_token,
)
from patchprop.domain.scan.ecr import read_ecr_findings
from patchprop.ports import Builds, Queue, Reports, Rescans, Scans, Store

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
    """What a rescan reads and writes. With `builds` (ScanSource=trivy), a promoted digest is
    scanned by a scan-only build of one of `projects`, its report left under `reports_uri`."""

    store: Store
    rescans: Rescans
    scans: Scans
    reports: Reports
    rebuild_queue: Queue
    builds: Builds | None = None
    reports_uri: str = ""
    projects: Collection[str] = ()


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
    why = cannot_rescan(parts, scan_source)
    if why:
        log.warning("no own-package rescans: %s", why)
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


def cannot_rescan(parts: RescanParts, scan_source: str) -> str:
    """Why rescans cannot run with these parts ("" when they can): ScanSource=ecr reads ECR's
    findings; ScanSource=trivy needs a builder and a folder for its scan-only builds' reports."""
    if scan_source == "ecr":
        return ""
    if parts.builds is None or not parts.reports_uri:
        return "ScanSource=trivy rescans need a builder and RESCAN_REPORTS_URI (their scan-only builds)"
    return ""


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
    why = cannot_rescan(parts, scan_source)
    if why:
        raise NotPromotable(why, field="image")
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
    done_one = rescan_one(dependent, rebuild, parts.rescans.get_rescan(image), parts, at=now, by_hand=True)
    return RescanAnswer(rescanned=[RescanOutcome(**vars(done_one))])


def rescan_one(
    dependent: Dependent,
    rebuild: Rebuild,
    state: RescanState | None,
    parts: RescanParts,
    *,
    at: datetime,
    by_hand: bool = False,
) -> Rescanned:
    """Read the promoted digest's findings (ECR), or start its scan-only build (trivy); rebuild the
    image alone if its own packages have fixes."""
    image, digest = dependent.image, rebuild.image_digest or ""
    kept = (state or RescanState(image=image)).model_copy(update={"day": day_of(at)})
    try:
        # The tick's scan-only build is one per image, digest and day (a redelivered tick starts
        # none more); each one asked for by hand is a new one (the day's may have ended).
        judged = _judge(
            dependent, rebuild, kept, parts, at.strftime("%Y-%m-%dT%H%M%SZ") if by_hand else kept.day
        )
    except PatchpropError as exc:  # one image's registry, builder or store failure stops no other
        judged = Judged(f"not scanned: {exc}", None, kept.fingerprint)
    put_outcome(kept, judged, parts, at=at, digest=digest)
    log.info("rescanned %s@%s: %s", image, digest, judged.outcome)
    return Rescanned(image, judged.outcome, judged.rebuild_id)


@dataclass(frozen=True)
class Judged:
    """A rescan's outcome, the rebuild it started (or started before), the finding set seen, and
    for a scan-only build still running, its id and where it leaves its report."""

    outcome: str
    rebuild_id: str | None
    fingerprint: str | None
    build_id: str | None = None
    report_uri: str | None = None


def put_outcome(kept: RescanState, judged: Judged, parts: RescanParts, *, at: datetime, digest: str) -> None:
    update = {
        "at": at,
        "digest": digest,
        "outcome": judged.outcome,
        "fingerprint": judged.fingerprint,
        "rebuild_id": judged.rebuild_id or kept.rebuild_id,
        "build_id": judged.build_id,
        "report_uri": judged.report_uri,
    }
    parts.rescans.put_rescan(kept.model_copy(update=update))


def _judge(
    dependent: Dependent, rebuild: Rebuild, state: RescanState, parts: RescanParts, once_per: str
) -> Judged:
    why = not_rebuildable(dependent, rebuild, parts)
    if why:
        return Judged(why, None, state.fingerprint)
    if parts.builds is not None:  # ScanSource=trivy: its report comes from a scan-only build
        return _start_scan(dependent, rebuild, state, parts, once_per)
    image, digest = dependent.image, rebuild.image_digest or ""
    ref = _in_ecr(image)
    if ref is None:
        return Judged(f"not scanned: {image} is not in ECR (ScanSource=ecr)", None, state.fingerprint)
    scan = parts.scans.scan(ref, digest)
    if not scan.complete:
        return Judged(f"not scanned: the ECR scan is {scan.status or 'missing'}", None, state.fingerprint)
    return judge_report(dependent, rebuild, state, read_ecr_findings(scan.pages), parts)


def not_rebuildable(dependent: Dependent, rebuild: Rebuild, parts: RescanParts) -> str:
    """Why a rebuild of the image alone on the base digest it is built on would not do ("" if it would)."""
    if rebuild.base not in dependent.bases:
        return f"not rebuilt: {dependent.image} is no longer built on {rebuild.base}"
    base = parts.store.get_base(rebuild.base)
    if base is None or base.digest != rebuild.base_digest:
        return f"not rebuilt: {rebuild.base} moved since; its patch rebuilds it"
    return ""


def judge_report(
    dependent: Dependent, rebuild: Rebuild, state: RescanState, report: ScanReport, parts: RescanParts
) -> Judged:
    """The promoted digest's current findings against the base's: its own fixable ones start one
    rebuild of the image alone (the same finding set never twice)."""
    image, digest = dependent.image, rebuild.image_digest or ""
    from_base = _base_findings(rebuild, parts)
    if from_base is None:
        why = f"no findings of {rebuild.base}@{rebuild.base_digest}: own packages not told apart"
        return Judged(f"not rebuilt: {why}", None, state.fingerprint)
    own = own_fixable(report, from_base)
    if not own:
        return Judged(f"{NOTHING} ({report.total} findings)", None, state.fingerprint)
    seen = fingerprint(image, digest, own)
    if seen == state.fingerprint:
        return Judged(f"{STARTED} before ({state.rebuild_id}), same findings", state.rebuild_id, seen)
    request = request_for(dependent, rebuild, own_fixes_reason(own), rescan_rebuild_id(image, digest, own))
    parts.rebuild_queue.send(request)  # sent first, recorded second: a resend has the same id
    return Judged(STARTED, request.rebuild_id, seen)


def _start_scan(
    dependent: Dependent, rebuild: Rebuild, state: RescanState, parts: RescanParts, once_per: str
) -> Judged:
    """One scan-only build of the promoted digest (PATCHPROP_MODE=rescan) per `once_per` (the
    day, or the moment of a rescan by hand); its end, in build events, judges the report it left
    (logic/rescan_build.py)."""
    assert parts.builds is not None
    image, digest = dependent.image, rebuild.image_digest or ""
    if dependent.project not in parts.projects:
        why = f"not scanned: its project {dependent.project} is not in RebuildProjects"
        return Judged(why, None, state.fingerprint)
    ref = parse_ref(image)
    uri = rescan_report_uri(parts.reports_uri, f"{ref.registry}/{ref.repository}", digest, once_per)
    build_id = parts.builds.start_build(
        dependent.project,
        rescan_env(image, ref.with_digest(digest).pinned, digest, uri),
        idempotency_token=rescan_token(image, digest, once_per),
        source_version=dependent.source_version,
        source_location=dependent.source_location,
    )
    log.info("scan-only build of %s@%s started: %s", image, digest, build_id)
    return Judged(SCANNING, state.rebuild_id, state.fingerprint, build_id=build_id, report_uri=uri)


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
