"""SARIF 2.1.0 (Trivy, Grype, Docker Scout): vulnerabilities as results, packages from purls.

What each result is comes from its rule: Trivy names rules `Misconfiguration`, `Secret`,
`License` (and tags them so); those are other results, never vulnerabilities. A result that
names no package (a code scanner's alert) is not a vulnerability either.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from patchprop.domain.findings import (
    Finding,
    OtherKind,
    OtherResult,
    ScanReport,
    ScanReportError,
    Severity,
    _from_score,
    _word,
    scanner_name,
)
from patchprop.domain.scan.common import _dict, _fix, _list, _object, _text

_PURL = re.compile(r"pkg:[A-Za-z0-9.+-]+/[^\s\"'<>|]+")
# purl types whose namespace is the distribution, not part of the package's name.
_OS_PURL_TYPES = frozenset({"deb", "rpm", "apk", "alpm", "alpine", "apkg"})
# Tools whose SARIF is a container image scan: a run of theirs with no vulnerability is clean.
IMAGE_SCANNERS = frozenset({"trivy", "grype", "docker scout"})
# Trivy's rule names (pkg/report/sarif.go) and tags for what is not a vulnerability.
_OTHER_KINDS: dict[str, OtherKind] = {
    "misconfiguration": "misconfiguration",
    "secret": "secret",
    "license": "license",
    "unknownissue": "other",
}
_GRYPE_VULNERABILITY = re.compile(r"^\s*Vulnerability\s+(\S+)")


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
    for purl in rule_purls:
        yield (*_purl_package(purl), False)
    # Nothing names a package (a file path is a location, not a package): not a vulnerability.


def read_sarif(document: dict[str, Any]) -> ScanReport:
    """SARIF 2.1.0: runs[].results[] pointing at runs[].tool.driver.rules[] by ruleId/ruleIndex."""
    version = document.get("version")
    if version is not None and version != "2.1.0":
        raise ScanReportError(f"SARIF version {str(version)[:20]!r} is not supported; expected 2.1.0")
    runs = _list(document.get("runs"), "SARIF report: runs")
    if not runs:
        raise ScanReportError("SARIF report has no runs")
    findings: list[Finding] = []
    others: list[OtherResult] = []
    scanners: list[str] = []
    versions: list[str] = []
    for r, run in enumerate(runs):
        where = f"SARIF report: runs[{r}]"
        scanner, tool_version, found, other = _sarif_run(_object(run, where), where)
        scanners.append(scanner)
        versions += [tool_version] if tool_version else []
        findings += found
        others += other
    return ScanReport.of(
        ", ".join(dict.fromkeys(scanners)),
        "sarif",
        findings,
        scanner_version=", ".join(dict.fromkeys(versions)) or None,
        others=others,
    )


def _sarif_run(run: dict[str, Any], where: str) -> tuple[str, str, list[Finding], list[OtherResult]]:
    tool = _object(run.get("tool"), f"{where}.tool")
    driver = _object(tool.get("driver"), f"{where}.tool.driver")
    for invocation in _list(run.get("invocations"), f"{where}.invocations"):
        if isinstance(invocation, dict) and invocation.get("executionSuccessful") is False:
            raise ScanReportError(f"{where}: the scanner says it did not run successfully")
    if run.get("results") is None:
        # In SARIF an absent results array means the tool produced no results, not zero findings.
        raise ScanReportError(f"{where} has no results array: the scan did not complete")
    name = _text(driver.get("name")) or "sarif"
    version = _text(driver.get("version")) or _text(driver.get("semanticVersion"))
    rules = [rule if isinstance(rule, dict) else {} for rule in _list(driver.get("rules"), f"{where}.rules")]
    by_id = {rule["id"]: rule for rule in rules if isinstance(rule.get("id"), str)}
    grype = scanner_name(name) == "grype"
    findings: list[Finding] = []
    others: list[OtherResult] = []
    results = _list(run["results"], f"{where}.results")
    for k, result in enumerate(results):
        result = _object(result, f"{where}.results[{k}]")
        found, other = _sarif_result(result, rules, by_id, f"{where}.results[{k}]", grype=grype)
        findings += found
        others += [other] if other else []
    if results and not findings and scanner_name(name) not in IMAGE_SCANNERS:
        said = f"{name} {version}".strip()
        rule_ids = ", ".join(dict.fromkeys(o.id for o in others[:3]))
        raise ScanReportError(
            f"SARIF from {said} has no image vulnerability results ({len(results)} results, e.g. "
            f"{rule_ids}): not a container image scan; scan the image with Trivy, Grype or Docker Scout"
        )
    return name, version, findings, others


def _rule_kind(rule: Mapping[str, Any]) -> OtherKind | None:
    """What a rule is when it is not a vulnerability: by Trivy's rule name, then by its tags."""
    kind = _OTHER_KINDS.get(_text(rule.get("name")).lower())
    if kind:
        return kind
    tags = _dict(rule.get("properties")).get("tags")
    words = {t.strip().lower() for t in tags if isinstance(t, str)} if isinstance(tags, list) else set()
    if "vulnerability" in words:
        return None
    return next((_OTHER_KINDS[w] for w in ("secret", "misconfiguration", "license") if w in words), None)


def _sarif_result(
    result: dict[str, Any],
    rules: list[dict[str, Any]],
    by_id: Mapping[str, dict[str, Any]],
    where: str,
    *,
    grype: bool,
) -> tuple[list[Finding], OtherResult | None]:
    """The vulnerability findings of one result, or the other result it is."""
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
    if grype:
        # Grype's result message is prose; the rule (one per vulnerability and package) holds the fields.
        help_text = _text(_dict(rule.get("help")).get("text"))
        fields = {**_message_fields(help_text), "vulnerability": _grype_id(help_text, rule_id)}
    severity = _sarif_severity(fields, result, rule)
    kind = _rule_kind(rule)
    found = [] if kind else list(_sarif_findings(result, rule, fields, message, rule_id, severity, grype))
    if found:
        return found, None
    title = _text(_dict(rule.get("shortDescription")).get("text")) or _text(rule.get("name"))
    return [], OtherResult(
        kind=kind or "other", id=rule_id, title=title, severity=severity, where=_where(result)
    )


def _grype_id(help_text: str, rule_id: str) -> str:
    """Grype's rule id is `<vulnerability>-<package>`; its help text says the vulnerability alone."""
    said = _GRYPE_VULNERABILITY.match(help_text)
    if said:
        return said.group(1)
    package = _message_fields(help_text).get("package", "")
    return rule_id.removesuffix(f"-{package}") if package and rule_id.endswith(f"-{package}") else rule_id


def _where(result: Mapping[str, Any]) -> str:
    """E.g. "main.tf line 8", from the result's first location."""
    for location in _list(result.get("locations"), "locations"):
        physical = _dict(_dict(location).get("physicalLocation"))
        uri = _text(_dict(physical.get("artifactLocation")).get("uri"))
        line = _dict(physical.get("region")).get("startLine")
        return f"{uri} line {line}" if uri and type(line) is int else uri
    return ""


def _sarif_findings(
    result: dict[str, Any],
    rule: Mapping[str, Any],
    fields: Mapping[str, str],
    message: str,
    rule_id: str,
    severity: Severity,
    grype: bool,
) -> Iterator[Finding]:
    rule_props = _dict(rule.get("properties"))
    result_fix = fields.get("fixed version", _dict(result.get("properties")).get("fixed_version"))
    if grype:
        # Grype writes `Fix Version: 1.2.1,2.1.3` (empty when there is none), as its JSON's fix.versions.
        versions = [v.strip() for v in fields.get("fix version", "").split(",") if v.strip()]
        result_fix = ", ".join(versions)
    # A rule's fixed_version is for one package: when the rule covers several and the result
    # named its own, the rule's fix may be another package's, so it is not used for it.
    rule_fix = rule_props.get("fixed_version") if len(_purls(rule_props)) <= 1 else None
    if grype and fields.get("package"):
        packages: Iterator[tuple[str, str, bool]] = iter(
            [(fields["package"], fields.get("version", ""), True)]
        )
    else:
        packages = _sarif_packages(fields, message, result, rule)
    for package, installed, named_by_result in packages:
        if result_fix is not None:
            fixed = _fix(result_fix)
        else:
            fixed = _fix(rule_fix if named_by_result else rule_props.get("fixed_version"))
        yield Finding(
            id=fields.get("vulnerability", rule_id) if grype else rule_id,
            package=package,
            installed_version=installed,
            fixed_version=fixed,
            severity=severity,
        )
