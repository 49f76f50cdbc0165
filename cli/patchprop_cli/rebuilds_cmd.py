"""`patchprop rebuilds|graph`: the rebuild history and the dependency graph."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from patchprop_cli.client import ApiClient
from patchprop_cli.graph import mark, to_dot, to_mermaid
from patchprop_cli.options import api_options, refusals_name_options
from patchprop_cli.output import echo_json, short, table, when


def rebuild_table(rebuilds: list[dict[str, Any]], with_image: bool = True) -> str:
    """The rebuilds, one a line (outcome, duration, pushed digest, the reason's first line), then
    the full reason of each failed one: its failing step and the last lines of its build log."""
    headers = [
        "DETECTED",
        *(["IMAGE"] if with_image else []),
        "BASE",
        "BASE DIGEST",
        "STATUS",
        "METHOD",
        "OUTCOME",
        "TOOK",
        "PUSHED",
        "BUILD / REASON",
    ]
    rows = []
    whys = []
    for r in rebuilds:
        status = r["status"] + (" !" if mark({"last_rebuild": r}) else "")
        reason = r.get("reason") or ""
        if "\n" in reason:
            whys.append(f"Why {r['image']} ({r.get('rebuild_id', '-')}) failed:\n" + _indent(reason))
        rows.append(
            [
                when(r.get("detected_at")),
                *([r["image"]] if with_image else []),
                r["base"],
                short(r.get("base_digest")),
                status,
                method_cell(r),
                r.get("outcome"),
                _took(r.get("started_at"), r.get("finished_at")),
                short(r.get("image_digest")),
                reason.split("\n", 1)[0] or r.get("build_id"),
            ]
        )
    return "\n\n".join([table(headers, rows), *whys])


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _took(started: str | None, finished: str | None) -> str | None:
    """How long a rebuild's build took, as `1m05s`; None while it runs or if it never started."""
    if not started or not finished:
        return None
    try:
        seconds = int((datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds())
    except ValueError:
        return None
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def method_cell(rebuild: dict[str, Any]) -> str:
    """How it was patched (rebased or rebuilt), and why it was not rebased when it could be."""
    method = rebuild.get("method") or "-"
    return f"{method} ({rebuild['fallback_reason']})" if rebuild.get("fallback_reason") else method


@click.command()
@click.option("--image", default=None, help="Only this image's rebuilds.")
@click.option("--base", default=None, help="Only rebuilds on this (direct) base.")
@click.option("--status", default=None, help="Only rebuilds in this status (e.g. FAILED, SUCCEEDED).")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="At most this many."
)
@api_options
def rebuilds(
    image: str | None, base: str | None, status: str | None, limit: int, api_url: str | None, as_json: bool
) -> None:
    """Rebuild history, newest first."""
    with refusals_name_options():
        answer = ApiClient.for_url(api_url).get(
            "/rebuilds", image=image, base=base, status=status.upper() if status else None, limit=limit
        )
    if as_json:
        echo_json(answer)
        return
    if not answer["rebuilds"]:
        click.echo("No rebuilds match.")
        return
    click.echo(rebuild_table(answer["rebuilds"]))


@click.command()
@click.option("--base", default=None, help="Only what this base's move rebuilds (transitively).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "json"]),
    default="mermaid",
    show_default=True,
    help="Mermaid (`graph TD`), Graphviz DOT, or the API's JSON.",
)
@api_options
def graph(base: str | None, fmt: str, api_url: str | None, as_json: bool) -> None:
    """The dependency graph, whole or one base's affected set; failed or blocked images marked."""
    with refusals_name_options():
        answer = ApiClient.for_url(api_url).get("/graph", base=base)
    if as_json or fmt == "json":
        echo_json(answer)
    elif fmt == "dot":
        click.echo(to_dot(answer), nl=False)
    else:
        click.echo(to_mermaid(answer), nl=False)
