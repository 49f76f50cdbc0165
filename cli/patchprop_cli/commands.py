"""`patchprop register|update|list|show|remove|bases`: the management API for people.

Each prints a readable table, or with --json the API's answer unchanged (for scripts). Progress
goes to stderr, so --json output stays clean.
"""

from __future__ import annotations

from typing import Any

import click

from patchprop.domain.models import Dependent
from patchprop_cli.client import ApiClient, ApiError
from patchprop_cli.options import (
    api_options,
    build_args_of,
    dependent_options,
    refusals_name_options,
)
from patchprop_cli.output import echo_json, progress, short, table, tell_registered, when
from patchprop_cli.rebuilds_cmd import rebuild_table


@click.command()
@click.option("--image", required=True, help=Dependent.model_fields["image"].description)
@dependent_options(registering=True)
@api_options
def register(
    image: str,
    bases: tuple[str, ...],
    project: str,
    owner: str | None,
    source_location: str | None,
    source_version: str | None,
    build_args: tuple[str, ...],
    auto_rebuild: bool,
    cooldown_seconds: int,
    policy: str | None,
    test_command: str | None,
    patch_by: str,
    api_url: str | None,
    as_json: bool,
) -> None:
    """Register an image built on one or more bases (or replace its registration)."""
    from patchprop_cli.client import register_dependent
    from patchprop_cli.source_checks import local_source, pin_warnings

    args = build_args_of(build_args)
    source = local_source(source_location)
    for warning in pin_warnings(source) if source else []:
        click.echo(f"warning: {warning}", err=True)
    source_location = str(source) if source else source_location
    client = ApiClient.for_url(api_url)
    with refusals_name_options():
        answer = register_dependent(
            image,
            list(bases),
            project,
            owner,
            args,
            source_location,
            source_version,
            auto_rebuild=auto_rebuild,
            cooldown_seconds=cooldown_seconds,
            policy=policy,
            test_command=test_command,
            patch_by=patch_by,
            client=client,
        )
    if as_json:
        echo_json(answer)
        return
    dependent = answer["dependent"]
    verb = "registered" if answer["created"] else "updated"
    click.echo(
        f"{verb} {dependent['image']} on {', '.join(dependent['bases'])} "
        f"(CodeBuild project {dependent['project']})"
    )
    tell_registered(answer)


@click.command()
@click.argument("image")
@dependent_options(registering=False)
@api_options
def update(
    image: str,
    bases: tuple[str, ...],
    project: str | None,
    owner: str | None,
    source_location: str | None,
    source_version: str | None,
    build_args: tuple[str, ...],
    auto_rebuild: bool | None,
    cooldown_seconds: int | None,
    policy: str | None,
    test_command: str | None,
    patch_by: str | None,
    api_url: str | None,
    as_json: bool,
) -> None:
    """Change some settings of a registered image (the others stay as they are)."""
    changes: dict[str, Any] = {
        "bases": list(bases) or None,
        "project": project,
        "owner": owner,
        "source_location": source_location,
        "source_version": source_version,
        "build_args": build_args_of(build_args) if build_args else None,
        "auto_rebuild": auto_rebuild,
        "cooldown_seconds": cooldown_seconds,
        "policy": policy,
        "test_command": test_command,
        "patch_by": patch_by,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    with refusals_name_options(image="IMAGE"):
        from patchprop.logic.catalog import DependentChanges
        from patchprop_cli.client import check_request

        check_request(DependentChanges, changes)
        answer = ApiClient.for_url(api_url).patch("/dependents", changes, image=image)
    if as_json:
        echo_json(answer)
        return
    click.echo(f"updated {answer['dependent']['image']}: {', '.join(sorted(changes))}")


# ---- reading ----------------------------------------------------------------------------------


@click.command("list")
@api_options
def list_dependents(api_url: str | None, as_json: bool) -> None:
    """List the registered images."""
    answer = ApiClient.for_url(api_url).get("/dependents")
    if as_json:
        echo_json(answer)
        return
    dependents = answer["dependents"]
    if not dependents:
        click.echo("No images registered yet: see `patchprop register --help`.")
        return
    click.echo(
        table(
            ["IMAGE", "PROJECT", "OWNER", "AUTO", "COOLDOWN", "BASES"],
            [
                [
                    d["image"],
                    d["project"],
                    d.get("owner"),
                    "yes" if d["auto_rebuild"] else "no",
                    f"{d.get('cooldown_seconds', 0)}s",
                    ", ".join(d["bases"]),
                ]
                for d in dependents
            ],
        )
    )


@click.command()
@click.argument("image")
@api_options
def show(image: str, api_url: str | None, as_json: bool) -> None:
    """Show one image: how it is rebuilt, its bases and their digests, its last rebuilds."""
    with refusals_name_options(image="IMAGE"):
        answer = ApiClient.for_url(api_url).get("/dependents/one", image=image)
    if as_json:
        echo_json(answer)
        return
    d = answer["dependent"]
    source = " @ ".join(s for s in (d.get("source_location"), d.get("source_version")) if s) or "-"
    facts = [
        ("image", d["image"]),
        ("project", d["project"]),
        ("owner", d.get("owner") or "-"),
        (
            "auto-rebuild",
            ("yes" if d["auto_rebuild"] else "no") + f", cooldown {d.get('cooldown_seconds', 0)}s",
        ),
        ("policy", d.get("policy") or "default (fail on new CRITICAL or HIGH of its own)"),
        ("source", source),
        ("build args", " ".join(f"{k}={v}" for k, v in sorted(d.get("build_args", {}).items())) or "-"),
        ("built on it", ", ".join(answer["built_on_it"]) or "-"),
    ]
    for name, value in facts:
        click.echo(f"{name + ':':<13} {value}")
    click.echo(
        "\n"
        + table(
            ["BASE", "DIGEST", "PREVIOUS", "CHANGED"],
            [
                [b["ref"], short(b.get("digest")), short(b.get("previous_digest")), when(b.get("changed_at"))]
                for b in answer["bases"]
            ],
        )
    )
    rebuilds = answer["rebuilds"]
    click.echo("\nLast rebuilds:" if rebuilds else "\nNo rebuilds yet.")
    if rebuilds:
        click.echo(rebuild_table(rebuilds, with_image=False))


@click.command()
@click.argument("images", nargs=-1, required=True)
@api_options
def remove(images: tuple[str, ...], api_url: str | None, as_json: bool) -> None:
    """Stop tracking images (their bases stay tracked; images built on them stay registered)."""
    client = ApiClient.for_url(api_url)
    removed: list[str] = []
    failed: list[str] = []
    for image in progress(list(images), "removing"):
        try:
            removed.append(client.delete("/dependents", image=image)["removed"])
        except ApiError as exc:
            failed.append(f"{image}: {exc.format_message()}")
    if as_json:
        echo_json({"removed": removed, "failed": failed})
    else:
        for image in removed:
            click.echo(f"removed {image}")
    if failed:
        raise click.ClickException("\n".join(failed))


@click.command()
@api_options
def bases(api_url: str | None, as_json: bool) -> None:
    """List the tracked bases: last digest, when it moved, how many images are built on each."""
    answer = ApiClient.for_url(api_url).get("/bases")
    if as_json:
        echo_json(answer)
        return
    if not answer["bases"]:
        click.echo("No bases tracked yet: register an image built on one.")
        return
    click.echo(
        table(
            ["BASE", "DIGEST", "PREVIOUS", "CHANGED", "IMAGES"],
            [
                [
                    b["ref"],
                    short(b.get("digest")),
                    short(b.get("previous_digest")),
                    when(b.get("changed_at")),
                    b.get("dependents", 0),
                ]
                for b in answer["bases"]
            ],
        )
    )
