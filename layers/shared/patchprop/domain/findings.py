"""Findings: one vulnerability in one package, its severity, and a scan report of them.

Only vulnerabilities are findings; a scanner's other results (secrets, misconfigurations,
licenses) are kept apart as `OtherResult`s, never counted or gated as vulnerabilities.
Each (vulnerability id, package) pair is one finding, however many
times a scanner lists it (two copies of a library, two matchers, one SARIF result per location).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from patchprop.domain.errors import PatchpropError

MAX_REPORT_BYTES = 50 * 2**20
ReportFormat = Literal["trivy", "grype", "sarif", "ecr"]


def too_large(size: int, max_bytes: int) -> str:
    """Why a report too large to read is refused, and what makes it smaller."""
    return (
        f"scan report is {size:,} bytes ({size / 2**20:.1f} MiB), more than the {max_bytes:,} bytes "
        f"({max_bytes / 2**20:.0f} MiB) patchprop reads; scan for vulnerabilities only and fewer "
        "severities (trivy --scanners vuln --severity CRITICAL,HIGH,MEDIUM), or write JSON, which is "
        "smaller than SARIF"
    )


class ScanReportError(PatchpropError, ValueError):
    """A scan report that is missing, empty, malformed, too large or of an unknown format."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Severity(StrEnum):
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"
    NEGLIGIBLE = "NEGLIGIBLE"  # Grype's level below Low
    UNKNOWN = "UNKNOWN"

    @property
    def rank(self) -> int:
        """4 for CRITICAL down to 1 for LOW, 0 for NEGLIGIBLE and UNKNOWN: SNS's severity_rank."""
        return _RANKS[self]

    @property
    def order(self) -> int:
        """5 for CRITICAL down to 1 for NEGLIGIBLE and 0 for UNKNOWN: how severities compare."""
        return _ORDER[self]

    @classmethod
    def read(cls, value: object, where: str) -> Severity:
        """A scanner's severity field: absent is UNKNOWN; anything not a severity is a malformed report."""
        if value is None:
            return cls.UNKNOWN
        word = _word(value)
        if word is None:
            raise ScanReportError(f"{where} has a severity that is not one: {str(value)[:40]!r}")
        return word

    @classmethod
    def _missing_(cls, value: object) -> Severity | None:
        # Exact names in any case ("high", "Critical"); normalize() is the lenient reader.
        return cls.__members__.get(value.strip().upper()) if isinstance(value, str) else None

    @classmethod
    def normalize(cls, value: object) -> Severity:
        """Read a severity however a scanner spells it; anything unrecognized is UNKNOWN.

        Words (Trivy "HIGH", Grype "Critical"/"Negligible", Scout "UNSPECIFIED"), SARIF levels
        (error, warning, note, none) and CVSS scores (SARIF `security-severity`, "7.5") are read.
        """
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _from_score(float(value))
        if not isinstance(value, str):
            return cls.UNKNOWN
        text = value.strip().lower()
        if text in _WORDS:
            return _WORDS[text]
        if text in _SARIF_LEVELS:
            return _SARIF_LEVELS[text]
        try:
            return _from_score(float(text))
        except ValueError:
            return cls.UNKNOWN


_RANKS = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.NEGLIGIBLE: 0,
    Severity.UNKNOWN: 0,
}
_ORDER = {
    Severity.CRITICAL: 5,
    Severity.HIGH: 4,
    Severity.MEDIUM: 3,
    Severity.LOW: 2,
    Severity.NEGLIGIBLE: 1,
    Severity.UNKNOWN: 0,
}
# Severity words as scanners and advisories write them, lower-cased.
_WORDS = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "important": Severity.HIGH,  # Red Hat
    "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,  # GitHub advisories, Red Hat
    "low": Severity.LOW,
    "negligible": Severity.NEGLIGIBLE,  # Grype
    "unknown": Severity.UNKNOWN,
    "unspecified": Severity.UNKNOWN,  # Docker Scout: no CVSS score in any source
}
_SARIF_LEVELS = {
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "note": Severity.LOW,
    "none": Severity.UNKNOWN,
}


def _from_score(score: float) -> Severity:
    """CVSS v3 qualitative ratings; 0.0 ("None") and anything outside 0-10 are UNKNOWN."""
    if math.isnan(score) or score <= 0 or score > 10:
        return Severity.UNKNOWN
    if score >= 9:
        return Severity.CRITICAL
    if score >= 7:
        return Severity.HIGH
    if score >= 4:
        return Severity.MEDIUM
    return Severity.LOW


def _word(value: object) -> Severity | None:
    """A severity word, or None when `value` is not one (so the next source can be tried)."""
    return _WORDS.get(value.strip().lower()) if isinstance(value, str) else None


class Finding(BaseModel):
    """One vulnerability in one package."""

    model_config = ConfigDict(frozen=True)

    id: str
    package: str
    installed_version: str = ""
    fixed_version: str | None = None
    severity: Severity = Severity.UNKNOWN

    @property
    def key(self) -> tuple[str, str]:
        """What makes two findings the same, across builds and within one report."""
        return (self.id, self.package)

    def summary(self) -> str:
        """E.g. "CVE-2026-1234 in libfoo 1.2 (fixed in 1.3)", or "… (no fix yet)"."""
        where = f"{self.package} {self.installed_version}".strip()
        fix = f"fixed in {self.fixed_version}" if self.fixed_version else "no fix yet"
        return f"{self.id} in {where} ({fix})"


OtherKind = Literal["secret", "misconfiguration", "license", "other"]


class OtherResult(BaseModel):
    """A scanner result that is not a vulnerability: a secret, a misconfiguration, a license."""

    model_config = ConfigDict(frozen=True)

    kind: OtherKind
    id: str
    title: str = ""
    severity: Severity = Severity.UNKNOWN
    where: str = ""

    def summary(self) -> str:
        """E.g. "github-pat (GitHub Personal Access Token, CRITICAL) in env line 5"."""
        said = ", ".join(part for part in (self.title, self.severity.value) if part)
        return f"{self.id} ({said})" + (f" in {self.where}" if self.where else "")


def _merged(listed: list[Finding]) -> Finding:
    """One finding for every listing of it: the highest severity, each copy's version with its fix.

    Copies of a package at different versions keep each version ("1.2, 1.4") and each fix
    next to its own copy ("1.3 (for 1.2)"), so no copy is shown with another's fix.
    """
    first = listed[0]
    severity = max((f.severity for f in listed), key=lambda s: s.order)
    versions = list(dict.fromkeys(f.installed_version for f in listed if f.installed_version))
    if len(versions) <= 1:
        fixes = (f.fixed_version for f in listed if f.fixed_version)
    else:
        fixes = (f"{f.fixed_version} (for {f.installed_version})" for f in listed if f.fixed_version)
    fixed = ", ".join(dict.fromkeys(fixes)) or None
    version = ", ".join(versions)
    return first.model_copy(
        update={"severity": severity, "installed_version": version, "fixed_version": fixed}
    )


def scanner_name(scanner: str) -> str:
    """The tool behind a report's scanner name: Grype's old SARIF driver name is still Grype."""
    name = " ".join(scanner.lower().split())
    if name.startswith("anchore container vulnerability report"):
        return "grype"
    return name


class ScanReport(BaseModel):
    """The findings of one scan and their counts by severity (every severity present, maybe 0)."""

    model_config = ConfigDict(frozen=True)

    scanner: str
    format: ReportFormat
    findings: list[Finding]
    counts: dict[Severity, int]
    scanner_version: str | None = None
    others: list[OtherResult] = Field(default_factory=list)

    @classmethod
    def of(
        cls,
        scanner: str,
        format: ReportFormat,
        findings: Iterable[Finding],
        *,
        scanner_version: str | None = None,
        others: Iterable[OtherResult] = (),
    ) -> ScanReport:
        """Count each (id, package) once, keeping its highest severity and each copy's version and fix."""
        listed: dict[tuple[str, str], list[Finding]] = {}
        for finding in findings:
            listed.setdefault(finding.key, []).append(finding)
        unique = {key: _merged(copies) for key, copies in listed.items()}
        counts = dict.fromkeys(Severity, 0)
        for finding in unique.values():
            counts[finding.severity] += 1
        return cls(
            scanner=scanner,
            format=format,
            findings=list(unique.values()),
            counts=counts,
            scanner_version=scanner_version,
            others=list(others),
        )

    @property
    def tool(self) -> str:
        """The scanner as one name, whatever the format: "trivy", "grype", "docker scout"."""
        return scanner_name(self.scanner)

    @property
    def described(self) -> str:
        """E.g. "grype 0.80.0 (SARIF)", for notes that compare reports."""
        version = f" {self.scanner_version}" if self.scanner_version else ""
        return f"{self.tool}{version} ({self.format.upper() if self.format == 'sarif' else 'JSON'})"

    @property
    def total(self) -> int:
        return len(self.findings)
