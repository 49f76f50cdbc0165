"""`patchprop promote REBUILD_ID --reason '…'` and `patchprop rollback IMAGE [--to DIGEST]`.

People stay in charge: promote a rebuild the gate held back (its tag moves to the rebuild's
digest, recorded with who/when/why, and its cascade continues), or move an image's tag back to
the digest it had before. A refusal names the problem and changes nothing.
"""

from __future__ import annotations

from urllib.parse import quote

import click

from patchprop_cli.client import ApiClient
from patchprop_cli.options import api_options, refusals_name_options
from patchprop_cli.output import echo_json


@click.command()
@click.argument("rebuild_id")
@click.option("--reason", required=True, help="Why you promote it (recorded and told).")
@api_options
def promote(rebuild_id: str, reason: str, api_url: str | None, as_json: bool) -> None:
    """Move an image's tag to a finished rebuild's digest the gate held back."""
    client = ApiClient.for_url(api_url)
    with refusals_name_options(reason="--reason"):
        answer = client.post(f"/rebuilds/{quote(rebuild_id, safe='')}/promote", {"reason": reason})
    if as_json:
        echo_json(answer)
        return
    click.echo(f"promoted {answer['image']}: its tag is on {answer['digest']} (by {answer['promoted_by']})")
    for image in answer["released"]:
        click.echo(f"  cascade continues: {image} enqueued")


@click.command()
@click.argument("image")
@click.option("--to", "to", default=None, metavar="DIGEST", help="An earlier digest (default: the previous).")
@api_options
def rollback(image: str, to: str | None, api_url: str | None, as_json: bool) -> None:
    """Move an image's tag back to the digest it had before its last promotion."""
    client = ApiClient.for_url(api_url)
    with refusals_name_options(image="IMAGE", to="--to"):
        answer = client.request("POST", "/dependents/rollback", params={"image": image}, body={"to": to})
    if as_json:
        echo_json(answer)
        return
    click.echo(f"rolled {answer['image']} back: {answer['from_digest']} -> {answer['to_digest']}")
    if answer.get("dependents_patch"):
        click.echo(f"the images built on it are patched onto {answer['to_digest']}")
