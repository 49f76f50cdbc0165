"""`patchprop discover`: read Dockerfiles, find their bases, register the image on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from patchprop.domain.errors import InvalidReference
from patchprop.domain.refs import parse_ref
from patchprop_cli.discover import (
    DEFAULT_PLATFORM,
    DiscoverError,
    Discovery,
    FoundBase,
    discover_all,
    normalize_platform,
)
from patchprop_cli.options import api_url_option, build_args_of, dependent_options, refusals_name_options
from patchprop_cli.source_checks import local_source


class DiscoverFailed(click.ClickException):
    """A Dockerfile patchprop cannot read: the message names the file and line; exit 2."""

    exit_code = 2


def _dependent(discovery: Discovery, image: str | None) -> dict[str, Any]:
    """One Dockerfile's bases: `bases` and `runtime_base` in full (digests kept), `tracked` the
    tags patchprop watches for moves, `pinned` the bases pinned by digest alone (never move)."""
    out: dict[str, Any] = {
        "dockerfile": discovery.path,
        "image": image,
        "bases": discovery.refs,
        "runtime_base": discovery.runtime_base,
        "tracked": discovery.tracked_bases(),
        "pinned": discovery.pinned_bases(),
        "platforms": list(discovery.platforms),
        "found": [_found(base) for base in discovery.bases],
        "notes": _notes(discovery),
        "rebase_safe": discovery.rebase_safe,
        "rebase_unsafe_reason": discovery.rebase_unsafe,
        # Why a rebuild cannot pin the runtime base (null: it can): registering is refused.
        "pin_warning": discovery.pin_warning,
    }
    if discovery.runtime_by_platform:
        out["runtime_by_platform"] = discovery.runtime_by_platform
    return out


def _found(base: FoundBase) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ref": base.ref,
        "kind": base.kind,
        "stage": base.stage,
        "line": base.line,
        "runtime": base.runtime,
    }
    if base.platforms:
        out["platforms"] = list(base.platforms)
    return out


def _notes(discovery: Discovery) -> list[str]:
    pinned = [
        f"{ref} is pinned by digest alone: recorded as a base, not tracked (a pinned base cannot move)"
        for ref in discovery.pinned_bases()
    ]
    return [*discovery.notes, *pinned]


def _error(error: DiscoverError) -> dict[str, Any]:
    return {"dockerfile": error.path, "line": error.line, "error": error.reason, "message": str(error)}


def _table(dependents: list[dict[str, Any]]) -> str:
    blocks = []
    for dependent in dependents:
        title = dependent["dockerfile"]
        if dependent["image"]:
            title += f" -> {dependent['image']}"
        rows = [("REF", "KIND", "STAGE", "LINE", "RUNTIME")]
        rows += [
            (f["ref"], f["kind"], str(f["stage"]), str(f["line"]), _marks(f)) for f in dependent["found"]
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [title]
        lines += [
            "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        if dependent["runtime_base"] is None:
            lines.append("  (the final stage is FROM scratch: no runtime base)")
        lines.append(
            "  rebase-safe: yes (the final stage only copies files and sets metadata)"
            if dependent["rebase_safe"]
            else f"  rebase-safe: no ({dependent['rebase_unsafe_reason']})"
        )
        lines += [f"  note: {note}" for note in dependent["notes"]]
        if dependent["pin_warning"]:
            lines.append(f"  warning: {dependent['pin_warning']}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _marks(found: dict[str, Any]) -> str:
    marks = ["runtime"] if found["runtime"] else []
    if "platforms" in found:
        marks.append("only " + ",".join(found["platforms"]))
    return " ".join(marks)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    metavar="OS/ARCH[,…]",
    help=f"A platform the image is built for (repeatable or comma separated; default {DEFAULT_PLATFORM}):"
    " sets TARGETPLATFORM, TARGETARCH, … as BuildKit does.",
)
@click.option("--image", default=None, help="Your image built from these Dockerfiles (e.g. acme/api:2.4).")
@dependent_options(registering=False, skip=("bases",))
@click.option("--dry-run", is_flag=True, help="Print what would be registered; register nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print JSON.")
@api_url_option
def discover(
    paths: tuple[Path, ...],
    platforms: tuple[str, ...],
    image: str | None,
    dry_run: bool,
    as_json: bool,
    api_url: str | None,
    build_args: tuple[str, ...],
    **settings: Any,
) -> None:
    """Find the base images of Dockerfiles (FROM, COPY --from, RUN --mount from) and register
    the image built from them as a dependent of all of them.

    PATH is a Dockerfile or Containerfile, or a directory holding some. Every file is reported,
    read or refused (with its file and line); the exit status is 2 if any was refused. Registering
    takes the options of `patchprop register` (but the bases, read from the file), and needs a
    source to rebuild from (--source-location).
    """
    args = build_args_of(build_args)
    try:
        targets = [normalize_platform(p) for item in platforms for p in item.split(",") if p.strip()]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--platform") from exc
    if not dry_run:
        needed = (
            ("--image", image),
            ("--project", settings["project"]),
            ("--source-location", settings["source_location"]),
        )
        missing = [name for name, value in needed if not value]
        if missing:
            raise click.UsageError(
                f"registering needs {', '.join(missing)} (or use --dry-run): --source-location is what a "
                "rebuild builds (a directory for `patchprop local`, a repository for CodeBuild)"
            )
        source = local_source(settings["source_location"])
        settings["source_location"] = str(source) if source else settings["source_location"]
    if image is not None:
        try:
            image = str(parse_ref(image))
        except InvalidReference as exc:
            raise click.BadParameter(str(exc), param_hint="--image") from exc
    results = discover_all(paths, args, targets or [DEFAULT_PLATFORM])
    if image is not None and len(results) > 1:
        files = ", ".join(r.path for r in results)
        raise click.UsageError(f"--image names one image, but {len(results)} Dockerfiles were found: {files}")
    dependents = [_dependent(r, image) for r in results if isinstance(r, Discovery)]
    errors = [r for r in results if isinstance(r, DiscoverError)]

    if dry_run:
        if as_json:
            click.echo(
                json.dumps({"dependents": dependents, "errors": [_error(e) for e in errors]}, indent=2)
            )
        elif dependents:
            click.echo(_table(dependents))
        for error in errors:
            click.echo(f"Error: {error}", err=True)
        if errors:
            raise SystemExit(DiscoverFailed.exit_code)
        return

    if errors:
        raise DiscoverFailed(str(errors[0]))
    assert image is not None  # checked above
    _register(dependents[0], image, args, api_url, settings)


def _register(
    dependent: dict[str, Any], image: str, args: dict[str, str], api_url: str | None, settings: dict[str, Any]
) -> None:
    """Register what one Dockerfile is built on, with `patchprop register`'s settings."""
    from patchprop_cli.client import ApiClient, register_dependent
    from patchprop_cli.output import tell_registered

    for note in dependent["notes"]:
        click.echo(f"note: {note}", err=True)
    if not dependent["tracked"]:
        raise DiscoverFailed(
            f"{dependent['dockerfile']}: no base image to track for {image} (pinned or scratch)"
        )
    if dependent["pin_warning"]:
        raise DiscoverFailed(f"{dependent['dockerfile']}: {dependent['pin_warning']}")
    auto = settings["auto_rebuild"]
    with refusals_name_options():
        answer = register_dependent(
            image=image,
            bases=dependent["tracked"],
            project=settings["project"],
            owner=settings["owner"],
            build_args=args,
            source_location=settings["source_location"],
            source_version=settings["source_version"],
            auto_rebuild=True if auto is None else auto,
            cooldown_seconds=settings["cooldown_seconds"] or 0,
            policy=settings["policy"],
            test_command=settings["test_command"],
            patch_by=settings.get("patch_by") or "auto",
            rebase_safe=dependent["rebase_safe"],
            rebase_unsafe_reason=dependent["rebase_unsafe_reason"],
            client=ApiClient.for_url(api_url),
        )
    runtime = dependent["runtime_base"]
    click.echo(f"registered {image} on {', '.join(dependent['tracked'])} (runtime base {runtime})")
    tell_registered(answer)
