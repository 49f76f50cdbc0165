"""`patchprop patch BASE --now`: rebuild what is built on a base at once, whatever its urgency.

The base check batches a republish that fixes nothing (or skips one that changed only metadata);
an owner can always have it now. A base whose signature failed stays refused.
"""

from __future__ import annotations

import click

from patchprop_cli.client import ApiClient
from patchprop_cli.options import api_options, refusals_name_options
from patchprop_cli.output import echo_json, short


@click.command()
@click.argument("base")
@click.option("--now", "now", is_flag=True, required=True, help="Rebuild now (required: what it does).")
@api_options
def patch(base: str, now: bool, api_url: str | None, as_json: bool) -> None:
    """Rebuild every image built on BASE now, on its current digest."""
    if not now:
        raise click.UsageError("say --now: `patchprop patch BASE --now`")
    client = ApiClient.for_url(api_url)
    with refusals_name_options(base="BASE"):
        answer = client.request("POST", "/bases/patch", params={"base": base}, body={})
    if as_json:
        echo_json(answer)
        return
    click.echo(
        f"{answer['base']} @ {short(answer['digest'])}: sent to the planner, forced now; "
        'the "base moved" message tells how many images rebuild'
    )
