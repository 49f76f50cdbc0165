"""The promotion gate: new findings against the previous build and the base, under a policy; and
`patchprop gate`, which runs the same gate on files."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes import FakeReports, InMemoryStore

from patchprop.domain.events import BuildResult
from patchprop.domain.findings import Finding, ScanReport, Severity
from patchprop.domain.gate import GateResult, Policy, PolicyError, gate, parse_policy
from patchprop.domain.records import Outcome, Rebuild, RebuildStatus
from patchprop.domain.scan import parse_report
from patchprop.logic.verdict import judge
from patchprop_cli.gate_cmd import EXIT_CODES, gate_command

DATA = Path(__file__).resolve().parent.parent / "data" / "scan"
GATE = DATA / "gate"
D = "sha256:" + "e" * 64


def _rebuild(**changes: object) -> Rebuild:
    fields: dict[str, object] = {
        "rebuild_id": "rb-now",
        "image": "docker.io/acme/app:1",
        "base": "docker.io/library/node:22",
        "base_digest": "sha256:" + "2" * 64,
        "project": "p1",
        "status": RebuildStatus.SUCCEEDED,
        "detected_at": datetime(2026, 11, 27, tzinfo=UTC),
    }
    return Rebuild.model_validate(fields | changes)


_PROMOTED = _rebuild(rebuild_id="rb-before", outcome=Outcome.PROMOTED, report_uri="s3://r/bad")
C, H, M, L, U = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.UNKNOWN
ACCEPTANCE_REASON = (
    "1 new HIGH finding from the image's own packages: CVE-2026-1234 in libfoo 1.2 (fixed in 1.3)"
)


def _report(*findings: Finding) -> ScanReport:
    return ScanReport.of("trivy", "trivy", findings)


def _f(
    cve: str, package: str, severity: Severity, fixed: str | None = "2.0", version: str = "1.0"
) -> Finding:
    return Finding(id=cve, package=package, installed_version=version, fixed_version=fixed, severity=severity)


def _acceptance() -> GateResult:
    def read(name: str) -> ScanReport:
        return parse_report((GATE / name).read_bytes())

    return gate(read("rebuilt.trivy.json"), read("previous.trivy.json"), read("base.trivy.json"), Policy())


def test_fixing_three_base_cves_and_adding_one_own_high_is_blocked():
    # Given the previous build had 3 CVEs that all came with the base, the new base fixes them,
    # and the rebuilt image brings one HIGH of its own (libfoo)
    # When the default policy judges it
    result = _acceptance()
    # Then it is blocked, and says exactly why
    assert result.outcome == "blocked"
    assert result.reasons[0] == ACCEPTANCE_REASON
    assert [f.id for f in result.fixed] == ["CVE-2024-45490", "CVE-2024-45491", "CVE-2024-37371"]
    assert [f.key for f in result.new_own] == [("CVE-2026-1234", "libfoo")]
    assert [f.key for f in result.blocking] == [("CVE-2026-1234", "libfoo")]
    assert result.new_from_base == [] and result.still_present == []
    assert result.highest_new is H


def test_new_findings_that_came_with_the_base_pass_by_default_and_block_when_not_allowed():
    # Given the rebuilt image has a new CRITICAL that its base has too
    base = _report(_f("CVE-2026-9", "libc6", C))
    rebuilt = _report(_f("CVE-2026-9", "libc6", C), _f("CVE-1", "apt", L))
    previous = _report(_f("CVE-1", "apt", L))
    # When the default policy judges it, then it is promoted: the base is patchprop's input
    promoted = gate(rebuilt, previous, base, Policy())
    assert promoted.outcome == "promoted"
    assert [f.key for f in promoted.new_from_base] == [("CVE-2026-9", "libc6")]
    assert [f.key for f in promoted.still_present] == [("CVE-1", "apt")]
    assert promoted.reasons == [
        "No new finding that the policy blocks on: it blocks on any new CRITICAL or HIGH finding "
        "from the image's own packages.",
        "1 new finding came with the base; the policy does not block on those.",
    ]
    # When the policy does not allow findings from the base, then it is blocked
    blocked = gate(rebuilt, previous, base, parse_policy("allow_from_base=false"))
    assert blocked.outcome == "blocked"
    assert (
        blocked.reasons[0]
        == "1 new CRITICAL finding that came with the base: CVE-2026-9 in libc6 1.0 (fixed in 2.0)"
    )


def test_without_a_previous_scan_everything_is_compared_with_the_base():
    base = _report(_f("CVE-B", "openssl", H))
    rebuilt = _report(_f("CVE-B", "openssl", H), _f("CVE-O", "libfoo", M))
    result = gate(rebuilt, None, base, Policy())
    assert result.outcome == "promoted"
    assert [f.id for f in result.new_from_base] == ["CVE-B"]
    assert [f.id for f in result.new_own] == ["CVE-O"]
    assert result.fixed == [] and result.still_present == []
    assert "No scan of the previous build: every finding is compared with the base only." in result.reasons
    # and with no base either, every finding is the image's own
    assert gate(rebuilt, None, None, Policy()).outcome == "blocked"


def test_no_scan_report_fails_and_is_never_promoted():
    result = gate(None, _report(), _report(), Policy())
    assert result.outcome == "failed"
    assert result.reasons == [
        "no scan report for the rebuilt image: it was not scanned, or the scan was lost"
    ]


def test_ignore_unfixed_lets_a_new_finding_without_a_fix_through():
    # Given a new own HIGH with no fix yet
    rebuilt = _report(_f("CVE-U", "libbar", H, fixed=None))
    # When unfixed findings count, it blocks; when ignored, it passes and is listed as ignored
    assert gate(rebuilt, _report(), None, Policy()).outcome == "blocked"
    result = gate(rebuilt, _report(), None, parse_policy("ignore_unfixed=true"))
    assert result.outcome == "promoted"
    assert [f.id for f in result.ignored_unfixed] == ["CVE-U"]
    assert (
        "Ignored as they have no fix yet (ignore_unfixed): CVE-U in libbar 1.0 (no fix yet)."
        in result.reasons
    )
    # and a fixable HIGH still blocks under ignore_unfixed
    fixable = _report(_f("CVE-U", "libbar", H, fixed=None), _f("CVE-F", "libbaz", H))
    blocked = gate(fixable, _report(), None, parse_policy("ignore_unfixed=true"))
    assert [f.id for f in blocked.blocking] == ["CVE-F"]


def test_thresholds_tolerate_up_to_max_new_per_severity():
    policy = parse_policy("fail_on=critical,high;max_new=medium:2")
    two = _report(_f("CVE-1", "a", M), _f("CVE-2", "b", M), _f("CVE-3", "c", L))
    three = _report(_f("CVE-1", "a", M), _f("CVE-2", "b", M), _f("CVE-4", "d", M))
    assert gate(two, _report(), None, policy).outcome == "promoted"
    result = gate(three, _report(), None, policy)
    assert result.outcome == "blocked"
    assert result.reasons[0] == (
        "3 new MEDIUM findings from the image's own packages (3 new MEDIUM in all; the policy allows 2): "
        "CVE-1 in a 1.0 (fixed in 2.0), CVE-2 in b 1.0 (fixed in 2.0), CVE-4 in d 1.0 (fixed in 2.0)"
    )
    # max_new overrides fail_on for its severity
    relaxed = parse_policy("max_new=high:1")
    assert gate(_report(_f("CVE-H", "x", H)), _report(), None, relaxed).outcome == "promoted"
    assert gate(_report(_f("CVE-C", "x", C)), _report(), None, relaxed).outcome == "blocked"
    # and fail_on=none blocks on nothing
    assert (
        gate(_report(_f("CVE-C", "x", C)), _report(), None, parse_policy("fail_on=none")).outcome
        == "promoted"
    )


def test_a_long_list_of_new_findings_is_named_in_part():
    rebuilt = _report(*[_f(f"CVE-2026-{i:04d}", f"pkg{i}", C) for i in range(12)])
    reason = gate(rebuilt, _report(), None, Policy()).reasons[0]
    assert reason.startswith("12 new CRITICAL findings from the image's own packages: CVE-2026-0000 in pkg0")
    assert reason.endswith("and 7 more")


def test_policies_read_from_json_and_shorthand_alike():
    shorthand = parse_policy("fail_on=critical,high; ignore_unfixed=true; max_new=medium:5,low:20")
    as_json = parse_policy(
        '{"fail_on": ["critical", "HIGH"], "ignore_unfixed": true, "max_new": {"medium": 5, "LOW": 20}}'
    )
    assert shorthand == as_json == Policy(fail_on=[C, H], ignore_unfixed=True, max_new={M: 5, L: 20})
    assert parse_policy("") == parse_policy(None) == Policy()
    assert Policy().fail_on == [C, H] and Policy().allow_from_base and not Policy().ignore_unfixed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fail_on=severe", "policy fail_on: 'severe' is not a severity"),
        ("fail_on=high;fail_on=low", "policy sets fail_on twice"),
        ("ignore_unfixed=maybe", "policy ignore_unfixed: 'maybe' is not true or false"),
        ("max_new=medium", "policy max_new: 'medium' is not severity:count"),
        ("max_new=medium:-1", "policy max_new: 'medium:-1' is not severity:count"),
        ("block_on=high", "policy has no setting 'block_on'"),
        ("critical", "policy setting 'critical' is not key=value"),
        ("{nope", "policy is not valid JSON"),
        ('{"fail_on": ["HIGH"], "ignore": true}', "policy ignore: Extra inputs are not permitted"),
        ('{"fail_on": ["severe"]}', "policy fail_on.0: Input should be"),
    ],
)
def test_a_policy_that_cannot_be_read_says_why(text, message):
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert str(caught.value).startswith(message), str(caught.value)


# ---- patchprop gate ------------------------------------------------------------------------


def _cli(*args: str):
    return CliRunner().invoke(gate_command, list(args))


def test_cli_gives_the_same_decision_and_exit_code_on_the_same_files():
    # Given the acceptance scenario's three reports
    files = ["--report", str(GATE / "rebuilt.trivy.json"), "--previous", str(GATE / "previous.trivy.json")]
    files += ["--base", str(GATE / "base.trivy.json")]
    # When patchprop gate reads them
    summary = _cli(*files)
    as_json = _cli(*files, "--json")
    # Then it is blocked (exit 1) for the same reason, readable and as JSON
    assert summary.exit_code == 1, summary.output
    assert summary.output.startswith("BLOCKED\n")
    assert f"  - {ACCEPTANCE_REASON}\n" in summary.output
    assert (
        "fixed 3, still present 0, new 1 from the image's own packages, new 0 from the base" in summary.output
    )
    assert as_json.exit_code == 1
    assert GateResult.model_validate_json(as_json.output) == _acceptance()


def test_cli_exit_codes_for_promoted_and_a_policy_from_a_file(tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text('{"fail_on": ["CRITICAL"]}')
    args = ["--report", str(GATE / "rebuilt.trivy.json"), "--previous", str(GATE / "previous.trivy.json")]
    result = _cli(*args, "--policy", f"@{policy}")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("PROMOTED\n")
    assert _cli(*args, "--policy", "fail_on=critical,high").exit_code == 1


def test_cli_a_missing_or_unreadable_file_is_a_usage_error_naming_it(tmp_path):
    missing = tmp_path / "nope.json"
    result = _cli("--report", str(GATE / "rebuilt.trivy.json"), "--base", str(missing))
    assert result.exit_code == 2
    assert f"Invalid value for --base: cannot read {missing}: No such file or directory" in result.output
    directory = _cli("--report", str(tmp_path))
    assert directory.exit_code == 2
    assert f"cannot read {tmp_path}" in directory.output
    bad_policy = _cli("--report", str(GATE / "rebuilt.trivy.json"), "--policy", "fail_on=severe")
    assert bad_policy.exit_code == 2
    assert "Invalid value for --policy: policy fail_on: 'severe' is not a severity" in bad_policy.output


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "scan report is empty"),
        (b'{"Results": [', "scan report is not valid JSON"),
        (b'{"hello": "world"}', "unknown scan report format"),
    ],
)
def test_cli_a_bad_report_fails_with_exit_3_and_the_reason(tmp_path, content, reason):
    report = tmp_path / "report.json"
    report.write_bytes(content)
    result = _cli("--report", str(report), "--json")
    assert result.exit_code == 3
    failed = GateResult.model_validate_json(result.output)
    assert failed.outcome == "failed"
    assert failed.reasons[0].startswith(f"scan report {report}: {reason}")


@pytest.mark.parametrize("option", ["--previous", "--base"])
def test_an_unreadable_previous_or_base_report_is_judged_without_alike_by_cli_and_service(tmp_path, option):
    # Given the same reports for the CLI and for the service: one of the optional ones unreadable
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    rebuilt = GATE / "rebuilt.trivy.json"
    # When patchprop gate judges them
    cli = _cli("--report", str(rebuilt), option, str(bad), "--json")
    # and the service judges a rebuild whose build left them
    store, reports = (
        InMemoryStore(),
        FakeReports({"s3://r/rebuilt": rebuilt.read_bytes(), "s3://r/bad": bad.read_bytes()}),
    )
    rebuild = _rebuild()
    if option == "--previous":
        store.rebuilds[_PROMOTED.rebuild_id] = _PROMOTED
    raw = {"digest": D, "report": "s3://r/rebuilt"} | (
        {"base_report": "s3://r/bad"} if option == "--base" else {}
    )
    service = judge(
        rebuild, BuildResult.model_validate(raw), store=store, reports=reports, require_scan=True
    ).result
    # Then both judge without it, say so, and decide the same: one behaviour
    by_cli = GateResult.model_validate_json(cli.output)
    assert service is not None
    assert (by_cli.outcome, by_cli.reasons) == (service.outcome, service.reasons)
    assert cli.exit_code == EXIT_CODES[service.outcome] != 3
    whose = "the previous build's" if option == "--previous" else "the base's"
    assert f"Without {whose} scan report: scan report is a JSON array, not an object" in by_cli.reasons[-1]


def test_a_previous_report_from_another_scanner_is_not_compared_and_the_verdict_says_so():
    # Given the previous build scanned by Trivy and the rebuilt image by Grype (the same image)
    previous = parse_report((DATA / "trivy-image.json").read_bytes())
    rebuilt = parse_report((DATA / "grype-image.json").read_bytes())
    # When the default policy judges them
    result = gate(rebuilt, previous, None, Policy())
    # Then nothing is "fixed" by a change of scanner: every finding is new, and the reasons say why
    assert result.fixed == [] and result.still_present == []
    assert len(result.new_own) == rebuilt.total
    assert (
        "The previous build was scanned by trivy (JSON), the rebuilt image by grype 0.84.0 (JSON): "
        "reports of different scanners are not compared (mixed_scanners=refuse), "
        "so every finding counts as new."
    ) in result.reasons
    assert not any(r.startswith("No scan of the previous build") for r in result.reasons)
    # and with mixed_scanners=compare it compares, saying what that costs
    compared = gate(rebuilt, previous, None, parse_policy("mixed_scanners=compare"))
    assert compared.fixed and any("compared anyway (mixed_scanners=compare)" in r for r in compared.reasons)


def test_a_base_from_another_scanner_is_not_used_for_origin():
    base = parse_report((DATA / "docker-scout.sarif.json").read_bytes())
    rebuilt = parse_report((DATA / "trivy-image.sarif.json").read_bytes())
    result = gate(rebuilt, None, base, Policy())
    assert result.new_from_base == []
    assert any(
        r.startswith(
            "The base image was scanned by docker scout 1.20.4 (SARIF), "
            "the rebuilt image by trivy 0.57.1 (SARIF)"
        )
        for r in result.reasons
    )


def test_same_scanner_other_format_or_version_is_compared():
    as_json = parse_report((DATA / "trivy-image.json").read_bytes())
    as_sarif = parse_report((DATA / "trivy-image.sarif.json").read_bytes())
    result = gate(as_sarif, as_json, None, Policy())
    assert result.outcome == "promoted" and result.fixed == [] and result.new_own == []


def test_policies_accept_negligible_and_mixed_scanners():
    assert parse_policy("fail_on=negligible").fail_on == [Severity.NEGLIGIBLE]
    assert parse_policy('{"mixed_scanners": "compare"}').mixed_scanners == "compare"
    with pytest.raises(PolicyError, match="mixed_scanners: 'sometimes' is not refuse or compare"):
        parse_policy("mixed_scanners=sometimes")


def test_cli_help_documents_the_exit_codes():
    result = _cli("--help")
    assert result.exit_code == 0
    for line in ("0  promoted", "1  blocked", "2  bad usage", "3  failed"):
        assert line in result.output


def test_gate_result_json_round_trips():
    result = _acceptance()
    assert GateResult.model_validate(json.loads(result.model_dump_json())) == result


def test_gate_is_a_command_of_patchprop():
    # Given the patchprop command
    from patchprop_cli.main import cli

    # When `patchprop gate` runs on the acceptance scenario's reports
    args = [
        "gate",
        "--report",
        str(GATE / "rebuilt.trivy.json"),
        "--previous",
        str(GATE / "previous.trivy.json"),
    ]
    result = CliRunner().invoke(cli, args)
    # Then it is the same gate: blocked, exit 1
    assert result.exit_code == 1, result.output
    assert result.output.startswith("BLOCKED\n")
