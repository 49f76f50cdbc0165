"""Findings: one vulnerability in one package, its severity, and a scan report of them.

Only vulnerabilities count. Each (vulnerability id, package) pair is one finding, however many
times a scanner lists it (two copies of a library, two matchers, one SARIF result per location).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from patchprop.domain.errors import PatchpropError

MAX_REPORT_BYTES = 50 * 2**20
ReportFormat = Literal["trivy", "grype", "sarif"]


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
    UNKNOWN = "UNKNOWN"

    @property
    def rank(self) -> int:
        """4 for CRITICAL down to 0 for UNKNOWN: what SNS filter policies compare numerically."""
        return _RANKS[self]

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
    "negligible": Severity.LOW,  # Grype
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


class ScanReport(BaseModel):
    """The findings of one scan and their counts by severity (every severity present, maybe 0)."""

    model_config = ConfigDict(frozen=True)

    scanner: str
    format: ReportFormat
    findings: list[Finding]
    counts: dict[Severity, int]

    @classmethod
    def of(cls, scanner: str, format: ReportFormat, findings: Iterable[Finding]) -> ScanReport:
        """Count each (id, package) once, keeping its highest severity and any fixed version."""
        unique: dict[tuple[str, str], Finding] = {}
        for finding in findings:
            seen = unique.get(finding.key)
            if seen is None:
                unique[finding.key] = finding
                continue
            if finding.severity.rank > seen.severity.rank:
                seen = seen.model_copy(update={"severity": finding.severity})
            if seen.fixed_version is None and finding.fixed_version:
                seen = seen.model_copy(update={"fixed_version": finding.fixed_version})
            unique[finding.key] = seen
        counts = dict.fromkeys(Severity, 0)
        for finding in unique.values():
            counts[finding.severity] += 1
        return cls(scanner=scanner, format=format, findings=list(unique.values()), counts=counts)

    @property
    def total(self) -> int:
        return len(self.findings)
