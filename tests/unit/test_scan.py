"""Scan reports: Trivy JSON, Grype JSON and SARIF (Docker Scout, Trivy) read into one model."""

import json
from pathlib import Path

import pytest

from patchprop.domain.findings import Finding, ScanReport, ScanReportError, Severity
from patchprop.domain.scan import parse_report

DATA = Path(__file__).resolve().parent.parent / "data" / "scan"
C, H, M, L, U = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.UNKNOWN
N = Severity.NEGLIGIBLE


def _read(name: str) -> ScanReport:
    return parse_report((DATA / name).read_bytes())


def _counts(
    critical: int, high: int, medium: int, low: int, unknown: int, negligible: int = 0
) -> dict[Severity, int]:
    return {C: critical, H: high, M: medium, L: low, N: negligible, U: unknown}


@pytest.mark.parametrize(
    ("name", "scanner", "fmt", "counts"),
    [
        ("trivy-image.json", "trivy", "trivy", _counts(3, 1, 3, 1, 1)),
        ("trivy-image.sarif.json", "Trivy", "sarif", _counts(3, 1, 3, 1, 1)),
        ("grype-image.json", "grype", "grype", _counts(2, 1, 3, 0, 1, negligible=2)),
        ("docker-scout.sarif.json", "docker scout", "sarif", _counts(3, 3, 1, 1, 1)),
    ],
)
def test_counts_are_exact_for_each_published_format(name, scanner, fmt, counts):
    # Given a report as the scanner writes it: duplicates, one CVE in two packages, unfixed and
    # unknown-severity findings
    # When it is read
    report = _read(name)
    # Then the format is recognized and every severity is counted exactly
    assert (report.scanner, report.format) == (scanner, fmt)
    assert report.counts == counts
    assert report.total == sum(counts.values()) == len({f.key for f in report.findings})


def test_trivy_counts_an_id_and_package_once_but_one_cve_in_two_packages_twice():
    # Given Trivy lists setuptools twice (system and venv) and CVE-2024-2511 for libssl3 and openssl
    report = _read("trivy-image.json")
    keys = [f.key for f in report.findings]
    # Then setuptools is one finding and CVE-2024-2511 two
    assert keys.count(("CVE-2024-6345", "setuptools")) == 1
    assert ("CVE-2024-2511", "libssl3") in keys and ("CVE-2024-2511", "openssl") in keys
    zlib = next(f for f in report.findings if f.package == "zlib1g")
    assert zlib == Finding(
        id="CVE-2023-45853",
        package="zlib1g",
        installed_version="1:1.2.13.dfsg-1",
        fixed_version=None,
        severity=C,
    )


def test_trivy_json_and_trivy_sarif_of_one_scan_read_the_same():
    # Given the same scan written by Trivy as JSON and as SARIF
    as_json, as_sarif = _read("trivy-image.json"), _read("trivy-image.sarif.json")
    # Then both give the same findings: package, versions and severity from the SARIF message and tags
    assert sorted(as_json.findings, key=lambda f: f.key) == sorted(as_sarif.findings, key=lambda f: f.key)


def test_grype_reads_fix_states_negligible_and_leaves_ignored_matches_out():
    report = _read("grype-image.json")
    by_key = {f.key: f for f in report.findings}
    # wont-fix and not-fixed have no fixed version; a fixed one names it
    assert by_key[("CVE-2023-45853", "zlib1g")].fixed_version is None
    assert by_key[("GHSA-9wx4-h78v-vm56", "requests")].fixed_version == "2.32.0"
    # Negligible is its own level (below LOW), Unknown is UNKNOWN
    assert by_key[("CVE-2011-3374", "apt")].severity is N
    assert by_key[("CVE-2024-56433", "passwd")].severity is U
    # the match under ignoredMatches does not count
    assert ("CVE-2024-45491", "libexpat1") not in by_key


def test_docker_scout_sarif_takes_package_and_fix_from_each_result():
    # Given Scout's rule for CVE-2023-44487 covers nghttp2 (fixed) and nginx (not fixed)
    report = _read("docker-scout.sarif.json")
    by_key = {f.key: f for f in report.findings}
    # Then each result's own package and fix are used, not the rule's single fixed_version
    assert by_key[("CVE-2023-44487", "nghttp2")].fixed_version == "1.52.0-1+deb12u1"
    assert by_key[("CVE-2023-44487", "nginx")].fixed_version is None
    # purl versions are decoded (%3A is the Debian epoch's colon), distro qualifiers dropped
    assert by_key[("CVE-2023-45853", "zlib")].installed_version == "1:1.2.13.dfsg-1"
    # UNSPECIFIED (no CVSS score anywhere) is UNKNOWN
    assert by_key[("CVE-2024-56433", "shadow")].severity is U
    # setuptools has two results (two site-packages) and counts once
    assert by_key[("CVE-2024-6345", "setuptools")].severity is H


def _sarif(rules: list[dict], results: list[dict], **driver: object) -> bytes:
    run = {"tool": {"driver": {"name": "docker scout", "rules": rules, **driver}}, "results": results}
    return json.dumps({"version": "2.1.0", "runs": [run]}).encode()


def test_older_docker_scout_sarif_with_one_purl_per_rule():
    # Given Scout 0.x SARIF: `purl` (not `purls`) on the rule, results pointing at files only
    rule = {
        "id": "GMS-2022-9109",
        "properties": {
            "affected_version": "<=1.4.19",
            "cvssV3_severity": "UNSPECIFIED",
            "fixed_version": "not fixed",
            "purl": "pkg:maven/com.thoughtworks.xstream/xstream@1.4.5",
            "security-severity": "3.1",
            "tags": ["UNSPECIFIED"],
        },
    }
    result = {
        "ruleId": "GMS-2022-9109",
        "ruleIndex": 0,
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": "/app/lib/xstream-1.4.5.jar"}}}],
    }
    # When it is read
    report = parse_report(_sarif([rule], [result, result]))
    # Then the package comes from the rule and the scanner's own word (UNSPECIFIED) wins over the score
    assert report.findings == [
        Finding(
            id="GMS-2022-9109",
            package="com.thoughtworks.xstream:xstream",
            installed_version="1.4.5",
            fixed_version=None,
            severity=U,
        )
    ]


def test_sarif_rule_with_several_purls_and_no_package_in_results_is_one_finding_per_purl():
    rule = {
        "id": "CVE-2023-44487",
        "properties": {
            "purls": ["pkg:deb/debian/nghttp2@1.52.0-1", "pkg:deb/debian/nginx@1.22.1-9"],
            "security-severity": "7.5",
        },
    }
    report = parse_report(_sarif([rule], [{"ruleId": "CVE-2023-44487", "message": {"text": "vulnerable"}}]))
    assert sorted(f.package for f in report.findings) == ["nghttp2", "nginx"]
    assert report.counts[H] == 2  # no severity word: the CVSS score decides


def test_a_sarif_result_that_states_its_severity_overrides_its_rule():
    # Given a rule rated HIGH whose result, for this package, says LOW (Scout's message table)
    rule = {"id": "CVE-2026-0002", "properties": {"cvssV3_severity": "HIGH", "tags": ["HIGH"]}}
    purl = "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?os_distro=bookworm"
    text = f"Severity         :LOW\nPackage          :{purl}\n"
    # When it is read
    report = parse_report(_sarif([rule], [{"ruleId": "CVE-2026-0002", "message": {"text": text}}]))
    # Then the result's own word wins, and the purl's %2B is a +
    assert report.findings == [
        Finding(id="CVE-2026-0002", package="curl", installed_version="7.88.1-10+deb12u5", severity=L)
    ]


def test_sarif_level_is_the_last_resort_and_rule_index_finds_the_rule():
    rule = {"id": "CVE-2026-0001", "defaultConfiguration": {"level": "warning"}}
    result = {"ruleIndex": 0, "message": {"text": "Package: libfoo\nInstalled Version: 1.0"}}
    report = parse_report(_sarif([rule], [result]))
    assert report.findings == [
        Finding(id="CVE-2026-0001", package="libfoo", installed_version="1.0", severity=M)
    ]


@pytest.mark.parametrize(
    ("spelled", "severity"),
    [
        ("CRITICAL", C),  # Trivy, Scout
        ("Critical", C),  # Grype
        ("High", H),
        ("important", H),  # Red Hat
        ("MEDIUM", M),
        ("moderate", M),  # GitHub advisories
        ("Low", L),
        ("Negligible", N),  # Grype: its own level, below Low
        ("Unknown", U),
        ("UNSPECIFIED", U),  # Docker Scout
        ("error", H),  # SARIF levels
        ("warning", M),
        ("note", L),
        ("none", U),
        ("9.8", C),  # SARIF security-severity (CVSS)
        (9.0, C),
        ("8.9", H),
        (7.0, H),
        (6.9, M),
        ("4.0", M),
        (3.9, L),
        ("0.1", L),
        ("0.0", U),
        (11, U),
        ("", U),
        (None, U),
        ("severe", U),
        (" high ", H),
    ],
)
def test_severity_normalization(spelled, severity):
    assert Severity.normalize(spelled) is severity


def test_severity_ranks_run_from_4_to_0():
    assert [s.rank for s in (C, H, M, L, N, U)] == [4, 3, 2, 1, 0, 0]
    assert [s.order for s in (C, H, M, L, N, U)] == [5, 4, 3, 2, 1, 0]
    assert Severity("high") is H  # exact names in any case, as policies write them
    with pytest.raises(ValueError):
        Severity("moderate")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "no scan report"),
        (b"", "scan report is empty"),
        (" \n\t", "scan report is empty"),
        (b"{not json", "scan report is not valid JSON"),
        (b"\xff\xfe\x00garbage", "scan report is not valid JSON"),
        (b"[]", "scan report is a JSON array, not an object"),
        (b"null", "scan report is JSON null, not an object"),
        (b'"x"', "scan report is a JSON string, not an object"),
        (b'[{"Target": "alpine:3.10"}]', "scan report is Trivy JSON SchemaVersion 1"),
        (b'{"SchemaVersion": 3, "Results": []}', "Trivy JSON SchemaVersion '3' is not read"),
        (
            b'{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{"VulnerabilityID": "CVE-1",'
            b' "PkgName": "p", "Severity": 4}]}]}',
            "Trivy report: Results[0].Vulnerabilities[0] has a severity that is not one: '4'",
        ),
        (
            b'{"matches": [{"vulnerability": {"id": "CVE-1", "severity": ["High"]},'
            b' "artifact": {"name": "p"}}]}',
            "Grype report: matches[0].vulnerability has a severity that is not one",
        ),
        (
            b'{"matches": [{"vulnerability": {"id": "CVE-1", "fix": "1.2"}, "artifact": {"name": "p"}}]}',
            "Grype report: matches[0].vulnerability.fix is not an object",
        ),
        (b'{"vulnerabilities": []}', "unknown scan report format"),
        (b'{"SchemaVersion": 2, "Results": {}}', "Trivy report: Results is an object, not an array"),
        (
            b'{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{"PkgName": "x"}]}]}',
            "Trivy report: Results[0].Vulnerabilities[0] has no VulnerabilityID",
        ),
        (
            b'{"matches": [{"vulnerability": {"id": "CVE-1"}}]}',
            "Grype report: matches[0].artifact is null, not an object",
        ),
        (b'{"version": "2.1.0", "runs": []}', "SARIF report has no runs"),
        (b'{"version": "2.0.0", "runs": [{}]}', "SARIF version '2.0.0' is not supported"),
        (
            b'{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}}]}',
            "SARIF report: runs[0] has no results array",
        ),
        (
            b'{"runs": [{"tool": {"driver": {}}, "results": [],'
            b' "invocations": [{"executionSuccessful": false}]}]}',
            "SARIF report: runs[0]: the scanner says it did not run successfully",
        ),
        (
            b'{"runs": [{"tool": {"driver": {}}, "results": [{"message": {"text": "x"}}]}]}',
            "SARIF report: runs[0].results[0] has no ruleId",
        ),
    ],
)
def test_bad_reports_are_refused_with_a_reason(data, reason):
    with pytest.raises(ScanReportError) as caught:
        parse_report(data)
    assert caught.value.reason.startswith(reason), caught.value.reason


def test_a_report_too_large_to_hold_is_refused_before_it_is_parsed():
    # Given a report over the limit that is not even JSON
    data = b"{" + b" " * 2000
    # When it is read with a 1000-byte limit
    with pytest.raises(ScanReportError) as caught:
        parse_report(data, max_bytes=1000)
    # Then the reason is its size, not its syntax: it was never handed to the JSON parser
    assert caught.value.reason.startswith("scan report is 2,001 bytes (0.0 MiB), more than the 1,000 bytes")
    assert "trivy --scanners vuln --severity" in caught.value.reason  # what makes it smaller
    # and one at the limit is read
    assert parse_report(b'{"matches": []}' + b" " * 985, max_bytes=1000).total == 0


def test_reports_with_nothing_found_are_valid_and_empty():
    # Trivy leaves out Results when it detects nothing; Grype writes matches: []; SARIF results: []
    for data in (
        '{"SchemaVersion": 2, "ArtifactName": "scratch-app:1", "ArtifactType": "container_image"}',
        '{"matches": [], "descriptor": {"name": "grype"}}',
        '{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "docker scout"}}, "results": []}]}',
    ):
        report = parse_report(data)
        assert report.total == 0
        assert report.counts == _counts(0, 0, 0, 0, 0)


def test_a_duplicate_keeps_its_highest_severity_and_a_known_fix():
    report = ScanReport.of(
        "trivy",
        "trivy",
        [
            Finding(id="CVE-1", package="p", severity=L),
            Finding(id="CVE-1", package="p", severity=H, fixed_version="2.0"),
            Finding(id="CVE-1", package="p", severity=M),
        ],
    )
    assert report.findings == [Finding(id="CVE-1", package="p", severity=H, fixed_version="2.0")]
    assert report.counts[H] == 1 and report.total == 1


def _paths(node: object, prefix: tuple = ()):
    """Every key path in a JSON document, the first two items of each list only."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:2]):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


@pytest.mark.parametrize("name", ["trivy-image.json", "grype-image.json", "docker-scout.sarif.json"])
def test_any_value_of_the_wrong_type_is_read_or_refused_never_a_crash(name):
    # Given a published report with one value, anywhere, replaced by a value of another type
    document = json.loads((DATA / name).read_text())
    for path in _paths(document):
        for junk in (None, 7, "x", [1], {"a": 1}):
            broken = json.loads(json.dumps(document))
            parent = broken
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = junk
            # When it is read, then it is either a report or a ScanReportError with a reason
            try:
                parse_report(json.dumps(broken))
            except ScanReportError as exc:
                assert exc.reason
