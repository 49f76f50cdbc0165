"""Grype JSON (`grype -o json`): today's `matches` object and the early top-level array."""

from __future__ import annotations

from typing import Any

from patchprop.domain.findings import (
    Finding,
    ScanReport,
    ScanReportError,
    Severity,
)
from patchprop.domain.scan.common import _dict, _fix, _list, _object, _required_text, _text

# What Grype writes for a version it was not told (its test snapshots, a build without ldflags).
_NO_VERSION = ("", "[not provided]")


def read_grype(document: dict[str, Any] | list[Any]) -> ScanReport:
    """`grype -o json`: matches[] of {vulnerability, artifact}; ignoredMatches do not count.

    The earliest Grype wrote the matches as a top-level array, with the fix as
    `vulnerability.fixedInVersion` and no severity: both are read (the severity as UNKNOWN).
    """
    early = isinstance(document, list)
    matches = (
        document if isinstance(document, list) else _list(document.get("matches"), "Grype report: matches")
    )
    findings: list[Finding] = []
    for i, match in enumerate(matches):
        where = f"Grype report: matches[{i}]" if not early else f"Grype report (early, an array): [{i}]"
        match = _object(match, where)
        vulnerability = _object(match.get("vulnerability"), f"{where}.vulnerability")
        artifact = _object(match.get("artifact"), f"{where}.artifact")
        findings.append(
            Finding(
                id=_required_text(vulnerability, "id", f"{where}.vulnerability"),
                package=_required_text(artifact, "name", f"{where}.artifact"),
                installed_version=_text(artifact.get("version")),
                fixed_version=_fixed(vulnerability, f"{where}.vulnerability"),
                severity=Severity.read(vulnerability.get("severity"), f"{where}.vulnerability"),
            )
        )
    descriptor = _dict(document.get("descriptor")) if isinstance(document, dict) else {}
    version = _text(descriptor.get("version"))
    return ScanReport.of(
        _text(descriptor.get("name")) or "grype",
        "grype",
        findings,
        scanner_version=None if version in _NO_VERSION else version,
    )


def _fixed(vulnerability: dict[str, Any], where: str) -> str | None:
    """`fix: {versions, state}` (Grype 0.2 and later) or `fixedInVersion` (the earliest)."""
    fix = vulnerability.get("fix")
    if fix is None:
        return _fix(vulnerability.get("fixedInVersion"))
    if not isinstance(fix, dict):
        raise ScanReportError(f"{where}.fix is not an object: a Grype JSON shape patchprop does not read")
    versions = [str(v) for v in _list(fix.get("versions"), f"{where}.fix.versions") if v]
    unfixed = _text(fix.get("state")) in ("not-fixed", "wont-fix")
    return ", ".join(versions) if versions and not unfixed else None
