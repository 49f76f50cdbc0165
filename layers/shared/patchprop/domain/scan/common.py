"""What every parser needs: JSON shapes checked, texts and fixed versions read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patchprop.domain.findings import (
    ScanReportError,
)


def _list(value: Any, where: str) -> list[Any]:
    """A JSON array; absent or null reads as empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScanReportError(f"{where} is {_a(json_type(value))}, not an array")
    return value


def _dict(value: Any) -> dict[str, Any]:
    """An optional JSON object; anything else reads as empty."""
    return value if isinstance(value, dict) else {}


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScanReportError(f"{where} is {_a(json_type(value))}, not an object")
    return value


def _required_text(item: Mapping[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ScanReportError(f"{where} has no {name}")
    return value.strip()


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _fix(value: Any) -> str | None:
    """A fixed version, or None for "", "not fixed" and the like."""
    text = _text(value)
    return None if text.lower() in ("", "not fixed", "none", "n/a") else text


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type: null, array, string, number, boolean, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {list: "array", str: "string", int: "number", float: "number", dict: "object"}.get(
        type(value), type(value).__name__
    )


def _a(kind: str) -> str:
    return kind if kind == "null" else ("an " if kind[0] in "aeiou" else "a ") + kind
