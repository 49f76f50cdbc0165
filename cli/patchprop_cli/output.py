"""How the CLI prints: JSON for scripts, aligned tables for people, progress on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import click

T = TypeVar("T")


def progress(items: Sequence[T], label: str) -> Iterator[T]:
    """The items, with a progress bar on stderr when there are several and stderr is a terminal."""
    if len(items) < 2 or not sys.stderr.isatty():
        yield from items
        return
    with click.progressbar(items, label=label, file=sys.stderr, show_pos=True) as bar:
        yield from bar


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Plain columns, two spaces apart, the last one not padded."""
    cells = [[str(c) for c in headers]] + [
        ["-" if c is None or c == "" else str(c) for c in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)) + "  " + row[-1]
        for row in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


def short(digest: str | None) -> str:
    """`sha256:0123456789ab`: enough to tell digests apart in a table."""
    return digest[:19] if digest else "-"


def when(stamp: str | None) -> str:
    """An ISO timestamp to the second, `T` as a space."""
    return stamp[:19].replace("T", " ") if stamp else "-"


def tell_registered(answer: dict[str, Any]) -> None:
    """What registering did about the bases' digests, and what it could not check (on stderr)."""
    for warning in answer.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)
    if answer.get("baselined"):
        click.echo(
            f"Recorded the current digest of {', '.join(answer['baselined'])}: its next move rebuilds it."
        )
