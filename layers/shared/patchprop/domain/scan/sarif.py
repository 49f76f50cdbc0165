"""SARIF 2.1.0 (Docker Scout, Trivy): vulnerabilities as results, packages from purls."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from patchprop.domain.findings import (
    Finding,
    ScanReport,
    ScanReportError,
    Severity,
    _from_score,
    _word,
)
from patchprop.domain.scan.common import _dict, _fix, _list, _object, _text

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


def read_sarif(document: dict[str, Any]) -> ScanReport:
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
