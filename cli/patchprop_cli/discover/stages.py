"""The stage walk: BuildKit's rules for which FROM, COPY --from and mount `from=` are images.

- global ARGs (before the first FROM) with their defaults, overridden by `--build-arg`, and the
  platform ARGs BuildKit predefines, are the only variables a FROM sees; an unset one expands
  to nothing, as in BuildKit (said in a note; refused when the reference is then invalid);
- a FROM naming an earlier stage is that stage, not an image; `scratch` is no image;
- `COPY --from=` and `RUN --mount=…,from=` name a stage of the file (by name or index, earlier
  or later: BuildKit registers every stage before it resolves them) or an image; variables
  are refused there, and so is a stage that depends on itself;
- only the stages the final stage needs (FROM, copy, mount) are pulled by BuildKit, so only
  their bases are bases; ONBUILD triggers are not part of this build.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import dockerfile

from patchprop.domain.errors import InvalidReference
from patchprop.domain.refs import parse_ref
from patchprop_cli.discover.lex import Env, ExpandError, Word
from patchprop_cli.discover.model import BaseKind, DiscoverError, FoundBase
from patchprop_cli.discover.platforms import PLATFORM_ARGS
from patchprop_cli.discover.read import from_parser, shown

SCRATCH = "scratch"
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")  # BuildKit's validStageName
_STAGE_INDEX = re.compile(r"^[+-]?[0-9]+$")  # what Go's strconv.Atoi accepts
_KNOWN = frozenset(dockerfile.all_cmds())


@dataclass
class _Stage:
    index: int
    name: str | None
    line: int
    parent: int | None = None  # the earlier stage it is built FROM
    image: str | None = None  # the image it is built FROM (None: scratch, or a parent stage)
    needs: dict[int, int] = field(default_factory=dict)  # stages it copies or mounts from -> line
    uses: frozenset[str] = frozenset()  # the ARGs its FROM expands (BASE_IMAGE: it takes the pin)

    @property
    def label(self) -> str | int:
        return self.name if self.name is not None else self.index


@dataclass
class Walk:
    """One pass over the instructions for one target platform."""

    path: str
    build_args: Mapping[str, str]
    predefined: Mapping[str, str]  # the platform ARGs' values for this target platform
    escape: str
    stage_names: dict[str, int]  # every stage in the file, by lower-case name
    stage_count: int
    env: Env = field(default_factory=Env)
    stages: list[_Stage] = field(default_factory=list)
    found: list[FoundBase] = field(default_factory=list)
    # (line, platform ARG) used by a FROM without being passed; (line, note) for people
    defaulted: list[tuple[int, str]] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)
    unneeded: list[FoundBase] = field(default_factory=list)  # bases of stages the build skips

    def __post_init__(self) -> None:
        # BuildKit sets these itself; a --build-arg overrides them without an ARG.
        for name in PLATFORM_ARGS:
            self.env.values[name] = self.build_args.get(name, self.predefined.get(name, ""))

    def error(self, line: int, reason: str) -> DiscoverError:
        return DiscoverError(self.path, line, shown(reason))

    def image(self, text: str, line: int, what: str) -> str:
        try:
            return str(parse_ref(text))
        except InvalidReference as exc:
            raise self.error(line, f"{what}: {exc}") from None

    def walk(self, commands: tuple[dockerfile.Command, ...]) -> None:
        for command in commands:
            instruction = command.cmd.upper()
            line = command.start_line
            if command.cmd.lower() not in _KNOWN:
                raise self.error(line, f"unknown instruction: {command.cmd}")
            if instruction == "FROM":
                self.from_(command)
            elif not self.stages:
                if instruction != "ARG":
                    raise self.error(
                        line, f"{instruction} before the first FROM: no build stage in current context"
                    )
                self.global_arg(command)
            elif instruction == "COPY":
                self.copy(command)
            elif instruction == "RUN":
                self.run(command)
            # ONBUILD triggers run when another image is built FROM this one: not bases of this one.
        if not self.stages:
            last = commands[-1].start_line if commands else 1
            raise self.error(last, "no FROM: the file has no build stage")
        self.check_cycles()

    # global ARG: BuildKit's buildMetaArgs
    def global_arg(self, command: dockerfile.Command) -> None:
        line = command.start_line
        if not command.value:
            raise self.error(line, "ARG requires at least one argument")
        for item in command.value:
            key, has_value, default = item.partition("=")
            if not key:
                raise self.error(line, "ARG names can not be blank")
            self.env.declared.add(key)
            if key in self.build_args:
                self.env.values[key] = self.build_args[key]
                self.env.tainted.pop(key, None)
            elif has_value:
                word = Word(default, self.env, self.escape)
                try:
                    value = word.expand()
                except ExpandError as exc:
                    raise self.error(line, f"ARG {key}: {exc}") from None
                self.env.values[key] = value
                if word.missing:
                    self.env.tainted[key] = frozenset(word.missing)
                else:
                    self.env.tainted.pop(key, None)

    def from_(self, command: dockerfile.Command) -> None:
        line = command.start_line
        args = command.value
        name: str | None = None
        if len(args) == 3 and args[1].lower() == "as":
            name = args[2].lower()
            if not _STAGE_NAME.match(name):
                raise self.error(
                    line,
                    f"invalid name for build stage: {args[2]!r}, "
                    "name can't start with a number or contain symbols",
                )
        elif len(args) != 1:
            raise self.error(line, "FROM requires either one or three arguments")
        stage = _Stage(index=len(self.stages), name=name, line=line)
        base_name, missing, stage.uses = self.expand_from(args[0], line)
        earlier = {s.name: s.index for s in self.stages if s.name is not None}
        if base_name in earlier:
            stage.parent = earlier[base_name]
        elif base_name != SCRATCH:
            try:
                stage.image = str(parse_ref(base_name))
            except InvalidReference as exc:
                reason = self.missing_reason(args[0], missing) if missing else f"FROM {args[0]}: {exc}"
                raise self.error(line, reason) from None
            self.found.append(FoundBase(stage.image, "from", stage.label, line))
        if missing:
            self.notes.append(
                (line, f"{self.missing_reason(args[0], missing)} (BuildKit expands it to nothing)")
            )
        self.stages.append(stage)

    def expand_from(self, text: str, line: int) -> tuple[str, list[str], frozenset[str]]:
        word = Word(text, self.env, self.escape)
        try:
            result = word.expand()
        except ExpandError as exc:
            raise self.error(line, f"FROM {text}: {exc}") from None
        for name in word.used:
            if name in PLATFORM_ARGS and name not in self.build_args and name not in self.env.declared:
                self.defaulted.append((line, name))
        if not result:
            reason = self.missing_reason(text, word.missing) if word.missing else ""
            raise self.error(line, reason or f"base name ({text}) should not be blank")
        return result, word.missing, frozenset(word.used)

    def missing_reason(self, text: str, names: list[str]) -> str:
        name = names[0]
        hint = f"pass --build-arg {name}=<value>"
        if name in self.env.declared:
            return f"ARG {name} is used in FROM {text} but has no default value; {hint}"
        return f"FROM {text} uses ${name}, but no ARG {name} is declared before the first FROM; {hint}"

    def source(self, value: str, line: int, kind: BaseKind) -> None:
        """The value of `COPY --from=` or of a mount's `from=`: a stage or an image."""
        if not value or value == SCRATCH:
            return
        current = self.stages[-1]
        if _STAGE_INDEX.match(value):
            index = int(value)
            if not 0 <= index < self.stage_count:
                raise self.error(line, f"invalid stage index {index}")
            current.needs.setdefault(index, line)
            return
        if value.lower() in self.stage_names:
            current.needs.setdefault(self.stage_names[value.lower()], line)
            return
        ref = self.image(value, line, "COPY --from" if kind == "copy-from" else "RUN --mount from")
        self.found.append(FoundBase(ref, kind, current.label, line))

    def copy(self, command: dockerfile.Command) -> None:
        for flag in map(from_parser, command.flags):
            name, has_value, value = flag.partition("=")
            if name != "--from":
                continue
            if not has_value:
                raise self.error(command.start_line, "missing a value on flag: --from")
            if "$" in value:
                raise self.error(
                    command.start_line,
                    f"--from={value}: variable expansion is not supported for --from; define a "
                    "stage FROM it with a global ARG instead",
                )
            self.source(value, command.start_line, "copy-from")

    def run(self, command: dockerfile.Command) -> None:
        for flag in map(from_parser, command.flags):
            name, _, spec = flag.partition("=")
            if name != "--mount" or not spec:
                continue
            try:
                fields = next(csv.reader([spec]), [])
            except csv.Error as exc:
                raise self.error(
                    command.start_line, f"--mount={spec}: failed to parse csv mounts: {exc}"
                ) from None
            for item in fields:
                key, has_value, value = item.partition("=")
                if key.lower() != "from" or not has_value:
                    continue
                dollar = value.find("$")
                if dollar != -1 and dollar != len(value) - 1:
                    raise self.error(
                        command.start_line,
                        f"--mount from={value}: 'from' doesn't support variable expansion, "
                        "define alias stage instead",
                    )
                self.source(value, command.start_line, "mount-from")

    def check_cycles(self) -> None:
        """BuildKit's hasCircularDependency over what stages copy and mount from."""
        visited: set[int] = set()

        def cycle(index: int, path: set[int]) -> int | None:
            if index in visited:
                return None
            visited.add(index)
            path.add(index)
            for needed, line in self.stages[index].needs.items():
                if needed in path:
                    return line
                found = cycle(needed, path)
                if found is not None:
                    return found
            path.discard(index)
            return None

        for stage in self.stages:
            line = cycle(stage.index, set())
            if line is not None:
                name = stage.name or ("" if len(self.stages) == 1 else f"stage-{stage.index}")
                raise self.error(line, f"circular dependency detected on stage: {name}")

    def runtime_stage(self) -> _Stage:
        stage = self.stages[-1]
        while stage.parent is not None:
            stage = self.stages[stage.parent]
        return stage

    def reachable(self) -> set[int]:
        """The stages the final one is built from, FROM or copy/mount, directly or not: BuildKit
        resolves (pulls) only their bases."""
        todo, seen = [len(self.stages) - 1], set()
        while todo:
            index = todo.pop()
            if index in seen:
                continue
            seen.add(index)
            stage = self.stages[index]
            todo += [*stage.needs, *([stage.parent] if stage.parent is not None else [])]
        return seen

    def bases(self) -> list[FoundBase]:
        """What the final image's build pulls, one entry per ref where it first appears, the
        runtime base marked; stages it does not need are left out, with a note."""
        runtime = self.runtime_stage()
        reachable = {self.stages[i].label for i in self.reachable()}
        self.unneeded = [base for base in self.found if base.stage not in reachable]
        kept: dict[str, FoundBase] = {}
        for base in sorted((b for b in self.found if b.stage in reachable), key=lambda b: b.line):
            if runtime.image is not None and base.kind == "from" and base.line == runtime.line:
                base = FoundBase(base.ref, base.kind, base.stage, base.line, runtime=True)
            if base.ref not in kept or (base.runtime and not kept[base.ref].runtime):
                kept[base.ref] = base
        return list(kept.values())
