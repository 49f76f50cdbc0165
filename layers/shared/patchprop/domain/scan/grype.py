"""Grype JSON (`grype -o json`)."""

from __future__ import annotations

from typing import Any

from patchprop.domain.findings import (
    Finding,
    ScanReport,
    Severity,
)
from patchprop.domain.scan.common import _dict, _list, _object, _required_text, _text


def read_grype(document: dict[str, Any]) -> ScanReport:
    """`grype -o json`: matches[] of {vulnerability, artifact}; ignoredMatches do not count."""
    findings: list[Finding] = []
    for i, match in enumerate(_list(document.get("matches"), "Grype report: matches")):
        where = f"Grype report: matches[{i}]"
        match = _object(match, where)
        vulnerability = _object(match.get("vulnerability"), f"{where}.vulnerability")
        artifact = _object(match.get("artifact"), f"{where}.artifact")
        fix = _dict(vulnerability.get("fix"))
        versions = [str(v) for v in _list(fix.get("versions"), f"{where}.vulnerability.fix.versions") if v]
        unfixed = _text(fix.get("state")) in ("not-fixed", "wont-fix")
        fixed = ", ".join(versions) if versions and not unfixed else None
        findings.append(
            Finding(
                id=_required_text(vulnerability, "id", f"{where}.vulnerability"),
                package=_required_text(artifact, "name", f"{where}.artifact"),
                installed_version=_text(artifact.get("version")),
                fixed_version=fixed,
                severity=Severity.normalize(vulnerability.get("severity")),
            )
        )
    descriptor = document.get("descriptor")
    name = _text(descriptor.get("name")) if isinstance(descriptor, dict) else ""
    return ScanReport.of(name or "grype", "grype", findings)
