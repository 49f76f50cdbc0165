"""ScanSource=trivy: the end of a promoted digest's scan-only build, judged once.

The rescan (logic/rescan.py) started one build of the image's project with PATCHPROP_MODE=rescan
(buildspec/rebuild.sh scans the pinned digest with trivy and leaves report.json where the rescan
recorded). When build events see it end, its report is judged like ECR's findings are: the
image's own fixable findings start one rebuild of the image alone. A replayed event, or one of a
build the rescan no longer waits for, changes nothing.
"""

from __future__ import annotations

import logging

from patchprop.domain.base_scan import ENDED, MODE_VAR
from patchprop.domain.events import BuildStateChange
from patchprop.domain.findings import ScanReportError
from patchprop.domain.models import utcnow
from patchprop.domain.rescan import RESCAN_MODE, SCANNING, RescanState
from patchprop.domain.scan import parse_report
from patchprop.logic.rescan import (
    Judged,
    Rescanned,
    RescanParts,
    judge_report,
    not_rebuildable,
    on_tag,
    put_outcome,
)

log = logging.getLogger(__name__)
NO_REPORT = "the rescan build left no report (no trivy in the build image?)"


def is_rescan(detail: BuildStateChange) -> bool:
    return detail.env(MODE_VAR) == RESCAN_MODE


def rescan_ended(detail: BuildStateChange, *, parts: RescanParts) -> Rescanned | None:
    """A scan-only build's state change: when it ended, its report judged and the outcome kept,
    once. None: not ended yet, or not the build the image's rescan waits for (a replay)."""
    image, digest = detail.env("RESCAN_IMAGE_NAME"), detail.env("RESCAN_IMAGE_DIGEST")
    if detail.build_status not in ENDED or not image or not digest:
        return None
    state = parts.rescans.get_rescan(image)
    if state is None or state.outcome != SCANNING or state.build_id != detail.build_key:
        log.info("rescan build %s of %s: not awaited (told before)", detail.build_key, image)
        return None
    # The store or S3 failing just now raises: the event is retried (then BuildEventsDLQ), and the
    # rescan still waits for this build, so the retry judges it.
    judged = _judge_scan(detail, state, parts)
    put_outcome(state, judged, parts, at=utcnow(), digest=digest)
    log.info("rescanned %s@%s: %s", image, digest, judged.outcome)
    return Rescanned(image, judged.outcome, judged.rebuild_id)


def _judge_scan(detail: BuildStateChange, state: RescanState, parts: RescanParts) -> Judged:
    if ENDED[detail.build_status] != "done":
        return Judged(
            f"not scanned: its build {detail.build_key} ended {detail.build_status}", None, state.fingerprint
        )
    dependent, rebuild = parts.store.get_dependent(state.image), on_tag(state.image, store=parts.store)
    if dependent is None or rebuild is None or rebuild.image_digest != state.digest:
        return Judged(f"not rebuilt: {state.image} changed since its scan started", None, state.fingerprint)
    why = not_rebuildable(dependent, rebuild, parts)
    if why:
        return Judged(why, None, state.fingerprint)
    try:
        report = parse_report(parts.reports.read_report(state.report_uri or ""))
    except ScanReportError as exc:  # none left (no trivy), or not a report
        log.info("rescan report of %s: %s", state.image, exc)
        return Judged(f"not scanned: {NO_REPORT}: {exc.reason}", None, state.fingerprint)
    return judge_report(dependent, rebuild, state, report, parts)
