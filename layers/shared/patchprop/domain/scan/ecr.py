"""Amazon ECR scan findings (ecr:DescribeImageScanFindings), basic and enhanced, as a ScanReport.

Basic scanning lists `imageScanFindings.findings[]` (name = the CVE, severity, attributes
package_name / package_version); enhanced scanning (Amazon Inspector) lists
`imageScanFindings.enhancedFindings[]` (packageVulnerabilityDetails with its vulnerablePackages,
each with its fixedInVersion). Every page of a paginated answer is read into one report, so the
gate judges them exactly as the same findings in a Trivy report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from patchprop.domain.findings import Finding, ScanReport, Severity
from patchprop.domain.scan.common import _dict, _fix, _list, _object, _required_text, _text

# imageScanStatus.status: what the findings are worth.
COMPLETE = frozenset({"COMPLETE", "ACTIVE"})  # ACTIVE: enhanced, continuous scanning
PENDING = frozenset({"PENDING", "IN_PROGRESS", "SCAN_ELIGIBILITY_EXPIRED_PENDING", ""})
# Anything else (FAILED, UNSUPPORTED_IMAGE, FINDINGS_UNAVAILABLE, SCAN_ELIGIBILITY_EXPIRED,
# PULL_THROUGH_CACHE_*) never becomes COMPLETE for this image.


def read_ecr_findings(pages: Iterable[dict[str, Any]]) -> ScanReport:
    """The findings of every page of one image's DescribeImageScanFindings answer."""
    findings: list[Finding] = []
    enhanced = False
    for n, page in enumerate(pages):
        body = _dict(page.get("imageScanFindings"))
        here = f"ECR scan findings (page {n + 1})"
        for i, item in enumerate(_list(body.get("findings"), f"{here}: findings")):
            findings.append(_basic(_object(item, f"{here}: findings[{i}]"), f"{here}: findings[{i}]"))
        for i, item in enumerate(_list(body.get("enhancedFindings"), f"{here}: enhancedFindings")):
            enhanced = True
            findings += _enhanced(
                _object(item, f"{here}: enhancedFindings[{i}]"), f"{here}: enhancedFindings[{i}]"
            )
    scanner = "ecr-enhanced" if enhanced else "ecr"
    return ScanReport.of(scanner, "ecr", findings)


def _basic(item: dict[str, Any], where: str) -> Finding:
    attributes = {
        _text(a.get("key")): _text(a.get("value"))
        for a in _list(item.get("attributes"), f"{where}.attributes")
        if isinstance(a, dict)
    }
    return Finding(
        id=_required_text(item, "name", where),
        package=attributes.get("package_name") or "(unknown package)",
        installed_version=attributes.get("package_version", ""),
        fixed_version=None,  # basic scanning does not say
        severity=Severity.read(item.get("severity"), where),
    )


def _enhanced(item: dict[str, Any], where: str) -> list[Finding]:
    details = _dict(item.get("packageVulnerabilityDetails"))
    vulnerability = _text(details.get("vulnerabilityId")) or _required_text(item, "title", where)
    severity = Severity.read(item.get("severity"), where)
    packages = _list(
        details.get("vulnerablePackages"), f"{where}.packageVulnerabilityDetails.vulnerablePackages"
    )
    return [
        Finding(
            id=vulnerability,
            package=_text(package.get("name")) or "(unknown package)",
            installed_version=_text(package.get("version")),
            fixed_version=None
            if package.get("fixedInVersion") == "NotAvailable"
            else _fix(package.get("fixedInVersion")),
            severity=severity,
        )
        for package in packages
        if isinstance(package, dict)
    ] or [Finding(id=vulnerability, package="(unknown package)", severity=severity)]


@dataclass(frozen=True)
class EcrScan:
    """One image's scan in ECR: its status (imageScanStatus.status), why, and the answer's pages."""

    status: str
    description: str = ""
    pages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.status in COMPLETE

    @property
    def pending(self) -> bool:
        return self.status in PENDING
