"""Trivy JSON (`trivy image --format json`, SchemaVersion 2)."""

from __future__ import annotations

from typing import Any

from patchprop.domain.findings import (
    Finding,
    ScanReport,
    Severity,
)
from patchprop.domain.scan.common import _fix, _list, _object, _required_text, _text


def read_trivy(document: dict[str, Any]) -> ScanReport:
    """`trivy image --format json` (SchemaVersion 2): Results[].Vulnerabilities[]."""
    findings: list[Finding] = []
    for i, result in enumerate(_list(document.get("Results"), "Trivy report: Results")):
        result = _object(result, f"Trivy report: Results[{i}]")
        vulnerabilities = _list(result.get("Vulnerabilities"), f"Trivy report: Results[{i}].Vulnerabilities")
        for j, vulnerability in enumerate(vulnerabilities):
            where = f"Trivy report: Results[{i}].Vulnerabilities[{j}]"
            vulnerability = _object(vulnerability, where)
            findings.append(
                Finding(
                    id=_required_text(vulnerability, "VulnerabilityID", where),
                    package=_required_text(vulnerability, "PkgName", where),
                    installed_version=_text(vulnerability.get("InstalledVersion")),
                    fixed_version=_fix(vulnerability.get("FixedVersion")),
                    severity=Severity.normalize(vulnerability.get("Severity")),
                )
            )
    return ScanReport.of("trivy", "trivy", findings)
