"""Is an image rebase-safe? Its final stage, after FROM, must not read the base's files.

Such a stage (and the stages it is built FROM, following aliases) only adds files from the
context or another stage and sets metadata, so its layers do not depend on the base: putting
them on the base's new layers (a rebase) gives what a rebuild would. A RUN reads the base (it
runs the base's programs), and so does a `COPY --chown` by user name (the base's /etc/passwd).
"""

from __future__ import annotations

from collections.abc import Sequence

import dockerfile

from patchprop_cli.discover.read import from_parser
from patchprop_cli.discover.stages import Walk

# Instructions that write no file from the base's programs (ONBUILD only records a trigger).
METADATA_OR_COPY = frozenset(
    {"COPY", "ADD", "ENV", "LABEL", "USER", "WORKDIR", "EXPOSE", "ENTRYPOINT", "CMD", "VOLUME",
     "STOPSIGNAL", "HEALTHCHECK", "ARG", "SHELL", "MAINTAINER", "ONBUILD"}
)  # fmt: skip


def _named_owner(flags: Sequence[str]) -> str | None:
    for flag in map(from_parser, flags):
        name, _, value = flag.partition("=")
        if name == "--chown" and value and not all(part.isdigit() for part in value.split(":")):
            return value
    return None


def rebase_unsafe(walk: Walk, commands: Sequence[dockerfile.Command]) -> str | None:
    """Why the image built by `walk` is not rebase-safe (`RUN at line N`), or None when it is."""
    runtime = walk.runtime_stage()
    if runtime.image is None:
        return f"FROM scratch at line {runtime.line}: no base to rebase onto"
    chain, stage = [], walk.stages[-1]
    while True:
        chain.append(stage)
        if stage.parent is None:
            break
        stage = walk.stages[stage.parent]
    starts = sorted(s.line for s in walk.stages)
    for stage in reversed(chain):
        after = [line for line in starts if line > stage.line]
        end = after[0] if after else None
        for command in commands:
            line = command.start_line
            if line <= stage.line or (end is not None and line >= end):
                continue
            instruction = command.cmd.upper()
            if instruction not in METADATA_OR_COPY:
                return f"{instruction} at line {line}"
            owner = _named_owner(command.flags) if instruction in ("COPY", "ADD") else None
            if owner:
                return f"{instruction} --chown={owner} at line {line} reads the base's users"
    return None
