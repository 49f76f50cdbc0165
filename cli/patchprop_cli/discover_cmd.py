"""`patchprop discover`: read Dockerfiles, find their bases, register the image on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from patchprop.domain.errors import InvalidReference
from patchprop.domain.refs import parse_ref
from patchprop_cli.commands import build_args_of
from patchprop_cli.discover import DiscoverError, Discovery, discover_all


class DiscoverFailed(click.ClickException):
    """A Dockerfile patchprop cannot read: the message names the file and line; exit 2."""

    exit_code = 2


def _dependent(discovery: Discovery, image: str | None) -> dict[str, Any]:
    return {
        "dockerfile": discovery.path,
        "image": image,
        "bases": discovery.tracked_bases(),
        "runtime_base": discovery.tracked_runtime_base,
        "found": [
            {
                "ref": base.ref,
                "kind": base.kind,
                "stage": base.stage,
                "line": base.line,
                "runtime": base.runtime,
            }
            for base in discovery.bases
        ],
    }


def _table(dependents: list[dict[str, Any]]) -> str:
    blocks = []
    for dependent in dependents:
        title = dependent["dockerfile"]
        if dependent["image"]:
            title += f" -> {dependent['image']}"
        rows = [("REF", "KIND", "STAGE", "LINE", "RUNTIME")]
        rows += [
            (f["ref"], f["kind"], str(f["stage"]), str(f["line"]), "runtime" if f["runtime"] else "")
            for f in dependent["found"]
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [title]
        lines += [
            "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        if dependent["runtime_base"] is None:
            lines.append("  (the final stage is FROM scratch: no runtime base)")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--build-arg", "build_args", multiple=True, metavar="NAME=VALUE", help="A build argument (repeatable)."
)
@click.option("--image", default=None, help="Your image built from these Dockerfiles (e.g. acme/api:2.4).")
@click.option("--project", default=None, help="The CodeBuild project that rebuilds it.")
@click.option("--owner", default=None, help="Team or person told about its rebuilds.")
@click.option("--dry-run", is_flag=True, help="Print what would be registered; register nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print JSON.")
def discover(
    paths: tuple[Path, ...],
    build_args: tuple[str, ...],
    image: str | None,
    project: str | None,
    owner: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Find the base images of Dockerfiles (FROM, COPY --from, RUN --mount from) and register
    the image built from them as a dependent of all of them.

    PATH is a Dockerfile or Containerfile, or a directory holding some.
    """
    args = build_args_of(build_args)
    if not dry_run:
        missing = [name for name, value in (("--image", image), ("--project", project)) if not value]
        if missing:
            raise click.UsageError(f"registering needs {' and '.join(missing)} (or use --dry-run)")
    if image is not None:
        try:
            image = str(parse_ref(image))
        except InvalidReference as exc:
            raise click.BadParameter(str(exc), param_hint="--image") from exc
    try:
        discoveries = discover_all(paths, args)
        if image is not None and len(discoveries) > 1:
            files = ", ".join(d.path for d in discoveries)
            raise click.UsageError(
                f"--image names one image, but {len(discoveries)} Dockerfiles were found: {files}"
            )
        dependents = [_dependent(discovery, image) for discovery in discoveries]
    except DiscoverError as exc:
        raise DiscoverFailed(str(exc)) from exc

    if dry_run:
        if as_json:
            click.echo(json.dumps({"dependents": dependents}, indent=2))
        else:
            click.echo(_table(dependents))
        return

    from patchprop_cli.client import register_dependent

    assert image is not None and project is not None  # checked above
    dependent = dependents[0]
    if not dependent["bases"]:
        raise DiscoverFailed(f"{dependent['dockerfile']}: no base image to register {image} on")
    register_dependent(image=image, bases=dependent["bases"], project=project, owner=owner, build_args=args)
    click.echo(
        f"registered {image} on {', '.join(dependent['bases'])} (runtime base {dependent['runtime_base']})"
    )
