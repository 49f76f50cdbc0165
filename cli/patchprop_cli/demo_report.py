"""The demo's last word: `patchprop status` of what it built, and the HTML report, written where
it outlives the demo's temporary directory."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from patchprop_cli.client import ApiClient
from patchprop_cli.report_html import render_html
from patchprop_cli.status_cmd import status_text

REPORT_PATH = Path(".patchprop") / "demo-report.html"


def show_fleet(api_url: str, out: Path = REPORT_PATH) -> Path:
    """Print the fleet's status and write the patch report (HTML) from the stack's API."""
    client = ApiClient(api_url, sign=False)
    answer = client.get("/status")
    click.echo(status_text(answer["images"], sys.stdout.isatty()))
    report = client.get("/report", since="1d")
    for event in report["events"]:
        measured = "-" if event["minutes"] is None else f"{event['minutes']:g} min"
        click.echo(f"    patch {event['base']}: {event['state']}, time to patch {measured}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(report), encoding="utf-8")
    click.echo(f"    the HTML report: {out.resolve()} (open it in a browser)")
    return out
