"""Scan reports read into one model: Trivy JSON, Grype JSON and SARIF 2.1.0 (Docker Scout, Trivy).

Only vulnerabilities count. Each (vulnerability id, package) pair is one finding, however many
times a scanner lists it (two copies of a library, two matchers, one SARIF result per location).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import unquote

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


def parse_report(data: bytes | str | None, max_bytes: int = MAX_REPORT_BYTES) -> ScanReport:
    """Detect the format of a scan report and read it; ScanReportError says why not."""
    if data is None:
        raise ScanReportError("no scan report")
    raw = data.encode() if isinstance(data, str) else data
    # Refuse before parsing: json.loads needs several times the text's size in memory.
    if len(raw) > max_bytes:
        raise ScanReportError(
            f"scan report is {len(raw):,} bytes, more than the {max_bytes:,} bytes patchprop reads; "
            "scan with fewer severities or raise the limit"
        )
    if not raw.strip():
        raise ScanReportError("scan report is empty")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ScanReportError(f"scan report is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ScanReportError(
            f"scan report is a JSON {type(document).__name__}, not an object: "
            "not Trivy JSON, Grype JSON or SARIF"
        )
    try:
        if "runs" in document:
            return _sarif(document)
        if "matches" in document:
            return _grype(document)
        if "Results" in document or "SchemaVersion" in document:
            return _trivy(document)
    except (AttributeError, TypeError, ValueError) as exc:
        if isinstance(exc, ScanReportError):
            raise
        # A shape no check above foresaw: still a malformed report, never a crash.
        raise ScanReportError(f"malformed scan report: {exc}") from exc
    keys = ", ".join(str(key)[:40] for key in list(document)[:10]) or "none"
    raise ScanReportError(
        "unknown scan report format: expected Trivy JSON (Results), Grype JSON (matches) "
        f"or SARIF 2.1.0 (runs); top-level keys: {keys}"
    )


# ---- helpers ----------------------------------------------------------------------------


def _list(value: Any, where: str) -> list[Any]:
    """A JSON array; absent or null reads as empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScanReportError(f"{where} is a {type(value).__name__}, not a list")
    return value


def _dict(value: Any) -> dict[str, Any]:
    """An optional JSON object; anything else reads as empty."""
    return value if isinstance(value, dict) else {}


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScanReportError(f"{where} is a {type(value).__name__}, not an object")
    return value


def _required_text(item: Mapping[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ScanReportError(f"{where} has no {name}")
    return value.strip()


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _fix(value: Any) -> str | None:
    """A fixed version, or None for "", "not fixed" and the like."""
    text = _text(value)
    return None if text.lower() in ("", "not fixed", "none", "n/a") else text


# ---- Trivy ------------------------------------------------------------------------------


def _trivy(document: dict[str, Any]) -> ScanReport:
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


# ---- Grype ------------------------------------------------------------------------------


def _grype(document: dict[str, Any]) -> ScanReport:
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


# ---- SARIF ------------------------------------------------------------------------------

_PURL = re.compile(r"pkg:[A-Za-z0-9.+-]+/[^\s\"'<>|]+")
# purl types whose namespace is the distribution, not part of the package's name.
_OS_PURL_TYPES = frozenset({"deb", "rpm", "apk", "alpm", "alpine", "apkg"})


def _purl_package(purl: str) -> tuple[str, str]:
    """("curl", "7.88.1-10+deb12u5") from "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?distro=…"."""
    body = purl.removeprefix("pkg:").split("#", 1)[0].split("?", 1)[0]
    body, _, version = body.rpartition("@") if "@" in body else (body, "", "")
    segments = [unquote(segment) for segment in body.split("/") if segment]
    kind, path = (segments[0].lower(), segments[1:]) if len(segments) > 1 else ("", segments)
    if kind in _OS_PURL_TYPES:
        name = path[-1]
    elif kind == "maven" and len(path) > 1:
        name = ":".join(path)  # group:artifact, as Trivy and Grype name a jar
    else:
        name = "/".join(path)
    return name, unquote(version)


def _message_fields(text: str) -> dict[str, str]:
    """`Key: value` lines of a result message, keys lower-cased.

    Trivy writes "Package: libssl3\\nInstalled Version: 3.0.13" and Docker Scout a padded table
    ("Package          :pkg:deb/…", "Fixed version    :3.0.14"); only the first ':' splits,
    so a Debian epoch ("1:1.2.13") survives.
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = " ".join(key.split()).lower()
        if sep and key and len(key) <= 40:
            fields.setdefault(key, value.strip())
    return fields


def _purls(properties: Mapping[str, Any]) -> list[str]:
    """Docker Scout writes `purls` (a list); 0.x versions wrote a single `purl`."""
    found = properties.get("purls")
    if isinstance(found, str):
        found = [found]
    found = found if isinstance(found, list) else []
    purls = [p for p in found if isinstance(p, str) and p.startswith("pkg:")]
    single = properties.get("purl")
    if isinstance(single, str) and single.startswith("pkg:") and single not in purls:
        purls.append(single)
    return purls


def _sarif_severity(
    fields: Mapping[str, str],
    result: Mapping[str, Any],
    rule: Mapping[str, Any],
) -> Severity:
    """The scanner's own word first, then a CVSS score, then the SARIF level."""
    result_props, rule_props = _dict(result.get("properties")), _dict(rule.get("properties"))
    tags = rule_props.get("tags")
    words: list[object] = [
        fields.get("severity"),
        result_props.get("cvssV3_severity"),
        rule_props.get("cvssV3_severity"),
        *(tags if isinstance(tags, list) else []),
    ]
    for word in words:
        severity = _word(word)
        if severity is not None:
            return severity
    for props in (result_props, rule_props):
        score = props.get("security-severity")
        if score is not None and not isinstance(score, bool):
            try:
                return _from_score(float(score))
            except (TypeError, ValueError):
                pass
    return Severity.normalize(result.get("level") or _dict(rule.get("defaultConfiguration")).get("level"))


def _sarif_packages(
    fields: Mapping[str, str],
    message: str,
    result: Mapping[str, Any],
    rule: Mapping[str, Any],
) -> Iterator[tuple[str, str, bool]]:
    """(package, installed version, named by the result itself) for one result.

    The result's own message names its package when the scanner says so (Docker Scout from
    1.x puts the purl there, Trivy a "Package:" line); otherwise the rule's purls stand for
    every package the rule covers.
    """
    per_result = _PURL.findall(message) or _purls(_dict(result.get("properties")))
    if per_result:
        yield (*_purl_package(per_result[0].rstrip(".,;)")), True)
        return
    if fields.get("package"):
        yield fields["package"], fields.get("installed version", ""), True
        return
    rule_purls = _purls(_dict(rule.get("properties")))
    if rule_purls:
        for purl in rule_purls:
            yield (*_purl_package(purl), False)
        return
    for location in result.get("locations") or []:
        uri = _dict(_dict(_dict(location).get("physicalLocation")).get("artifactLocation")).get("uri")
        if isinstance(uri, str) and uri:
            yield uri, "", True
            return
    yield "(unknown package)", "", True


def _sarif(document: dict[str, Any]) -> ScanReport:
    """SARIF 2.1.0: runs[].results[] pointing at runs[].tool.driver.rules[] by ruleId/ruleIndex."""
    version = document.get("version")
    if version is not None and version != "2.1.0":
        raise ScanReportError(f"SARIF version {str(version)[:20]!r} is not supported; expected 2.1.0")
    runs = _list(document.get("runs"), "SARIF report: runs")
    if not runs:
        raise ScanReportError("SARIF report has no runs")
    findings: list[Finding] = []
    scanners: list[str] = []
    for r, run in enumerate(runs):
        scanner, found = _sarif_run(_object(run, f"SARIF report: runs[{r}]"), f"SARIF report: runs[{r}]")
        scanners.append(scanner)
        findings.extend(found)
    return ScanReport.of(", ".join(dict.fromkeys(scanners)), "sarif", findings)


def _sarif_run(run: dict[str, Any], where: str) -> tuple[str, list[Finding]]:
    tool = _object(run.get("tool"), f"{where}.tool")
    driver = _object(tool.get("driver"), f"{where}.tool.driver")
    for invocation in _list(run.get("invocations"), f"{where}.invocations"):
        if isinstance(invocation, dict) and invocation.get("executionSuccessful") is False:
            raise ScanReportError(f"{where}: the scanner says it did not run successfully")
    if run.get("results") is None:
        # In SARIF an absent results array means the tool produced no results, not zero findings.
        raise ScanReportError(f"{where} has no results array: the scan did not complete")
    rules = [rule if isinstance(rule, dict) else {} for rule in _list(driver.get("rules"), f"{where}.rules")]
    by_id = {rule["id"]: rule for rule in rules if isinstance(rule.get("id"), str)}
    findings: list[Finding] = []
    for k, result in enumerate(_list(run["results"], f"{where}.results")):
        result = _object(result, f"{where}.results[{k}]")
        findings.extend(_sarif_result(result, rules, by_id, f"{where}.results[{k}]"))
    return _text(driver.get("name")) or "sarif", findings


def _sarif_result(
    result: dict[str, Any],
    rules: list[dict[str, Any]],
    by_id: Mapping[str, dict[str, Any]],
    where: str,
) -> Iterator[Finding]:
    rule_id = _text(result.get("ruleId")) or _text(_dict(result.get("rule")).get("id"))
    rule = by_id.get(rule_id) or {}
    index = result.get("ruleIndex")
    if not rule and type(index) is int and 0 <= index < len(rules):
        rule = rules[index]
        rule_id = rule_id or _text(rule.get("id"))
    if not rule_id:
        raise ScanReportError(f"{where} has no ruleId")
    message = _text(_dict(result.get("message")).get("text"))
    fields = _message_fields(message)
    severity = _sarif_severity(fields, result, rule)
    rule_props = _dict(rule.get("properties"))
    result_fix = fields.get("fixed version", _dict(result.get("properties")).get("fixed_version"))
    # A rule's fixed_version is for one package: when the rule covers several and the result
    # named its own, the rule's fix may be another package's, so it is not used for it.
    rule_fix = rule_props.get("fixed_version") if len(_purls(rule_props)) <= 1 else None
    for package, installed, named_by_result in _sarif_packages(fields, message, result, rule):
        if result_fix is not None:
            fixed = _fix(result_fix)
        else:
            fixed = _fix(rule_fix if named_by_result else rule_props.get("fixed_version"))
        yield Finding(
            id=rule_id,
            package=package,
            installed_version=installed,
            fixed_version=fixed,
            severity=severity,
        )
