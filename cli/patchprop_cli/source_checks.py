"""What registering can check about an image's source before anything is stored.

A source location that is a path on this machine (`/…`, `./…`, `~/…`, `file://…`, as
`patchprop local` builds them) must be a directory; a relative one is made absolute (the local
builder does not run where the CLI ran). Its Dockerfile is read, and a runtime stage whose FROM
cannot take the pin (no `${BASE_IMAGE}`) is said, with the line to write. Other locations (git,
S3, CodeCommit URLs) are CodeBuild's to fetch: not checked here.
"""

from __future__ import annotations

from pathlib import Path

import click

_PATH_PREFIXES = ("/", "./", "../", "~", "file://")


def local_source(location: str | None, option: str = "--source-location") -> Path | None:
    """The local directory `location` names, made absolute; None when it is not a local path.

    Raises click.BadParameter (exit 2) naming `option` when the directory does not exist."""
    if not location or not (location.startswith(_PATH_PREFIXES) or location in (".", "..")):
        return None
    path = Path(location.removeprefix("file://")).expanduser().resolve()
    if not path.is_dir():
        raise click.BadParameter(
            f"{location}: no such directory (the build context to rebuild from)", param_hint=option
        )
    return path


def pin_warnings(source: Path, dockerfile: str = "Dockerfile") -> list[str]:
    """Why a rebuild from `source` cannot pin its base, read from its Dockerfile ([] if it can,
    or if there is no Dockerfile to read)."""
    from patchprop_cli.discover import Discovery, discover_all

    path = source / dockerfile
    if not path.is_file():
        return [f"{path}: no Dockerfile in the source directory; the rebuild needs one"]
    results = discover_all([path], {}, ["linux/amd64"])
    return [f"{r.path}: {r.pin_warning}" for r in results if isinstance(r, Discovery) and r.pin_warning]
