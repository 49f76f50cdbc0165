"""`patchprop poll [BASE]`: check the tracked bases now, as the scheduled poll does."""

from __future__ import annotations

import click

from patchprop_cli.client import ApiClient
from patchprop_cli.options import api_options, refusals_name_options
from patchprop_cli.output import echo_json, short, table

_SAID = {
    "moved": "moved: a patch is enqueued, the images on it are rebuilt",
    "baseline": "first digest recorded: its next move rebuilds the images on it",
    "unchanged": "unchanged",
    "untracked": "not tracked",
    "error": "the registry could not tell (see the API's log); the next poll tries again",
}


@click.command()
@click.argument("base", required=False)
@api_options
def poll(base: str | None, api_url: str | None, as_json: bool) -> None:
    """Poll BASE (or every tracked base) now: one registry lookup each; a moved one is patched."""
    with refusals_name_options(base="BASE"):
        answer = ApiClient.for_url(api_url).request("POST", "/bases/poll", params={"base": base}, body={})
    if as_json:
        echo_json(answer)
        return
    if not answer["bases"]:
        click.echo("No bases tracked yet: register an image built on one.")
        return
    rows = [
        [b["base"], short(b.get("previous_digest")), short(b.get("digest")), _SAID.get(b["seen"], b["seen"])]
        for b in answer["bases"]
    ]
    click.echo(table(["BASE", "WAS", "NOW", "SEEN"], rows))
