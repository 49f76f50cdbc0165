"""Scan a base digest that has no report, once, before its cascade (issue 14).

In AWS the planner has no scanner. When the base check finds no report of a new digest, the
planner records one check-only scan of (base, digest) with a conditional put, and only the writer
that won starts ONE check-only build (`PATCHPROP_MODE=base-check`) on the rebuild project of the
first dependent it may start; the patch is kept with the scan and not planned yet. When that build
ends, build events send the kept patch back marked `base_scanned`: the planner then reads the
fresh report and plans. A scan that failed, was stopped or could not start is said: the check
goes on "not scanned" (a weaker comparison), with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from patchprop.domain.base_check import BaseJudgement
from patchprop.domain.base_scan import BASE_CHECK_MODE, ENDED, MODE_VAR, BaseScan, scan_env, scan_token
from patchprop.domain.errors import BuildStartFailed, BuildThrottled
from patchprop.domain.events import BuildStateChange
from patchprop.domain.models import Dependent, PatchRequest, utcnow
from patchprop.domain.refs import parse_ref
from patchprop.ports import BaseScans, Builds, Catalog, Queue

log = logging.getLogger(__name__)
UNSTARTED_AFTER = 60.0  # seconds: twice the planner's Timeout; a claim older with no build is dead


@dataclass(frozen=True)
class BaseScanner:
    """What starts a check-only scan: the builder (CodeBuild), the scans' records, the reports'
    folder the build writes to, and the projects this stack may start."""

    builds: Builds
    scans: BaseScans
    reports_uri: str
    projects: Collection[str]


@dataclass(frozen=True)
class ScanFirst:
    """Whether the patch waits for its scan, and what the check is to say about it."""

    waiting: bool = False
    notes: tuple[str, ...] = ()


def scan_first(
    patch: PatchRequest, check: BaseJudgement, *, scanner: BaseScanner, catalog: Catalog
) -> ScanFirst:
    """Start the one check-only scan of the patch's digest unless it has a report (or was scanned)."""
    if patch.base_scanned:  # back from its scan: check it with what the scan left
        if check.scanned:
            return ScanFirst()
        why = patch.base_scan_failure or "it left no report.json (no trivy in the build's image?)"
        return ScanFirst(notes=(f"The check-only scan of the base gave no report: {why}.",))
    if check.scanned or not check.verified:
        return ScanFirst()
    dependent = _first_startable(patch.base, catalog, scanner.projects)
    if dependent is None:
        note = "No check-only scan of the base: no dependent's project is one this stack may start."
        return ScanFirst(notes=(note,))
    scan = BaseScan(base=patch.base, digest=patch.digest, patch=patch, project=dependent.project)
    if not scanner.scans.claim_base_scan(scan):
        claimed = scanner.scans.get_base_scan(patch.base, patch.digest)
        if not _unstarted(claimed):
            return _claimed_before(_with_asks(claimed, patch, scanner.scans))
    return _start(patch, dependent, scanner)


def _start(patch: PatchRequest, dependent: Dependent, scanner: BaseScanner) -> ScanFirst:
    try:
        build_id = scanner.builds.start_build(
            dependent.project,
            scan_env(patch, parse_ref(patch.base).with_digest(patch.digest).pinned, scanner.reports_uri),
            idempotency_token=scan_token(patch.base, patch.digest),
            source_version=dependent.source_version,
            source_location=dependent.source_location,
        )
    except BuildThrottled:  # not now: the patch's retry claims and starts it again
        scanner.scans.drop_base_scan(patch.base, patch.digest)
        raise
    except BuildStartFailed as exc:
        scanner.scans.finish_base_scan(patch.base, patch.digest, "failed", str(exc), "")
        return ScanFirst(notes=(f"The check-only scan of the base could not start: {exc}.",))
    scanner.scans.set_base_scan_build(patch.base, patch.digest, build_id)
    log.info("check-only scan of %s@%s started: %s", patch.base, patch.digest, build_id)
    return ScanFirst(waiting=True)


def _unstarted(scan: BaseScan | None) -> bool:
    """Claimed long ago and no build recorded: its planner died between the claim and StartBuild
    (the redelivery starts it, with the same idempotency token)."""
    if scan is None or scan.state != "checking" or scan.build_id:
        return False
    return (utcnow() - scan.started_at).total_seconds() > UNSTARTED_AFTER


def _with_asks(scan: BaseScan | None, patch: PatchRequest, scans: BaseScans) -> BaseScan | None:
    """An owner's `--now`, or a rollback's patch, arriving while the scan runs: kept with the
    patch it holds (which goes back when it ends), not dropped. The scan as it is now."""
    if scan is None or scan.state != "checking":
        return scan
    held = scan.patch
    asks = {
        "force_now": held.force_now or patch.force_now,
        "rollback_of": held.rollback_of or patch.rollback_of,
    }
    if asks == {"force_now": held.force_now, "rollback_of": held.rollback_of}:
        return scan  # a redelivery, or another detector's sight of the same digest
    merged = scan.model_copy(update={"patch": held.model_copy(update=asks)})
    if scans.keep_patch(merged):
        log.info("kept with the scan of %s@%s: %s", patch.base, patch.digest, asks)
        return merged
    return scans.get_base_scan(patch.base, patch.digest)  # it ended meanwhile: go on as after it


def _claimed_before(scan: BaseScan | None) -> ScanFirst:
    """Another delivery claimed the scan: wait while it runs (nothing is started twice)."""
    if scan is None or scan.state == "checking":
        return ScanFirst(waiting=True)
    if scan.state == "failed":
        return ScanFirst(notes=(f"The check-only scan of the base gave no report: {scan.reason}.",))
    return ScanFirst()


def _first_startable(base: str, catalog: Catalog, projects: Collection[str]) -> Dependent | None:
    return next((d for d in catalog.dependents_of(base) if d.project in projects), None)


def sweep_base_scans(
    *, scans: BaseScans, patches: Queue, timeout_minutes: float, now: datetime | None = None
) -> list[BaseScan]:
    """The poller's tick: a check-only scan still `checking` past `timeout_minutes` lost its end
    (the event, or left in BuildEventsDLQ; or its planner died and nothing redelivered): its
    patch goes back to the planner marked scanned with the reason, so the check goes on under
    the policy's "not scanned" rule. Sent first, recorded second: a late real end then sends
    nothing, and a patch sent twice is planned once (the planner's idempotency key)."""
    started_before = (now or utcnow()) - timedelta(minutes=timeout_minutes)
    swept = []
    for scan in scans.checking_base_scans(started_before):
        build = scan.build_id or "none started"
        reason = f"no end of its check-only scan within {timeout_minutes:g} minutes (build: {build})"
        patches.send(scan.patch.model_copy(update={"base_scanned": True, "base_scan_failure": reason}))
        if scans.finish_base_scan(scan.base, scan.digest, "failed", reason, scan.build_id or ""):
            log.warning("check-only scan of %s@%s swept: %s", scan.base, scan.digest, reason)
            swept.append(scan.model_copy(update={"state": "failed", "reason": reason}))
    return swept


def is_base_scan(detail: BuildStateChange) -> bool:
    return detail.env(MODE_VAR) == BASE_CHECK_MODE


def base_scan_ended(detail: BuildStateChange, *, scans: BaseScans, patches: Queue) -> BaseScan | None:
    """A check-only build's state change: when it ended, its kept patch goes back to the planner
    marked `base_scanned` (with the reason when it gave nothing), once. None: not ended, or not ours."""
    state = ENDED.get(detail.build_status)
    base, digest = detail.env("BASE_IMAGE_NAME"), detail.env("BASE_IMAGE_DIGEST")
    if state is None or not base or not digest:
        return None
    scan = scans.get_base_scan(base, digest)
    if scan is None:
        log.warning("a check-only build of %s@%s that no patch asked for", base, digest)
        return None
    if scan.state != "checking":
        return scan  # told before: a replay
    reason = "" if state == "done" else f"its build {detail.build_key} ended {detail.build_status}"
    # Sent first: a crash before it is recorded sends it again, which the planner plans once.
    patches.send(scan.patch.model_copy(update={"base_scanned": True, "base_scan_failure": reason or None}))
    scans.finish_base_scan(base, digest, state, reason, detail.build_key)
    return scan.model_copy(update={"state": state, "reason": reason, "build_id": detail.build_key})
