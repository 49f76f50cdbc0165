"""From a Dockerfile's bytes to BuildKit's instructions, read the way BuildKit reads them.

BuildKit's parser works on bytes: it drops a UTF-8 byte-order mark on the first line and
otherwise takes every byte as it is, NUL and bytes that are not UTF-8 included (a Latin-1
comment is a comment; a reference with such a byte is an invalid reference). The parser here
is BuildKit's own, reached through the `dockerfile` package, which takes a C string of UTF-8
text: a NUL would end the file there and a lone byte cannot be passed at all. So each such
byte is carried through the parser as a private-use character of its own and turned back
into `\\xNN` wherever it is shown.
"""

from __future__ import annotations

import re
from pathlib import Path

import dockerfile

from patchprop_cli.discover.model import DiscoverError

# BuildKit's parser directives (`# escape=\``); the parser checks them, it does not return them.
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_NO_INSTRUCTIONS = "file with no instructions"
# Locating a parse error re-parses prefixes of the file; beyond this many lines, don't.
_LOCATE_MAX_LINES = 5000
# Stand-ins for the bytes the parser cannot be given: NUL, and each byte that is not UTF-8.
_RAW = 0x10FF00  # NUL -> chr(_RAW); a byte 0xNN that is not UTF-8 -> chr(_RAW + 0xNN)
_STAND_IN = re.compile("[\U0010ff00\U0010ff80-\U0010ffff]")
_STAND_IN_REPR = re.compile(r"\\U0010ff([0-9a-f]{2})")
_BOM = b"\xef\xbb\xbf"


def read_dockerfile(path: Path) -> str:
    """The file's text for the parser: every byte kept, the UTF-8 BOM dropped as BuildKit does."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DiscoverError(path, None, f"cannot read it: {exc.strerror or exc}") from None
    data = data.removeprefix(_BOM)
    text = data.decode("utf-8", errors="surrogateescape")
    clash = _STAND_IN.search(text)
    if clash:
        # The stand-ins are code points no Dockerfile uses; one that does is refused, not misread.
        line = text.count("\n", 0, clash.start()) + 1
        raise DiscoverError(path, line, "a character in U+10FF00..U+10FFFF: patchprop cannot read this file")
    return "".join(_stand_in(ch) for ch in text) if _needs_stand_ins(text) else text


def _needs_stand_ins(text: str) -> bool:
    return "\0" in text or any("\udc80" <= ch <= "\udcff" for ch in text)


def _stand_in(ch: str) -> str:
    if ch == "\0":
        return chr(_RAW)
    if "\udc80" <= ch <= "\udcff":
        return chr(_RAW + (ord(ch) - 0xDC00))
    return ch


def shown(text: str) -> str:
    """`text` from the parser as a person should see it: stand-ins as the bytes they are,
    also where a message quotes them with repr() (`\\U0010ffe9`)."""
    text = _STAND_IN_REPR.sub(lambda m: f"\\x{m.group(1)}", text)
    return _STAND_IN.sub(lambda m: f"\\x{ord(m.group()) - _RAW:02x}", text)


def from_parser(text: str) -> str:
    """A flag as the parser returns it: the `dockerfile` package hands back a flag's UTF-8 bytes
    as Latin-1 characters; turn them back into the text they were."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def directives(text: str) -> list[tuple[int, str, str]]:
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


def escape_token(text: str) -> str:
    return next((value for _, name, value in directives(text) if name == "escape"), "\\")


def parse(path: Path, text: str) -> tuple[dockerfile.Command, ...]:
    try:
        return dockerfile.parse_string(text)
    except dockerfile.GoParseError as exc:
        message = str(exc)
        if message == _NO_INSTRUCTIONS:
            raise DiscoverError(path, 1, "the file has no instructions (no FROM)") from None
        raise DiscoverError(path, _locate_parse_error(text, message), shown(message)) from None


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
        for number, name, _ in directives(text):
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
    escape = escape_token(text)
    if good and good[-1].end_line == good_lines and lines[good_lines - 1].rstrip().endswith(escape):
        return good[-1].start_line  # `ENV \` at the end of the prefix: it goes on below
    last_end = max((command.end_line for command in good), default=0)
    for number in range(last_end + 1, len(lines) + 1):
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith("#"):
            return number
    return min(good_lines + 1, len(lines))
