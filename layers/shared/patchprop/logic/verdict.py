"""Judge a rebuild that built: read what the build left behind, its scan reports, and gate it.

The rebuilt image's report is compared with the report of the image's last promoted rebuild
and with the base's report, under the image's own policy. Without a report, REQUIRE_SCAN
decides: the rebuild fails (never promoted), or it is told as "succeeded" (not scanned).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from patchprop.domain.events import NO_RESULT, BuildResult, UnreadableResult
from patchprop.domain.findings import ScanReport, ScanReportError
from patchprop.domain.gate import GateResult, PolicyError, parse_policy
from patchprop.domain.judging import judge_reports, optional_report
from patchprop.domain.records import Outcome, Rebuild
from patchprop.domain.scan import parse_report
from patchprop.ports import Builds, Reports, Store


@dataclass(frozen=True)
class Verdict:
    """The gate's decision (None: not scanned, and no scan required) and what it was made on."""

    result: GateResult | None
    report_uri: str | None = None
    image_digest: str | None = None
    notes: list[str] = field(default_factory=list)  # said in the alert when there is no decision


def read_result(builds: Builds, build_id: str) -> tuple[BuildResult | None, str]:
    """The build's result, or None and why there is none."""
    try:
        result = builds.build_result(build_id)
    except UnreadableResult as exc:
        return None, str(exc)
    return (result, "") if result is not None else (None, NO_RESULT)


def judge(
    rebuild: Rebuild,
    result: BuildResult | None,
    *,
    store: Store,
    reports: Reports,
    require_scan: bool,
    missing: str = NO_RESULT,
) -> Verdict:
    """Gate a rebuild whose build SUCCEEDED, from the result its build left (`missing`: why none)."""
    digest = result.digest if result else None
    if result is not None and not result.report:
        missing = "the build did not scan the image (no trivy in the build image, or SCAN=off)"
    if result is None or not result.report:
        if require_scan:
            return Verdict(GateResult.failed(f"no scan report: {missing}"), image_digest=digest)
        return Verdict(None, image_digest=digest, notes=[f"Not scanned: {missing}."])
    try:
        report = parse_report(reports.read_report(result.report))
        policy = parse_policy(rebuild.policy)
    except (ScanReportError, PolicyError) as exc:
        failure = exc.reason if isinstance(exc, ScanReportError) else f"policy: {exc}"
        if result.report not in failure:
            failure += f" ({result.report})"
        return Verdict(GateResult.failed(failure), report_uri=result.report, image_digest=digest)
    notes: list[str] = []
    # The base's one report (its base check's, or the rebuilt parent's), else the build's own.
    base = _optional(rebuild.base_report or result.base_report, "the base's", reports, notes)
    last = last_promoted(rebuild, store=store)
    previous = _optional(last.report_uri if last else None, "the previous build's", reports, notes)
    decided = judge_reports(report, previous, base, policy, notes)
    return Verdict(decided, report_uri=result.report, image_digest=digest)


def last_promoted(rebuild: Rebuild, *, store: Store, within: int = 100) -> Rebuild | None:
    """The image's most recent promoted rebuild with a scan report, other than `rebuild`."""
    for earlier in store.recent_rebuilds(rebuild.image, limit=within):
        if (
            earlier.rebuild_id != rebuild.rebuild_id
            and earlier.outcome is Outcome.PROMOTED
            and earlier.rolled_back_at is None  # a rolled-back image is no baseline
            and earlier.report_uri
        ):
            return earlier
    return None


def _optional(uri: str | None, whose: str, reports: Reports, notes: list[str]) -> ScanReport | None:
    """A report the gate can do without: None, with a note, when it cannot be had."""
    if not uri:
        return None
    return optional_report(lambda: reports.read_report(uri), whose, notes)


def last_promoted_with_sbom(rebuild: Rebuild, *, store: Store, within: int = 100) -> Rebuild | None:
    """The image's most recent rebuild put on its tag with an SBOM, other than `rebuild`."""
    for earlier in store.recent_rebuilds(rebuild.image, limit=within):
        if earlier.rebuild_id != rebuild.rebuild_id and earlier.on_tag and earlier.sbom_uri:
            return earlier
    return None
