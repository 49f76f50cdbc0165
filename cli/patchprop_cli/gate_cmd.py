"""`patchprop gate`: the promotion gate patchprop runs after a rebuild, on report files."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from patchprop.domain.findings import ScanReport
    from patchprop.domain.gate import GateResult

# Exit codes, one per outcome; 2 is click's own for bad usage.
EXIT_CODES = {"promoted": 0, "blocked": 1, "failed": 3}
MAX_POLICY_BYTES = 64 * 1024


def _read(path: Path, option: str, max_bytes: int) -> bytes:
    """The file's bytes, at most one byte past the limit so the parser can say it is too large."""
    try:
        with path.open("rb") as handle:
            return handle.read(max_bytes + 1)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}", param_hint=option) from exc


@click.command("gate")
@click.option(
    "--report",
    "report_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Scan report of the rebuilt image (Trivy JSON, Grype JSON or SARIF).",
)
@click.option(
    "--previous",
    "previous_path",
    type=click.Path(path_type=Path),
    help="Scan report of the image's previous build; without it every finding is new.",
)
@click.option(
    "--base",
    "base_path",
    type=click.Path(path_type=Path),
    help="Scan report of the base image; new findings it also has came with the base.",
)
@click.option(
    "--policy",
    "policy_text",
    default=None,
    metavar="POLICY",
    help=(
        "JSON, or settings separated by ';', e.g. "
        "'fail_on=critical,high;ignore_unfixed=true;allow_from_base=true;max_new=medium:5'. "
        "@FILE reads it from a file. Default: fail on any new CRITICAL or HIGH of the image's own."
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print the decision and its findings as JSON.")
def gate_command(
    report_path: Path,
    previous_path: Path | None,
    base_path: Path | None,
    policy_text: str | None,
    as_json: bool,
) -> None:
    """Decide whether a rebuilt image would be promoted, from scan report files.

    The same gate patchprop runs after a rebuild: findings are compared with the previous
    build (fixed, still present, new) and with the base (new ones that came with the base
    versus the image's own packages), then the policy decides.

    \b
    Exit codes:
      0  promoted
      1  blocked by the policy
      2  bad usage: a missing or unreadable file, a policy that cannot be read
      3  failed: the rebuilt image's report is empty, malformed, too large or of an unknown format

    A previous or base report that cannot be read is left out, and the output says so, as
    patchprop does after a rebuild.
    """
    from patchprop.domain.findings import MAX_REPORT_BYTES, ScanReportError
    from patchprop.domain.gate import GateResult, PolicyError, parse_policy
    from patchprop.domain.judging import judge_reports, optional_report
    from patchprop.domain.scan import parse_report

    if policy_text and policy_text.startswith("@"):
        raw = _read(Path(policy_text[1:]), "--policy", MAX_POLICY_BYTES)
        if len(raw) > MAX_POLICY_BYTES:
            raise click.BadParameter(
                f"{policy_text[1:]} is larger than {MAX_POLICY_BYTES} bytes", param_hint="--policy"
            )
        policy_text = raw.decode(errors="replace")
    try:
        policy = parse_policy(policy_text)
    except PolicyError as exc:
        raise click.BadParameter(str(exc), param_hint="--policy") from exc

    files = {
        "scan report": (report_path, "--report"),
        "previous scan report": (previous_path, "--previous"),
        "base scan report": (base_path, "--base"),
    }
    # Every file is read first: a missing one is a usage error (exit 2) whatever the others hold.
    contents = {
        label: _read(path, option, MAX_REPORT_BYTES) if path is not None else None
        for label, (path, option) in files.items()
    }
    sizes = {label: path.stat().st_size for label, (path, _) in files.items() if path is not None}
    notes: list[str] = []
    reports: dict[str, ScanReport | None] = {
        label: optional_report(partial(_sized, contents[label], sizes.get(label)), whose, notes)
        for label, whose in (
            ("previous scan report", "the previous build's"),
            ("base scan report", "the base's"),
        )
    }
    result: GateResult
    try:
        report = parse_report(contents["scan report"], size=sizes["scan report"])
    except ScanReportError as exc:
        result = GateResult.failed(f"scan report {report_path}: {exc.reason}")
    else:
        reports = {"scan report": report, **reports}
        result = judge_reports(
            report, reports["previous scan report"], reports["base scan report"], policy, notes
        )
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        _print_summary(result, reports)
    sys.exit(EXIT_CODES[result.outcome])


def _sized(data: bytes | None, size: int | None) -> bytes | None:
    """The bytes read, refused by their whole size when past the limit (only its start was read)."""
    from patchprop.domain.findings import MAX_REPORT_BYTES, ScanReportError, too_large

    if data is not None and size is not None and len(data) > MAX_REPORT_BYTES:
        raise ScanReportError(too_large(size, MAX_REPORT_BYTES))
    return data


def _print_summary(result: GateResult, reports: dict[str, ScanReport | None]) -> None:
    colour = {"promoted": "green", "blocked": "red", "failed": "red"}[result.outcome]
    click.secho(result.outcome.upper(), fg=colour, bold=True)
    for reason in result.reasons:
        click.echo(f"  - {reason}")
    if result.outcome == "failed":
        return
    own, from_base = len(result.new_own), len(result.new_from_base)
    click.echo(
        f"fixed {len(result.fixed)}, still present {len(result.still_present)}, "
        f"new {own} from the image's own packages, new {from_base} from the base"
    )
    for label, report in reports.items():
        if report is not None:
            counts = ", ".join(f"{n} {severity.value}" for severity, n in report.counts.items() if n)
            findings = "1 finding" if report.total == 1 else f"{report.total} findings"
            click.echo(f"{label}: {report.described}, {findings} ({counts or 'none'})")
