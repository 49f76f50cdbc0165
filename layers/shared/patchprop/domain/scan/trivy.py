"""Trivy JSON (`trivy image --format json`, SchemaVersion 2)."""

from __future__ import annotations

from typing import Any

from patchprop.domain.findings import (
    Finding,
    OtherResult,
    ScanReport,
    ScanReportError,
    Severity,
)
from patchprop.domain.scan.common import _dict, _fix, _list, _object, _required_text, _text


def read_trivy(document: dict[str, Any]) -> ScanReport:
    """`trivy image --format json` (SchemaVersion 2): Results[].Vulnerabilities[] are findings.

    Secrets, misconfigurations and licenses (which `trivy image` also reports) are read as
    other results, never as vulnerabilities.
    """
    schema = document.get("SchemaVersion")
    if schema is not None and schema != 2:
        raise ScanReportError(
            f"Trivy JSON SchemaVersion {str(schema)[:20]!r} is not read; patchprop reads SchemaVersion 2 "
            "(Trivy 0.20 and later)"
        )
    findings: list[Finding] = []
    others: list[OtherResult] = []
    for i, result in enumerate(_list(document.get("Results"), "Trivy report: Results")):
        here = f"Trivy report: Results[{i}]"
        result = _object(result, here)
        target = _text(result.get("Target"))
        for j, vulnerability in enumerate(_list(result.get("Vulnerabilities"), f"{here}.Vulnerabilities")):
            where = f"{here}.Vulnerabilities[{j}]"
            vulnerability = _object(vulnerability, where)
            findings.append(
                Finding(
                    id=_required_text(vulnerability, "VulnerabilityID", where),
                    package=_required_text(vulnerability, "PkgName", where),
                    installed_version=_text(vulnerability.get("InstalledVersion")),
                    fixed_version=_fix(vulnerability.get("FixedVersion")),
                    severity=Severity.read(vulnerability.get("Severity"), where),
                )
            )
        others += _others(result, here, target)
    version = _text(_dict(document.get("Trivy")).get("Version")) or None
    return ScanReport.of("trivy", "trivy", findings, scanner_version=version, others=others)


def _others(result: dict[str, Any], here: str, target: str) -> list[OtherResult]:
    found: list[OtherResult] = []
    for j, secret in enumerate(_list(result.get("Secrets"), f"{here}.Secrets")):
        where = f"{here}.Secrets[{j}]"
        secret = _object(secret, where)
        line = secret.get("StartLine")
        found.append(
            OtherResult(
                kind="secret",
                id=_text(secret.get("RuleID")) or "secret",
                title=_text(secret.get("Title")),
                severity=Severity.read(secret.get("Severity"), where),
                where=f"{target} line {line}" if type(line) is int and target else target,
            )
        )
    for j, misconfiguration in enumerate(_list(result.get("Misconfigurations"), f"{here}.Misconfigurations")):
        where = f"{here}.Misconfigurations[{j}]"
        misconfiguration = _object(misconfiguration, where)
        if _text(misconfiguration.get("Status")).upper() not in ("", "FAIL"):
            continue  # --include-non-failures lists the checks that passed too
        found.append(
            OtherResult(
                kind="misconfiguration",
                id=_text(misconfiguration.get("ID"))
                or _text(misconfiguration.get("AVDID"))
                or "misconfiguration",
                title=_text(misconfiguration.get("Title")),
                severity=Severity.read(misconfiguration.get("Severity"), where),
                where=target,
            )
        )
    for j, license_ in enumerate(_list(result.get("Licenses"), f"{here}.Licenses")):
        where = f"{here}.Licenses[{j}]"
        license_ = _object(license_, where)
        found.append(
            OtherResult(
                kind="license",
                id=f"{_text(license_.get('PkgName'))}:{_text(license_.get('Name'))}".strip(":") or "license",
                title=_text(license_.get("Category")),
                severity=Severity.read(license_.get("Severity"), where),
                where=_text(license_.get("FilePath")) or target,
            )
        )
    return found
