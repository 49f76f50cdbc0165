"""ECR scan findings (domain/scan/ecr.py): basic and enhanced shapes, every page, one report."""

from __future__ import annotations

import pytest

from patchprop.domain.findings import ScanReportError, Severity
from patchprop.domain.scan.ecr import EcrScan, read_ecr_findings

BASIC = {
    "imageScanStatus": {"status": "COMPLETE"},
    "imageScanFindings": {
        "findings": [
            {
                "name": "CVE-2026-0001",
                "severity": "HIGH",
                "attributes": [
                    {"key": "package_name", "value": "openssl"},
                    {"key": "package_version", "value": "3.0.1"},
                ],
            }
        ]
    },
}
BASIC_PAGE_2 = {
    "imageScanFindings": {
        "findings": [
            {
                "name": "CVE-2026-0002",
                "severity": "CRITICAL",
                "attributes": [{"key": "package_name", "value": "zlib"}],
            }
        ]
    }
}
ENHANCED = {
    "imageScanStatus": {"status": "ACTIVE"},
    "imageScanFindings": {
        "enhancedFindings": [
            {
                "severity": "MEDIUM",
                "title": "CVE-2026-0003 - libxml2",
                "packageVulnerabilityDetails": {
                    "vulnerabilityId": "CVE-2026-0003",
                    "vulnerablePackages": [
                        {"name": "libxml2", "version": "2.9.1", "fixedInVersion": "2.9.2"},
                        {"name": "libxml2-dev", "version": "2.9.1", "fixedInVersion": "NotAvailable"},
                    ],
                },
            }
        ]
    },
}


def test_basic_findings_of_every_page_are_one_report():
    report = read_ecr_findings([BASIC, BASIC_PAGE_2])
    found = {(f.id, f.package, f.installed_version, f.severity) for f in report.findings}
    assert found == {
        ("CVE-2026-0001", "openssl", "3.0.1", Severity.HIGH),
        ("CVE-2026-0002", "zlib", "", Severity.CRITICAL),
    }


def test_enhanced_findings_name_each_vulnerable_package_and_its_fix():
    report = read_ecr_findings([ENHANCED])
    fixes = {(f.package, f.fixed_version) for f in report.findings}
    assert fixes == {("libxml2", "2.9.2"), ("libxml2-dev", None)}
    assert {f.severity for f in report.findings} == {Severity.MEDIUM}


def test_a_finding_without_its_name_is_refused_naming_where():
    with pytest.raises(ScanReportError, match=r"page 1.*findings\[0\]"):
        read_ecr_findings([{"imageScanFindings": {"findings": [{"severity": "HIGH"}]}}])


@pytest.mark.parametrize(
    ("status", "complete", "pending"),
    [
        ("COMPLETE", True, False),
        ("ACTIVE", True, False),
        ("IN_PROGRESS", False, True),
        ("PENDING", False, True),
        ("FAILED", False, False),
        ("UNSUPPORTED_IMAGE", False, False),
    ],
)
def test_scan_status_says_whether_to_judge_wait_or_give_up(status, complete, pending):
    scan = EcrScan(status)
    assert (scan.complete, scan.pending) == (complete, pending)
