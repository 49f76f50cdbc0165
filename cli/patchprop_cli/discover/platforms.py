"""The platform ARGs BuildKit predefines, and bases that differ between target platforms."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from patchprop_cli.discover.model import FoundBase

# What an image is built for when nothing else is said, and what CodeBuild builds on.
DEFAULT_PLATFORM = "linux/amd64"
# BuildKit's defaultArgs (dockerfile2llb): set from the build and target platforms, visible to
# every FROM without an ARG, overridden by a --build-arg of the same name.
PLATFORM_ARGS = frozenset(
    {
        "BUILDPLATFORM",
        "BUILDOS",
        "BUILDOSVERSION",
        "BUILDARCH",
        "BUILDVARIANT",
        "TARGETPLATFORM",
        "TARGETOS",
        "TARGETOSVERSION",
        "TARGETARCH",
        "TARGETVARIANT",
        "TARGETSTAGE",
    }
)
_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")
# containerd's platforms.Normalize, for the spellings people write.
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "i686": "386"}


def normalize_platform(text: str) -> str:
    """`os/arch[/variant]` as BuildKit formats it (`linux/aarch64` → `linux/arm64`,
    `linux/arm` → `linux/arm/v7`, `linux/arm64/v8` → `linux/arm64`). ValueError if malformed."""
    value = text.strip().lower()
    if not _PLATFORM.match(value):
        raise ValueError(f"{text!r} is not a platform (os/arch[/variant], e.g. linux/arm64)")
    os_, arch, *rest = value.split("/")
    arch = _ARCH_ALIASES.get(arch, arch)
    variant = rest[0] if rest else ""
    if arch == "arm64" and variant == "v8":
        variant = ""
    if arch == "arm" and not variant:
        variant = "v7"
    return "/".join(part for part in (os_, arch, variant) if part)


def predefined_args(target: str, build: str = DEFAULT_PLATFORM) -> dict[str, str]:
    """The values BuildKit gives the platform ARGs when building for `target` on `build`."""
    values: dict[str, str] = {}
    for prefix, platform in (("BUILD", build), ("TARGET", target)):
        os_, arch, *rest = platform.split("/")
        values[f"{prefix}PLATFORM"] = platform
        values[f"{prefix}OS"] = os_
        values[f"{prefix}OSVERSION"] = ""
        values[f"{prefix}ARCH"] = arch
        values[f"{prefix}VARIANT"] = rest[0] if rest else ""
    values["TARGETSTAGE"] = ""  # BuildKit: the --target stage; patchprop builds the last one
    return values


def defaulted_note(line: int, name: str, walks: Mapping[str, str]) -> str:
    """Say which value a platform ARG nobody passed was given, per target platform."""
    values = ", ".join(f"{value or '(empty)'} for {platform}" for platform, value in walks.items())
    return f"line {line}: ${name} was not passed; BuildKit predefines it from the target platform: {values}"


def merge(per_platform: Mapping[str, Sequence[FoundBase]]) -> list[FoundBase]:
    """The bases of every platform in one list; a base not found on every platform names the
    platforms it is a base for."""
    platforms = list(per_platform)
    seen: dict[str, list[str]] = {}
    first: dict[str, FoundBase] = {}
    order: dict[str, int] = {}  # where each ref first appears, on any platform
    for platform, bases in per_platform.items():
        for position, base in enumerate(bases):
            seen.setdefault(base.ref, []).append(platform)
            order[base.ref] = min(order.get(base.ref, position), position)
            kept = first.get(base.ref)
            if kept is None or (base.runtime and not kept.runtime):
                first[base.ref] = base
    merged = [
        base if len(seen[ref]) == len(platforms) else replace(base, platforms=tuple(seen[ref]))
        for ref, base in first.items()
    ]
    return sorted(merged, key=lambda base: order[base.ref])
