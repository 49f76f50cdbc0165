"""Judge a rebuild on Amazon ECR's scan findings (ScanSource=ecr) instead of a Trivy report.

The candidate's findings are read from ECR (basic or enhanced scanning, every page) and judged
by the same gate and policy, against the image's last promoted digest's findings and the base's
(from ECR when the base is in ECR, else the base's Trivy report, said which in the alert). A
scan still running raises ScanPending, so the build's event is retried a little later (Lambda's
retries) instead of a function waiting; past `max_wait` after the build ended it is decided: a
required scan fails with the scan's status, an optional one is told as not scanned.
"""

from __future__ import annotations

from dataclasses import dataclass

from patchprop.domain.errors import InvalidReference, PatchpropError
from patchprop.domain.events import NO_RESULT, BuildResult
from patchprop.domain.findings import ScanReport
from patchprop.domain.gate import GateResult, parse_policy
from patchprop.domain.judging import judge_reports
from patchprop.domain.records import Rebuild
from patchprop.domain.refs import ImageRef, parse_ref
from patchprop.domain.scan.ecr import read_ecr_findings
from patchprop.logic.verdict import Verdict, _optional, judge, last_promoted
from patchprop.ports import Reports, Scans, Store

ECR_REPORT = "ecr://"  # report_uri of a verdict made on ECR's findings: ecr://<image>@<digest>


class ScanPending(PatchpropError):
    """ECR has not finished scanning the candidate: retry the event later."""


@dataclass(frozen=True)
class EcrScanning:
    scans: Scans
    waited: float  # seconds since the build ended (the event's time)
    max_wait: float = 150.0


def judge_on_ecr(
    rebuild: Rebuild,
    result: BuildResult | None,
    *,
    store: Store,
    reports: Reports,
    require_scan: bool,
    ecr: EcrScanning,
    missing: str = NO_RESULT,
) -> Verdict:
    """Gate a rebuild whose build SUCCEEDED on the ECR scan findings of the digest it pushed."""
    image = _ref(rebuild.image)
    if result is None or not result.digest or image is None:
        return judge(
            rebuild, result, store=store, reports=reports, require_scan=require_scan, missing=missing
        )
    digest = result.digest
    scan = ecr.scans.scan(image, digest)
    if scan.pending and ecr.waited < ecr.max_wait:
        raise ScanPending(f"ECR is still scanning {image.name}@{digest} ({scan.status or 'not started'})")
    if not scan.complete:
        why = f"the ECR scan of {image.name}@{digest} is {scan.status or 'missing'} ({scan.description})"
        if require_scan:
            return Verdict(GateResult.failed(f"no scan findings: {why}"), image_digest=digest)
        return Verdict(None, image_digest=digest, notes=[f"Not scanned: {why}."])
    uri = f"{ECR_REPORT}{image.name}@{digest}"
    try:
        report = read_ecr_findings(scan.pages)
        policy = parse_policy(rebuild.policy)
    except (PatchpropError, ValueError) as exc:
        return Verdict(GateResult.failed(f"ECR scan findings: {exc}"), report_uri=uri, image_digest=digest)
    notes: list[str] = []
    base = _base_findings(rebuild, result.base_report, reports, ecr, notes)
    last = last_promoted(rebuild, store=store)
    previous = _findings_of(last.report_uri, reports, ecr, notes) if last else None
    return Verdict(judge_reports(report, previous, base, policy, notes), report_uri=uri, image_digest=digest)


def _ref(image: str) -> ImageRef | None:
    try:
        ref = parse_ref(image)
    except InvalidReference:
        return None
    return ref if ".dkr.ecr." in ref.registry else None


def _base_findings(
    rebuild: Rebuild, base_report: str | None, reports: Reports, ecr: EcrScanning, notes: list[str]
) -> ScanReport | None:
    base = _ref(rebuild.base)
    if base is not None:
        scan = ecr.scans.scan(base, rebuild.base_digest)
        if scan.complete:
            notes.append("The base's findings: from its ECR scan.")
            return read_ecr_findings(scan.pages)
    found = _optional(base_report, "the base's", reports, notes)
    if found is not None:
        notes.append("The base's findings: from its Trivy report.")
    return found


def _findings_of(uri: str | None, reports: Reports, ecr: EcrScanning, notes: list[str]) -> ScanReport | None:
    """The previous promoted rebuild's findings: from ECR if it was judged on them."""
    if uri and uri.startswith(ECR_REPORT):
        name, _, digest = uri.removeprefix(ECR_REPORT).partition("@")
        ref = _ref(name)
        scan = ecr.scans.scan(ref, digest) if ref else None
        if scan is None or not scan.complete:
            notes.append("The previous build's ECR scan findings could not be read; judged without them.")
            return None
        return read_ecr_findings(scan.pages)
    return _optional(uri, "the previous build's", reports, notes)
