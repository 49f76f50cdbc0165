"""`patchprop status|report`: the fleet's drift and the patch report, from GET /status and GET /report."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from patchprop.domain.report import MINUTES_PER_MANUAL_PATCH, parse_since
from patchprop_cli.client import ApiClient, ApiError
from patchprop_cli.options import api_options, refusals_name_options
from patchprop_cli.output import echo_json, short, table

COLOURS = {"behind": "red", "unknown": "yellow", "current": "green"}
SEVERITY_LETTERS = (("CRITICAL", "C"), ("HIGH", "H"), ("MEDIUM", "M"), ("LOW", "L"))


def duration(seconds: float | None) -> str:
    """`3d 4h`, `2h 5m`, `7m`: how long, to a glance."""
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {mins}m" if hours else f"{mins}m"


def findings(counts: dict[str, int] | None) -> str:
    if counts is None:
        return "-"
    return " ".join(f"{letter}{counts.get(name, 0)}" for name, letter in SEVERITY_LETTERS)


def status_rows(images: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for i in images:
        worst = next((b for b in i["bases"] if b["state"] == i["state"]), i["bases"][0])
        more = f" (+{len(i['bases']) - 1})" if len(i["bases"]) > 1 else ""
        last = i.get("last_outcome") or "-"
        if i.get("last_method"):
            last += f"/{i['last_method']}"
        rows.append(
            [
                i["state"],
                i["image"],
                worst["base"] + more + (" (itself behind)" if i.get("behind_via") else ""),
                f"{short(worst.get('built_on'))} -> {short(worst.get('current'))}",
                duration(i.get("behind_seconds")),
                last,
                findings(i.get("open_findings")),
                i.get("owner"),
            ]
        )
    return rows


STATUS_HEADERS = ["STATE", "IMAGE", "BASE", "BUILT ON -> CURRENT", "BEHIND", "LAST", "FINDINGS", "OWNER"]


def status_text(images: list[dict[str, Any]], terminal: bool) -> str:
    """Aligned and coloured on a terminal; tab-separated, plain, when piped."""
    rows = status_rows(images)
    if not terminal:
        cells = [STATUS_HEADERS, *rows]
        return "\n".join("\t".join("-" if c in (None, "") else str(c) for c in row) for row in cells)
    lines = table(STATUS_HEADERS, rows).splitlines()
    coloured = [lines[0]]
    for line, row in zip(lines[1:], rows, strict=True):
        state = row[0]
        coloured.append(
            click.style(state, fg=COLOURS.get(state), bold=(state == "behind") or None) + line[len(state) :]
        )
    return "\n".join(coloured)


@contextmanager
def refusals_named() -> Iterator[None]:
    """An unknown owner (404 naming `owner`) is a usage error too."""
    try:
        with refusals_name_options(owner="--owner", since="--since", minutes_per_patch="--minutes-per-patch"):
            yield
    except ApiError as exc:
        if exc.status == 404 and exc.field == "owner":
            raise click.BadParameter(exc.message, param_hint="--owner") from exc
        raise


@click.command()
@click.option("--behind", is_flag=True, help="Only the images behind a moved base.")
@click.option("--owner", default=None, help="Only this owner's images.")
@api_options
def status(behind: bool, owner: str | None, api_url: str | None, as_json: bool) -> None:
    """The fleet's drift: each image's base digest against the base's current one, worst first."""
    with refusals_named():
        answer = ApiClient.for_url(api_url).get("/status", owner=owner, behind="true" if behind else None)
    if as_json:
        echo_json(answer)
        return
    if not answer["images"]:
        click.echo("No image is behind." if behind else "No images registered.")
        return
    click.echo(status_text(answer["images"], sys.stdout.isatty()))
    if sys.stdout.isatty():
        click.echo(f"\n{answer['behind']} behind, {answer['unknown']} unknown, {answer['current']} current")


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:g} min"


def report_text(r: dict[str, Any]) -> str:
    """The report for reading in a terminal."""
    ttp, cov, out, eff, comp = r["time_to_patch"], r["coverage"], r["outcomes"], r["effort"], r["compliance"]
    lines = [
        f"Patch report since {r['since'][:10]}" + (f", owner {r['owner']}" if r.get("owner") else ""),
        "",
        f"Time to patch: {ttp['landed']} of {ttp['events']} patch events landed "
        f"(open {ttp['open']}, not landed {ttp['not_landed']}, unknown {ttp['unknown']}); "
        f"median {_minutes(ttp['median_minutes'])}, p90 {_minutes(ttp['p90_minutes'])}, "
        f"max {_minutes(ttp['max_minutes'])}",
    ]
    for e in r["slowest"]:
        lines.append(
            f"  {_minutes(e['minutes']):>10}  {e['base']} -> {short(e['digest'])}  ({e['images']} images)"
        )
    lines.append(
        f"Coverage: {cov['current']} of {cov['images']} images current ({cov['share']:.0%}); "
        f"{cov['behind']} behind, {cov['unknown']} unknown"
    )
    for owner, c in cov["by_owner"].items():
        lines.append(f"  {owner}: {int(c['current'])}/{int(c['images'])} ({c['share']:.0%})")
    for source, d in r["detection"].items():
        delay = "-" if d["median_seconds"] is None else f"{d['median_seconds']:g} s"
        lines.append(
            f"Detection delay ({source}): median {delay}, {d['known']} known, {d['unknown']} unknown"
        )
    fixed = ", ".join(f"{k} {v}" for k, v in out["fixed_by_severity"].items() if v) or "none"
    kept = ", ".join(f"{k} {v}" for k, v in out["kept_off_by_severity"].items() if v) or "none"
    lines += [
        f"Outcomes: {out['rebuilds']} rebuilds: "
        + (", ".join(f"{k} {v}" for k, v in out["by_outcome"].items()) or "none")
        + "; method: "
        + (", ".join(f"{k} {v}" for k, v in out["by_method"].items()) or "none"),
        f"CVEs fixed: {fixed} (unknown for {out['fixed_unknown']} rebuilds); kept off tags: {kept}",
        f"Effort saved: {eff['automated_rebuilds']} rebuilds without a person x "
        f"{eff['minutes_per_manual_patch']:g} min = {eff['hours_saved']:g} h; "
        f"triage avoided: {eff['triage_avoided']} findings",
        f"Compliance ({comp['promoted_images']} promoted images): SBOM {comp['with_sbom']}, "
        f"signed {comp['with_signature']} (unknown {comp['signature_unknown']}), base verified "
        f"{comp['base_verified']} (no key {comp.get('base_not_configured', 0)}, refused "
        f"{comp.get('base_refused', 0)}, unknown {comp['base_verified_unknown']}), "
        f"provenance {comp['with_provenance']}",
        f"FIPS bases: {', '.join(comp['fips_bases']) or 'none'}; images on them: "
        f"{', '.join(comp['fips_images']) or 'none'}",
    ]
    return "\n".join(lines)


def check_since(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_since(value, datetime.now(UTC))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


@click.command()
@click.option(
    "--since", default="30d", show_default=True, callback=check_since, help="30d, 12h, 2w or a date."
)
@click.option("--owner", default=None, help="Only this owner's images.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write here."
)
@click.option(
    "--minutes-per-patch",
    type=click.FloatRange(min=0, min_open=True, max=10000),
    default=MINUTES_PER_MANUAL_PATCH,
    show_default=True,
    help="Minutes a person spends patching one image by hand (effort saved).",
)
@api_options
def report(
    since: str,
    owner: str | None,
    fmt: str,
    output: Path | None,
    minutes_per_patch: float,
    api_url: str | None,
    as_json: bool,
) -> None:
    """The patch report: time to patch, coverage, detection delay, outcomes, effort saved, compliance."""
    with refusals_named():
        answer = ApiClient.for_url(api_url).get(
            "/report", since=since, owner=owner, minutes_per_patch=minutes_per_patch
        )
    write_report(answer, "json" if as_json else fmt, output)


def write_report(answer: dict[str, Any], fmt: str, output: Path | None) -> None:
    import json

    from patchprop_cli.report_html import render_html

    text = {
        "json": lambda: json.dumps(answer, indent=2) + "\n",
        "html": lambda: render_html(answer),
        "text": lambda: report_text(answer) + "\n",
    }[fmt]()
    if output is None:
        click.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    click.echo(f"Wrote {output}", err=True)
