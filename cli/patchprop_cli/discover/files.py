"""Which files are Dockerfiles, and discovery over many of them, each reported on its own."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from patchprop_cli.discover.discovery import discover
from patchprop_cli.discover.model import DiscoverError, Discovery
from patchprop_cli.discover.platforms import DEFAULT_PLATFORM

_STEMS = ("dockerfile", "containerfile")
_IGNORE_FILES = (".dockerignore", ".containerignore")


def is_dockerfile_name(name: str) -> bool:
    """Dockerfile, Containerfile, `*.Dockerfile`, `Dockerfile.*`, in any case (`dockerfile`,
    `api.dockerfile`); not their ignore files (`Dockerfile.dockerignore`)."""
    lower = name.lower()
    if lower.endswith(_IGNORE_FILES):
        return False
    return any(lower == stem or lower.startswith(f"{stem}.") or lower.endswith(f".{stem}") for stem in _STEMS)


def find_each(paths: Iterable[Path]) -> list[Path | DiscoverError]:
    """Files as given; in a directory (top level only) the files `is_dockerfile_name` accepts,
    in name order. A path that gives none is a DiscoverError in its place."""
    out: list[Path | DiscoverError] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            out.append(path)

    for path in paths:
        if path.is_file():
            add(path)
        elif path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.is_file() and is_dockerfile_name(p.name))
            if not matches:
                out.append(DiscoverError(path, None, "no Dockerfile or Containerfile in this directory"))
            for match in matches:
                add(match)
        else:
            out.append(DiscoverError(path, None, "no such file or directory"))
    return out


def find_dockerfiles(paths: Iterable[Path]) -> list[Path]:
    """The Dockerfiles `find_each` finds; raises the first path's DiscoverError."""
    found = find_each(paths)
    for item in found:
        if isinstance(item, DiscoverError):
            raise item
    if not found:
        raise DiscoverError(".", None, "no Dockerfile given")
    return [item for item in found if isinstance(item, Path)]


def discover_all(
    paths: Iterable[Path],
    build_args: Mapping[str, str] | None = None,
    platforms: Sequence[str] = (DEFAULT_PLATFORM,),
) -> list[Discovery | DiscoverError]:
    """`discover` on every Dockerfile in `paths`, in order: each file's result or its error."""
    results: list[Discovery | DiscoverError] = []
    for item in find_each(paths):
        if isinstance(item, DiscoverError):
            results.append(item)
            continue
        try:
            results.append(discover(item, build_args, platforms))
        except DiscoverError as exc:
            results.append(exc)
    return results
