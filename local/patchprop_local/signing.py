"""Signing a promoted image with cosign: only ever a digest, only when asked.

The build never signs a candidate (buildspec/rebuild.sh with PUSH=candidate); what is signed is
what was promoted, so promotion calls `sign` after the tag moved, on the promoted digest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from patchprop.domain.refs import ImageRef

INSTALL_HINT = "cosign not found: install it (https://docs.sigstore.dev) or put it on PATH"
SIGN_TIMEOUT = 120.0
_PINNED = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


class SigningError(RuntimeError):
    """cosign is missing or refused to sign."""


def kms_key(key: str) -> str:
    """`arn:aws:kms:…` or `alias/…` as cosign's `awskms:///…`; other key references unchanged."""
    if key.startswith(("arn:aws:kms:", "alias/")):
        return f"awskms:///{key}"
    return key


def sign(
    image: str,
    key: str,
    *,
    tlog_upload: bool = False,
    allow_insecure_registry: bool = False,
    cosign: str | None = None,
    timeout: float = SIGN_TIMEOUT,
) -> None:
    """`cosign sign` the image `registry/repo@sha256:…`; refuses a tag (tags move, digests do not)."""
    if not _PINNED.match(image):
        raise ValueError(f"{image!r} is not pinned to a sha256 digest: only a promoted digest is signed")
    binary = cosign or shutil.which("cosign")
    if binary is None:
        raise SigningError(INSTALL_HINT)
    command = [binary, "sign", "--yes", "--key", kms_key(key), f"--tlog-upload={str(tlog_upload).lower()}"]
    if allow_insecure_registry:
        command.append("--allow-insecure-registry")
    command.append(image)
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=timeout, check=False, env=dict(os.environ)
        )
    except subprocess.TimeoutExpired:
        raise SigningError(f"cosign did not sign {image} within {timeout:g}s") from None
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-1000:].strip()
        raise SigningError(f"cosign could not sign {image} (exit {done.returncode}): {tail}")


class CosignSigner:
    """The `Signer` port with cosign: `patchprop local` registers one when a key is configured."""

    def __init__(self, key: str, *, allow_insecure_registry: bool = False) -> None:
        self.key = key
        self.allow_insecure_registry = allow_insecure_registry

    def sign(self, image: ImageRef) -> str | None:
        sign(image.pinned, self.key, allow_insecure_registry=self.allow_insecure_registry)
        return image.pinned
