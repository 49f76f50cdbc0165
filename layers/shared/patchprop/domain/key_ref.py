"""Where a base's public key is (BASE_CHECKS `key`): PEM text, a file, an SSM parameter, a
Secrets Manager secret or a KMS key. Pure: this reads the reference, adapters/base_sources.py
fetches the key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from patchprop.domain.errors import PatchpropError

Scheme = Literal["pem", "file", "ssm", "secretsmanager", "awskms"]
FORMS = "a PEM public key, a path, file://PATH, ssm:/NAME, secretsmanager:NAME-OR-ARN or awskms:///KEY-ARN"


class KeyRefError(PatchpropError, ValueError):
    """A key reference that does not read."""


@dataclass(frozen=True)
class KeyRef:
    scheme: Scheme
    name: str  # the path, parameter name, secret id or key id ("" for PEM text)

    @property
    def said(self) -> str:
        """The reference for messages: never the key itself."""
        return "the PEM key in BASE_CHECKS" if self.scheme == "pem" else f"the key {self.scheme}:{self.name}"


def parse_key_ref(key: str) -> KeyRef:
    """The reference `key` is, or KeyRefError naming what is wrong (not the key's text)."""
    text = key.strip()
    if not text:
        raise KeyRefError("empty", field="key")
    if text.startswith("-----BEGIN"):
        return KeyRef("pem", "")
    scheme, colon, rest = text.partition(":")
    if not colon or "/" in scheme or len(scheme) == 1:  # a path (C:\\ counts as one)
        return KeyRef("file", text)
    if scheme == "file" and rest.startswith("//") and rest[2:]:
        return KeyRef("file", rest[2:])
    if scheme in ("ssm", "secretsmanager") and rest.strip("/"):
        name = rest if scheme == "ssm" else rest.lstrip("/")
        return KeyRef(scheme, name)  # type: ignore[arg-type]
    if scheme == "awskms" and rest.startswith("///") and rest[3:]:
        return KeyRef("awskms", rest[3:])
    if scheme in ("file", "ssm", "secretsmanager", "awskms"):
        raise KeyRefError(f"{scheme}: names nothing (the forms: {FORMS})", field="key")
    raise KeyRefError(f"{scheme}: is not a key reference (the forms: {FORMS})", field="key")
