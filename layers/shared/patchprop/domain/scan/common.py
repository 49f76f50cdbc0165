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
        raise ScanReportError(f"{where} is a {type(value).__name__}, not a list")
    return value


def _dict(value: Any) -> dict[str, Any]:
    """An optional JSON object; anything else reads as empty."""
    return value if isinstance(value, dict) else {}


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScanReportError(f"{where} is a {type(value).__name__}, not an object")
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
