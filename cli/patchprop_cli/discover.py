"""Find the base images a Dockerfile is built on, the way BuildKit reads it.

The instructions come from BuildKit's own parser (the `dockerfile` package); this module
only applies BuildKit's rules on top of it:

- global ARGs (before the first FROM) with their defaults, overridden by `--build-arg`, are
  the only variables a FROM sees; `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}` and the
  other forms of BuildKit's shell-word expansion (quotes and escapes too) are applied;
- a FROM naming an earlier stage is that stage, not an image; `scratch` is no image;
- `COPY --from=` and `RUN --mount=…,from=` name a stage (by name or index) or an image;
  BuildKit refuses variables there, and so does this module;
- `--platform` is ignored, ONBUILD triggers are not part of this build.

No network: references are normalized (`node:22` → `docker.io/library/node:22`), not resolved.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import dockerfile

from patchprop.domain.errors import InvalidReference, PatchpropError
from patchprop.domain.refs import parse_ref

BaseKind = Literal["from", "copy-from", "mount-from"]

SCRATCH = "scratch"
# Variables BuildKit defines by itself from the build and target platforms; their values
# depend on where and for what the image is built, so only --build-arg can give them here.
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
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")  # BuildKit's validStageName
_STAGE_INDEX = re.compile(r"^[+-]?[0-9]+$")  # what Go's strconv.Atoi accepts
# BuildKit's parser directives (`# escape=\``); the parser checks them, it does not return them.
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_NO_INSTRUCTIONS = "file with no instructions"
# Locating a parse error re-parses prefixes of the file; beyond this many lines, don't.
_LOCATE_MAX_LINES = 5000


class DiscoverError(PatchpropError, ValueError):
    """A Dockerfile patchprop cannot read its bases from; the message starts `<path>:<line>: `."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class FoundBase:
    """One image the Dockerfile builds on, and where."""

    ref: str  # normalized, e.g. docker.io/library/node:22
    kind: BaseKind
    stage: str | int  # the stage it appears in: its name, or its index if it has none
    line: int
    runtime: bool = False  # the final stage's base, following stage aliases


@dataclass(frozen=True)
class Discovery:
    path: str
    bases: list[FoundBase]  # one per ref, in the order they first appear
    runtime_base: str | None  # None when the final stage is built FROM scratch

    @property
    def refs(self) -> list[str]:
        return [base.ref for base in self.bases]

    def tracked_bases(self) -> list[str]:
        """The bases as patchprop tracks them: tags, so `name:tag@digest` becomes `name:tag`.

        Raises DiscoverError for a base pinned by digest alone: there is no tag to watch.
        """
        return [_tracked(self.path, base) for base in self.bases]

    @property
    def tracked_runtime_base(self) -> str | None:
        runtime = next((base for base in self.bases if base.runtime), None)
        return _tracked(self.path, runtime) if runtime else None


def _tracked(path: str, base: FoundBase) -> str:
    ref = parse_ref(base.ref)
    if ref.digest and not ref.tag:
        raise DiscoverError(
            path,
            base.line,
            f"{base.ref} is pinned by digest only; patchprop watches tags, "
            f"so write it as {ref.name}:<tag>@{ref.digest}",
        )
    return str(ref.without_digest())


# ---- shell-word expansion (a port of BuildKit's frontend/dockerfile/shell/lex.go) ---------


class _ExpandError(Exception):
    pass


class _Env:
    """The variables a FROM sees: global ARGs, plus what is known about the unset ones."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        # name -> unset variables its value was built from (`ARG IMG=node:${VERSION}`)
        self.tainted: dict[str, frozenset[str]] = {}
        self.declared: set[str] = set()


class _Word:
    """One word expanded like BuildKit's `ProcessWordWithMatches`.

    `missing` collects the variables whose value the result needed but that are unset (or
    built from unset ones); BuildKit would expand them to nothing, patchprop refuses.
    """

    def __init__(self, text: str, env: _Env, escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw_escapes = False
        self.missing: list[str] = []

    def expand(self) -> str:
        return self._until("", raw_escapes=False)

    # scanner
    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        if ch:
            self.pos += 1
        return ch

    # variables
    def _lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env.values:
            return self.env.values[name], True
        return "", False

    def _used(self, name: str, is_set: bool) -> None:
        """The value of `name` goes into the result."""
        names = self.env.tainted.get(name, frozenset()) if is_set else frozenset({name})
        for missing in sorted(names):
            if missing not in self.missing:
                self.missing.append(missing)

    # grammar
    def _until(self, stop: str, raw_escapes: bool) -> str:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            out: list[str] = []
            while self._peek():
                ch = self._peek()
                if stop and ch == stop:
                    self._next()
                    return "".join(out)
                if ch == "$":
                    out.append(self._dollar())
                elif ch == "'":
                    out.append(self._single_quoted())
                elif ch == '"':
                    out.append(self._double_quoted())
                else:
                    ch = self._next()
                    if ch == self.escape:
                        if self.raw_escapes:
                            out.append(ch)
                        ch = self._next()
                        if not ch:
                            break
                    out.append(ch)
            if stop:
                raise _ExpandError(f"unexpected end of statement while looking for matching {stop}")
            return "".join(out)
        finally:
            self.raw_escapes = saved

    def _single_quoted(self) -> str:
        self._next()
        out: list[str] = []
        while True:
            ch = self._next()
            if not ch:
                raise _ExpandError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def _double_quoted(self) -> str:
        self._next()
        out: list[str] = []
        while True:
            ch = self._peek()
            if not ch:
                raise _ExpandError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self._next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            ch = self._next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self._peek()
                if not following:
                    continue
                if following in ('"', "$", self.escape):
                    ch = self._next()
            out.append(ch)

    def _name(self) -> str:
        first = self._peek()
        if first.isdigit():
            digits = []
            while self._peek().isdigit():
                digits.append(self._next())
            return "".join(digits)
        if first and first in "@*#?-$!0":
            return self._next()
        name = []
        while self._peek() and (self._peek().isalnum() or self._peek() == "_"):
            name.append(self._next())
        return "".join(name)

    def _dollar(self) -> str:
        self._next()
        if self._peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value, is_set = self._lookup(name)
            self._used(name, is_set)
            return value
        self._next()
        if not self._peek():
            raise _ExpandError("syntax error: missing '}'")
        if self._peek() in "{}:":
            raise _ExpandError("syntax error: bad substitution")
        name = self._name()
        op = self._next()
        if op == "}":
            value, is_set = self._lookup(name)
            self._used(name, is_set)
            return value
        null_is_unset = False
        modifier = op
        if op == ":":
            null_is_unset = True
            op = self._next()
            modifier += op
        if op in ("+", "-", "?", "#", "%"):
            raw = op in ("#", "%")
            if null_is_unset and raw:
                raise _ExpandError(f"unsupported modifier ({modifier}) in substitution")
            word = self._closing_word("}", raw)
            value, is_set = self._lookup(name)
            empty = not is_set or (null_is_unset and value == "")
            if op == "-":
                if empty:
                    return word
                self._used(name, is_set)
                return value
            if op == "+":
                return "" if empty else word
            if op == "?":
                if not is_set:
                    raise _ExpandError(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise _ExpandError(f"{name}: {word or 'is not allowed to be empty'}")
                self._used(name, is_set)
                return value
            self._used(name, is_set)
            greedy = word.startswith(op)
            if greedy:
                word = word[1:]
            if op == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        if op == "/":
            replace_all = self._peek() == "/"
            if replace_all:
                self._next()
            pattern = self._closing_word("/", True, missing="syntax error: missing '/' in ${}")
            replacement = self._closing_word("}", True)
            value, is_set = self._lookup(name)
            self._used(name, is_set)
            regex = _shell_pattern(pattern, greedy=True, anchored=False)
            return regex.sub(lambda _m: replacement, value, count=0 if replace_all else 1)
        raise _ExpandError(f"unsupported modifier ({modifier}) in substitution")

    def _closing_word(self, stop: str, raw: bool, missing: str = "syntax error: missing '}'") -> str:
        try:
            return self._until(stop, raw)
        except _ExpandError:
            if not self._peek():
                raise _ExpandError(missing) from None
            raise


def _shell_pattern(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """`?` one character, `*` the shortest (or longest) string; no bracket expressions."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            following = pattern[i] if i < len(pattern) else ""
            if following in ("}", "/"):
                continue
            if following not in ("*", "?", "\\"):
                raise _ExpandError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{following}'"
                )
            out.append(re.escape(following))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _shell_pattern(pattern, greedy=greedy, anchored=True).search(value)
    return value[match.end() :] if match else value


def _reverse_pattern(pattern: str) -> str:
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i : i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


# ---- reading the file --------------------------------------------------------------------


def _directives(text: str) -> list[tuple[int, str, str]]:
    """The parser directives at the top of the file: (line, lower-case name, value).

    The parser checks them but does not return them; this follows BuildKit's DirectiveParser.
    """
    found: list[tuple[int, str, str]] = []
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        if not line.startswith("#"):
            break
        match = _DIRECTIVE.match(line[1:].lstrip())
        if not match or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            break
        found.append((number, match.group(1).lower(), match.group(2)))
    return found


def _escape_token(text: str) -> str:
    return next((value for _, name, value in _directives(text) if name == "escape"), "\\")


def _parse(path: Path, text: str) -> tuple[dockerfile.Command, ...]:
    try:
        return dockerfile.parse_string(text)
    except dockerfile.GoParseError as exc:
        message = str(exc)
        if message == _NO_INSTRUCTIONS:
            raise DiscoverError(path, 1, "the file has no instructions (no FROM)") from None
        raise DiscoverError(path, _locate_parse_error(text, message), message) from None


def _locate_parse_error(text: str, message: str) -> int | None:
    """The line a parse error is on (the start of the failing instruction, as BuildKit says).

    The parser's error text carries no line number, so find the longest prefix of the file
    that parses: the failing instruction starts right after it, or is its last instruction
    when that one was cut in the middle of a line continuation.
    """
    found = re.search(r"\bline (\d+)\b", message)
    if found:
        return int(found.group(1))
    if "escape token" in message or "parser directive" in message:
        seen: set[str] = set()
        for number, name, _ in _directives(text):
            if name in seen or (name == "escape" and "escape token" in message):
                return number
            seen.add(name)
        return 1
    # Lines as the Go parser counts them: split on \n only.
    lines = text.split("\n")
    if len(lines) > _LOCATE_MAX_LINES:
        return None
    good: tuple[dockerfile.Command, ...] = ()
    good_lines = 0
    for count in range(1, len(lines) + 1):
        try:
            good = dockerfile.parse_string("\n".join(lines[:count]))
        except dockerfile.GoParseError as exc:
            if str(exc) != _NO_INSTRUCTIONS:
                continue
            good = ()
        good_lines = count
    escape = _escape_token(text)
    if good and good[-1].end_line == good_lines and lines[good_lines - 1].rstrip().endswith(escape):
        return good[-1].start_line  # `ENV \` at the end of the prefix: it goes on below
    last_end = max((command.end_line for command in good), default=0)
    for number in range(last_end + 1, len(lines) + 1):
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith("#"):
            return number
    return min(good_lines + 1, len(lines))


# ---- the walk ------------------------------------------------------------------------------


@dataclass
class _Stage:
    index: int
    name: str | None
    line: int
    parent: int | None = None  # the earlier stage it is built FROM
    image: str | None = None  # the image it is built FROM (None: scratch, or a parent stage)

    @property
    def label(self) -> str | int:
        return self.name if self.name is not None else self.index


@dataclass
class _Walk:
    path: Path
    build_args: Mapping[str, str]
    escape: str
    stage_names: dict[str, int]  # every stage in the file, by lower-case name
    stage_count: int
    env: _Env = field(default_factory=_Env)
    stages: list[_Stage] = field(default_factory=list)
    found: list[FoundBase] = field(default_factory=list)

    def __post_init__(self) -> None:
        # BuildKit sets these itself; a --build-arg overrides them without an ARG.
        for name in PLATFORM_ARGS & self.build_args.keys():
            self.env.values[name] = self.build_args[name]

    def error(self, line: int, reason: str) -> DiscoverError:
        return DiscoverError(self.path, line, reason)

    def image(self, text: str, line: int, what: str) -> str:
        try:
            return str(parse_ref(text))
        except InvalidReference as exc:
            raise self.error(line, f"{what}: {exc}") from None

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
                word = _Word(default, self.env, self.escape)
                try:
                    value = word.expand()
                except _ExpandError as exc:
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
        base_name = self.expand_from(args[0], line)
        earlier = {s.name: s.index for s in self.stages if s.name is not None}
        if base_name in earlier:
            stage.parent = earlier[base_name]
        elif base_name != SCRATCH:
            stage.image = self.image(base_name, line, f"FROM {args[0]}")
            self.found.append(FoundBase(stage.image, "from", stage.label, line))
        self.stages.append(stage)

    def expand_from(self, text: str, line: int) -> str:
        word = _Word(text, self.env, self.escape)
        try:
            result = word.expand()
        except _ExpandError as exc:
            raise self.error(line, f"FROM {text}: {exc}") from None
        if word.missing:
            raise self.error(line, self.missing_reason(text, word.missing))
        if not result:
            raise self.error(line, f"base name ({text}) should not be blank")
        return result

    def missing_reason(self, text: str, names: list[str]) -> str:
        name = names[0]
        hint = f"pass --build-arg {name}=<value>"
        if name in PLATFORM_ARGS:
            return f"FROM {text} uses ${name}, which depends on the build platform; {hint}"
        if name in self.env.declared:
            return f"ARG {name} is used in FROM {text} but has no default value; {hint}"
        return f"FROM {text} uses ${name}, but no ARG {name} is declared before the first FROM; {hint}"

    def source(self, value: str, line: int, kind: BaseKind) -> None:
        """The value of `COPY --from=` or of a mount's `from=`: a stage or an image."""
        if not value or value == SCRATCH:
            return
        if _STAGE_INDEX.match(value):
            index = int(value)
            if not 0 <= index < self.stage_count:
                raise self.error(line, f"invalid stage index {index}")
            return
        if value.lower() in self.stage_names:
            return
        ref = self.image(value, line, "COPY --from" if kind == "copy-from" else "RUN --mount from")
        self.found.append(FoundBase(ref, kind, self.stages[-1].label, line))

    def copy(self, command: dockerfile.Command) -> None:
        for flag in command.flags:
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
        for flag in command.flags:
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

    def runtime_stage(self) -> _Stage:
        stage = self.stages[-1]
        while stage.parent is not None:
            stage = self.stages[stage.parent]
        return stage


def _stage_names(commands: Iterable[dockerfile.Command]) -> tuple[dict[str, int], int]:
    names: dict[str, int] = {}
    count = 0
    for command in commands:
        if command.cmd.upper() != "FROM":
            continue
        if len(command.value) == 3 and command.value[1].lower() == "as":
            names[command.value[2].lower()] = count
        count += 1
    return names, count


def discover(path: Path, build_args: Mapping[str, str] | None = None) -> Discovery:
    """The bases `path` is built on. Raises DiscoverError (`<path>:<line>: why`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DiscoverError(path, None, f"cannot read it: {exc}") from None
    if not text.strip():
        raise DiscoverError(path, 1, "the file is empty (no FROM)")
    commands = _parse(path, text)
    names, count = _stage_names(commands)
    walk = _Walk(
        path=path,
        build_args=dict(build_args or {}),
        escape=_escape_token(text),
        stage_names=names,
        stage_count=count,
    )
    known = set(dockerfile.all_cmds())
    for command in commands:
        instruction = command.cmd.upper()
        line = command.start_line
        if command.cmd.lower() not in known:
            raise walk.error(line, f"unknown instruction: {command.cmd}")
        if instruction == "FROM":
            walk.from_(command)
        elif not walk.stages:
            if instruction != "ARG":
                raise walk.error(
                    line, f"{instruction} before the first FROM: no build stage in current context"
                )
            walk.global_arg(command)
        elif instruction == "COPY":
            walk.copy(command)
        elif instruction == "RUN":
            walk.run(command)
        # ONBUILD triggers run when another image is built FROM this one: not bases of this one.
    if not walk.stages:
        last = commands[-1].start_line if commands else 1
        raise walk.error(last, "no FROM: the file has no build stage")

    runtime = walk.runtime_stage()
    found = sorted(walk.found, key=lambda base: base.line)
    if runtime.image is not None:
        found = [
            replace(base, runtime=True) if base.kind == "from" and base.line == runtime.line else base
            for base in found
        ]
    return Discovery(path=str(path), bases=_dedupe(found), runtime_base=runtime.image)


def _dedupe(found: list[FoundBase]) -> list[FoundBase]:
    """One entry per ref, where it first appears; the runtime occurrence wins the details."""
    kept: dict[str, FoundBase] = {}
    for base in found:
        if base.ref not in kept or (base.runtime and not kept[base.ref].runtime):
            kept[base.ref] = base
    return list(kept.values())


# ---- which files ---------------------------------------------------------------------------

_NAMES = ("Dockerfile", "Containerfile")
_IGNORE_FILES = (".dockerignore", ".containerignore")


def _is_dockerfile_name(name: str) -> bool:
    if name.endswith(_IGNORE_FILES):
        return False  # `Dockerfile.dockerignore` is the ignore file of `Dockerfile`
    return any(name == stem or name.startswith(f"{stem}.") or name.endswith(f".{stem}") for stem in _NAMES)


def find_dockerfiles(paths: Iterable[Path]) -> list[Path]:
    """Files as given; in a directory (top level only) Dockerfile, Containerfile,
    `*.Dockerfile`, `Dockerfile.*` and the same for Containerfile."""
    out: list[Path] = []
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
            matches = sorted(p for p in path.iterdir() if p.is_file() and _is_dockerfile_name(p.name))
            if not matches:
                raise DiscoverError(path, None, "no Dockerfile or Containerfile in this directory")
            for match in matches:
                add(match)
        else:
            raise DiscoverError(path, None, "no such file or directory")
    if not out:
        raise DiscoverError(".", None, "no Dockerfile given")
    return out


def discover_all(paths: Iterable[Path], build_args: Mapping[str, str] | None = None) -> list[Discovery]:
    """`discover` on every Dockerfile `find_dockerfiles` finds in `paths`."""
    return [discover(path, build_args) for path in find_dockerfiles(paths)]
