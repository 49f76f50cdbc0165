"""Shell-word expansion in FROM: a port of BuildKit's frontend/dockerfile/shell/lex.go."""

from __future__ import annotations

import re


class ExpandError(Exception):
    pass


class Env:
    """The variables a FROM sees: global ARGs, plus what is known about the unset ones."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        # name -> unset variables its value was built from (`ARG IMG=node:${VERSION}`)
        self.tainted: dict[str, frozenset[str]] = {}
        self.declared: set[str] = set()


class Word:
    """One word expanded like BuildKit's `ProcessWordWithMatches`.

    `missing` collects the variables whose value the result needed but that are unset (or
    built from unset ones): BuildKit expands them to nothing, and so does this.
    """

    def __init__(self, text: str, env: Env, escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw_escapes = False
        self.missing: list[str] = []
        self.used: list[str] = []  # every variable whose value went into the result

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
        if name not in self.used:
            self.used.append(name)
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
                raise ExpandError(f"unexpected end of statement while looking for matching {stop}")
            return "".join(out)
        finally:
            self.raw_escapes = saved

    def _single_quoted(self) -> str:
        self._next()
        out: list[str] = []
        while True:
            ch = self._next()
            if not ch:
                raise ExpandError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def _double_quoted(self) -> str:
        self._next()
        out: list[str] = []
        while True:
            ch = self._peek()
            if not ch:
                raise ExpandError("unexpected end of statement while looking for matching double-quote")
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
            raise ExpandError("syntax error: missing '}'")
        if self._peek() in "{}:":
            raise ExpandError("syntax error: bad substitution")
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
                raise ExpandError(f"unsupported modifier ({modifier}) in substitution")
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
                    raise ExpandError(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise ExpandError(f"{name}: {word or 'is not allowed to be empty'}")
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
        raise ExpandError(f"unsupported modifier ({modifier}) in substitution")

    def _closing_word(self, stop: str, raw: bool, missing: str = "syntax error: missing '}'") -> str:
        try:
            return self._until(stop, raw)
        except ExpandError:
            if not self._peek():
                raise ExpandError(missing) from None
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
                raise ExpandError(
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
