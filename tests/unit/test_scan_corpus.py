"""Reports real tools wrote (tests/data/scan/corpus, origins in SOURCES.md), read as EXPECTED.md says,
and minimal reproductions shaped as the tools write them (`repro--*`)."""

import json
from pathlib import Path

import pytest

from patchprop.domain.findings import Finding, OtherResult, ScanReport, ScanReportError, Severity
from patchprop.domain.gate import Policy, gate, parse_policy
from patchprop.domain.scan import parse_report

CORPUS = Path(__file__).resolve().parent.parent / "data" / "scan" / "corpus"
C, H, M, L, N, U = (
    Severity.CRITICAL,
    Severity.HIGH,
    Severity.MEDIUM,
    Severity.LOW,
    Severity.NEGLIGIBLE,
    Severity.UNKNOWN,
)


def _read(name: str) -> ScanReport:
    return parse_report((CORPUS / name).read_bytes())


def _by_id(report: ScanReport) -> dict[str, Finding]:
    return {f.id: f for f in report.findings}


def test_grype_sarif_is_read_field_by_field_from_grype_own_text():
    # Given Grype's own SARIF snapshot: rule ids `<id>-<package>`, no purl, fix and severity in help text
    report = _read("grype--TestSarifPresenter_image.sarif")
    # Then the id loses its package suffix, the package is not the file path, the fix is read,
    # and the severity is Grype's (0002 is critical although its security-severity is 1.0)
    assert report.findings == [
        Finding(
            id="CVE-1999-0001",
            package="package-1",
            installed_version="1.1.1",
            fixed_version="the-next-version",
            severity=L,
        ),
        Finding(
            id="CVE-1999-0002", package="package-2", installed_version="2.2.2", fixed_version=None, severity=C
        ),
    ]
    assert (report.tool, report.scanner_version) == ("grype", "0.0.0-dev")


def test_grype_json_current_format():
    report = _read("grype--TestJsonImgsPresenter.json")
    assert report.findings == [
        Finding(
            id="CVE-1999-0001",
            package="package-1",
            installed_version="1.1.1",
            fixed_version="1.2.1, 2.1.3, 3.4.0",
            severity=L,
        ),
        Finding(
            id="CVE-1999-0002", package="package-2", installed_version="2.2.2", fixed_version=None, severity=C
        ),  # Grype's Critical, not the CVSS v2 vendor "Low"
    ]
    assert report.scanner_version is None  # "[not provided]" is no version


def test_early_grype_json_reads_fixed_in_version_and_no_severity_as_unknown():
    # Given the early Grype JSON: a top-level array, `fixedInVersion`, no severity at all
    report = _read("grype--TestJsonPresenter-old-fixedInVersion.json")
    found = {f.id: (f.package, f.installed_version, f.fixed_version, f.severity) for f in report.findings}
    assert found == {
        "CVE-1999-0001": ("package-1", "1.0.1", "the-next-version", U),
        "CVE-1999-0002": ("package-1", "1.0.1", None, U),
        "CVE-1999-0003": ("package-1", "1.0.1", "the-other-next-version", U),
    }
    # Then ignore_unfixed lets through only the one without a fix
    result = gate(report, None, None, parse_policy("fail_on=unknown;ignore_unfixed=true"))
    assert result.outcome == "blocked"
    assert sorted(f.id for f in result.blocking) == ["CVE-1999-0001", "CVE-1999-0003"]
    assert [f.id for f in result.ignored_unfixed] == ["CVE-1999-0002"]


def test_trivy_config_sarif_misconfigurations_are_not_vulnerabilities():
    # Given `trivy config --format sarif` output: 9 misconfigurations, six rated HIGH
    report = _read("trivy-action--config-sarif-report.sarif")
    # Then there is no vulnerability, and each misconfiguration is kept apart with Trivy's severity
    assert report.total == 0
    assert [o.kind for o in report.others] == ["misconfiguration"] * 9
    by_id = {o.id: o for o in report.others}
    assert by_id["AVD-AWS-0086"].severity is H and by_id["AVD-AWS-0086"].where == "main.tf line 8"
    assert by_id["AVD-AWS-0090"].severity is M and by_id["AVD-AWS-0090"].where == "main.tf line 16"
    assert by_id["s3-bucket-logging"].severity is L
    # and the gate, even failing on everything, has nothing to block on, but says what it saw
    result = gate(report, None, None, parse_policy("fail_on=critical,high,medium,low,negligible,unknown"))
    assert result.outcome == "promoted"
    assert any(r.startswith("9 misconfigurations in the rebuilt image's scan") for r in result.reasons)


def test_trivy_json_secret_is_a_secret_never_a_critical_vulnerability():
    report = _read("trivy-action--secret-scan-report.json")
    assert report.total == 0
    assert report.others == [
        OtherResult(
            kind="secret",
            id="github-pat",
            title="GitHub Personal Access Token",
            severity=C,
            where="env line 5",
        )
    ]


def test_codeql_sarif_is_refused_naming_the_tool():
    with pytest.raises(ScanReportError) as caught:
        _read("codeql-action--fingerprinting.expected.sarif")
    assert caught.value.reason.startswith(
        "SARIF from CodeQL command-line toolchain 2.0.0 has no image vulnerability results (2 results"
    )


@pytest.mark.parametrize("name", ["repro--trivy-image-secret.json", "repro--trivy-image-secret.sarif"])
def test_trivy_image_secret_is_told_apart_and_never_blocks_as_a_cve(name):
    # Given `trivy image` output (JSON or SARIF) with one CRITICAL vulnerability the previous build
    # also had, and a CRITICAL secret
    report = _read(name)
    previous = ScanReport.of("trivy", "trivy", [report.findings[0]])
    # When it is gated
    result = gate(report, previous, None, Policy())
    # Then the secret is not a finding; the verdict has its own line for it
    assert [f.id for f in report.findings] == ["CVE-2024-45490"]
    assert result.outcome == "promoted" and result.highest_new is None
    assert [o.id for o in result.others] == ["github-pat"]
    assert (
        "1 secret in the rebuilt image's scan (not vulnerabilities; not counted by the gate): "
        "github-pat (GitHub Personal Access Token, CRITICAL) in "
    ) in "\n".join(result.reasons)


def test_one_trivy_scan_as_json_and_as_sarif_gives_one_verdict():
    as_json, as_sarif = _read("repro--trivy-image-secret.json"), _read("repro--trivy-image-secret.sarif")
    assert as_json.findings == as_sarif.findings
    assert [(o.kind, o.id, o.severity) for o in as_json.others] == [
        (o.kind, o.id, o.severity) for o in as_sarif.others
    ]
    one, other = gate(as_json, None, None, Policy()), gate(as_sarif, None, None, Policy())
    assert (one.outcome, one.blocking) == (other.outcome, other.blocking) == ("blocked", as_json.findings)


def test_grype_negligible_is_its_own_level_below_low_in_json_and_sarif():
    as_json, as_sarif = _read("repro--grype-negligible.json"), _read("repro--grype-negligible.sarif")
    # The same scan in both formats: the same findings, Negligible kept, fixes the same
    assert as_json.findings == as_sarif.findings
    found = _by_id(as_json)
    assert found["CVE-2004-0971"].severity is N and found["CVE-2004-0971"].fixed_version is None
    assert found["CVE-2023-0464"].severity is H and found["CVE-2023-0464"].fixed_version == "1.1.1n-0+deb10u5"
    assert as_json.counts[N] == 1 and as_json.counts[L] == 0
    assert N.order < L.order and N.order > U.order
    # A policy may fail on it; failing on low does not
    for policy, outcome in (("fail_on=negligible", "blocked"), ("fail_on=low", "promoted")):
        verdicts = {gate(r, None, None, parse_policy(policy)).outcome for r in (as_json, as_sarif)}
        assert verdicts == {outcome}, policy


def test_the_real_grype_json_and_sarif_goldens_name_the_same_findings():
    # The two goldens come from different commits of Grype's fixtures (the JSON's fix versions
    # changed), so ids, packages, versions and severities must agree; fixes differ in the data itself.
    as_json = _read("grype--TestJsonImgsPresenter.json")
    as_sarif = _read("grype--TestSarifPresenter_image.sarif")

    def strip(r: ScanReport) -> list[tuple[str, str, str, Severity]]:
        return [(f.id, f.package, f.installed_version, f.severity) for f in r.findings]

    assert strip(as_json) == strip(as_sarif)


def test_copies_of_a_package_keep_each_version_with_its_own_fix():
    report = ScanReport.of(
        "grype",
        "grype",
        [
            Finding(
                id="CVE-1", package="lodash", installed_version="4.17.20", fixed_version="4.17.21", severity=H
            ),
            Finding(id="CVE-1", package="lodash", installed_version="3.10.1", fixed_version=None, severity=M),
        ],
    )
    assert report.findings == [
        Finding(
            id="CVE-1",
            package="lodash",
            installed_version="4.17.20, 3.10.1",
            fixed_version="4.17.21 (for 4.17.20)",
            severity=H,
        )
    ]


def test_a_sarif_result_with_no_package_is_not_a_vulnerability():
    # A known image scanner's result that names no package (only a file) is told, not counted
    run = {
        "tool": {"driver": {"name": "Trivy", "rules": [{"id": "X-1", "name": "OsPackageVulnerability"}]}},
        "results": [
            {
                "ruleId": "X-1",
                "message": {"text": "something"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": "etc/passwd"}}}],
            }
        ],
    }
    report = parse_report(json.dumps({"version": "2.1.0", "runs": [run]}))
    assert report.total == 0 and [(o.kind, o.where) for o in report.others] == [("other", "etc/passwd")]
