"""`patchprop rescan [IMAGE]`: rescan promoted images against ECR's current findings now.

A named image is rescanned whatever the day's budget (OwnPackageRescansPerDay); without one,
what the scheduled tick would rescan now. Own packages with fixes rebuild the image alone, under
the same gate and promotion as every rebuild.
"""

from __future__ import annotations

import click

from patchprop_cli.client import ApiClient
from patchprop_cli.options import api_options, refusals_name_options
from patchprop_cli.output import echo_json, table


@click.command()
@click.argument("image", required=False)
@api_options
def rescan(image: str | None, api_url: str | None, as_json: bool) -> None:
    """Rescan IMAGE (or what is due) now; a fix in its own packages rebuilds it."""
    client = ApiClient.for_url(api_url)
    with refusals_name_options(image="IMAGE"):
        answer = client.request("POST", "/rescans", body={"image": image} if image else {})
    if as_json:
        echo_json(answer)
        return
    if answer.get("note"):
        click.echo(answer["note"])
    if not answer["rescanned"]:
        click.echo("Nothing rescanned: every promoted image had its rescan today, or the budget is spent.")
        return
    rows = [[r["image"], r["outcome"], r.get("rebuild_id") or "-"] for r in answer["rescanned"]]
    click.echo(table(["IMAGE", "OUTCOME", "REBUILD"], rows))
