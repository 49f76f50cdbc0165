"""Pydantic's errors said one way everywhere: the field (dotted) and what is wrong with it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

# Where Powertools' request validation says an error was; not part of the field's name.
_SOURCES = {"body", "query", "path", "header", "cookie"}
# Where pydantic says an error is about a mapping's key rather than its value: (..., key, "[key]").
_KEY = "[key]"


def field_of(error: Mapping[str, Any], default: str = "") -> str:
    """The dotted name of the field an error is about (`push_data.tag`)."""
    if error.get("type") == "json_invalid":  # its loc is ("body", <character offset>)
        return "body"
    parts = [str(p) for p in error.get("loc", ())]
    if len(parts) > 1 and parts[0] in _SOURCES:
        parts = parts[1:]
    if parts[-1:] == [_KEY]:  # a mapping's key is wrong: the mapping is the field (build_args)
        parts = parts[:-2]
    return ".".join(parts) or default


def message_of(error: Mapping[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return f"not JSON: {error.get('ctx', {}).get('error', 'decode error')}"
    message = str(error.get("msg", "invalid"))
    loc = list(error.get("loc", ()))
    if loc[-1:] == [_KEY] and len(loc) > 1:
        return f"name {loc[-2]!r}: {message}"
    return message


def problems(
    errors: ValidationError | Iterable[Mapping[str, Any]], default: str = ""
) -> list[dict[str, str]]:
    """Every error as {"field", "error"}."""
    listed: Sequence[Mapping[str, Any]] = (
        errors.errors() if isinstance(errors, ValidationError) else list(errors)
    )
    return [{"field": field_of(e, default), "error": message_of(e)} for e in listed]


def first_problem(errors: ValidationError | Iterable[Mapping[str, Any]], default: str = "") -> str:
    """The first error as `field: what is wrong`."""
    found = problems(errors, default)
    if not found:
        return f"{default or 'input'}: invalid"
    first = found[0]
    return f"{first['field']}: {first['error']}" if first["field"] else first["error"]
