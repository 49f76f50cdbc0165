"""One Dockerfile's bases: read its bytes, parse, walk the stages for each target platform."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import dockerfile

from patchprop_cli.discover.model import DiscoverError, Discovery, FoundBase
from patchprop_cli.discover.platforms import (
    DEFAULT_PLATFORM,
    PLATFORM_ARGS,
    defaulted_note,
    merge,
    normalize_platform,
    predefined_args,
)
from patchprop_cli.discover.read import escape_token, parse, read_dockerfile
from patchprop_cli.discover.rebase_safe import rebase_unsafe
from patchprop_cli.discover.stages import Walk


def _stage_names(commands: Sequence[dockerfile.Command]) -> tuple[dict[str, int], int]:
    names: dict[str, int] = {}
    count = 0
    for command in commands:
        if command.cmd.upper() != "FROM":
            continue
        if len(command.value) == 3 and command.value[1].lower() == "as":
            names[command.value[2].lower()] = count
        count += 1
    return names, count


def _global_args(commands: Sequence[dockerfile.Command]) -> tuple[set[str], set[str]]:
    """ARG names declared before the first FROM, and those declared in a stage."""
    before: set[str] = set()
    inside: set[str] = set()
    seen_from = False
    for command in commands:
        if command.cmd.upper() == "FROM":
            seen_from = True
        elif command.cmd.upper() == "ARG":
            names = {item.partition("=")[0] for item in command.value}
            (inside if seen_from else before).update(names)
    return before, inside


def discover(
    path: Path,
    build_args: Mapping[str, str] | None = None,
    platforms: Sequence[str] = (DEFAULT_PLATFORM,),
) -> Discovery:
    """The bases `path` is built on, for each target platform (linux/amd64 unless told).

    Raises DiscoverError (`<path>:<line>: why`) for exactly what BuildKit would refuse.
    """
    args = dict(build_args or {})
    targets = list(dict.fromkeys(normalize_platform(p) for p in platforms)) or [DEFAULT_PLATFORM]
    text = read_dockerfile(path)
    if not text.strip():
        raise DiscoverError(path, 1, "the file is empty (no FROM)")
    commands = parse(path, text)
    names, count = _stage_names(commands)
    escape = escape_token(text)
    build = normalize_platform(args.get("BUILDPLATFORM", DEFAULT_PLATFORM))

    walks: dict[str, Walk] = {}
    for target in targets:
        walk = Walk(
            path=str(path),
            build_args=args,
            predefined=predefined_args(target, build),
            escape=escape,
            stage_names=names,
            stage_count=count,
        )
        try:
            walk.walk(commands)
        except DiscoverError as exc:
            if len(targets) == 1:
                raise
            raise DiscoverError(path, exc.line, f"{exc.reason} (target platform {target})") from None
        walks[target] = walk

    per_platform: dict[str, list[FoundBase]] = {t: w.bases() for t, w in walks.items()}
    runtimes = {t: w.runtime_stage().image for t, w in walks.items()}
    first = walks[targets[0]]
    bases = merge(per_platform)
    return Discovery(
        path=str(path),
        bases=bases,
        runtime_base=runtimes[targets[0]],
        platforms=tuple(targets),
        runtime_by_platform=runtimes if len(set(runtimes.values())) > 1 else {},
        notes=_notes(walks, first, args, commands, {base.ref for base in bases}),
        rebase_unsafe=rebase_unsafe(first, commands),
        pin_warning=pin_warning(first),
    )


PIN_ARG = "BASE_IMAGE"  # what a rebuild passes: the base pinned by digest (buildspec/rebuild.sh)


def pin_warning(walk: Walk) -> str | None:
    """Why a rebuild cannot pin this Dockerfile's runtime base, and the lines to write; None if it can."""
    runtime = walk.runtime_stage()
    if runtime.image is None or PIN_ARG in runtime.uses:
        return None
    tracked = FoundBase(runtime.image, "from", runtime.label, runtime.line).tracked or runtime.image
    alias = f" AS {runtime.name}" if runtime.name else ""
    return (
        f"line {runtime.line}: the runtime stage's FROM does not use ${{{PIN_ARG}}}, so a rebuild cannot "
        f"pin it to the new base's digest (and patchprop refuses such a rebuild); write "
        f"`ARG {PIN_ARG}={tracked}` before the first FROM and `FROM ${{{PIN_ARG}}}{alias}` "
        f"on line {runtime.line}"
    )


def _notes(
    walks: Mapping[str, Walk],
    first: Walk,
    args: Mapping[str, str],
    commands: Sequence[dockerfile.Command],
    pulled: set[str],
) -> list[str]:
    """What was assumed (platform ARGs, unset ARGs) or left out (bases of stages the build does
    not need, on any platform; build args no FROM uses), in line order."""
    notes: list[tuple[int, str]] = list(dict.fromkeys(first.notes))
    skipped: dict[str, FoundBase] = {}
    for walk in walks.values():
        for base in walk.unneeded:
            if base.ref not in pulled:
                skipped.setdefault(base.ref, base)
    notes += [
        (base.line, f"{base.ref} is not pulled: stage {base.stage} is not needed by the final stage")
        for base in skipped.values()
    ]
    for line, name in dict.fromkeys(first.defaulted):
        values = {target: walk.env.values[name] for target, walk in walks.items()}
        notes.append((line, defaulted_note(line, name, values)))
    notes.sort(key=lambda note: note[0])
    before, inside = _global_args(commands)
    for name in args:
        if name in before or name in PLATFORM_ARGS:
            continue
        where = "only inside a stage" if name in inside else "nowhere in this file"
        notes.append((0, f"--build-arg {name}: no FROM can use it (ARG {name} is declared {where})"))
    return [
        text if text.startswith(("line ", "--build-arg")) else f"line {line}: {text}" for line, text in notes
    ]
