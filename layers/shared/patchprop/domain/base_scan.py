"""A check-only scan of a base digest that has no report (issue 14), started once by the planner.

The planner records the scan `checking` with the patch that asked for it, starts one check-only
build (`PATCHPROP_MODE=base-check`: buildspec/rebuild.sh scans BASE_IMAGE alone into
BASE_REPORTS_URI and builds nothing), and plans nothing yet. When the build ends, build events
send the kept patch back to the planner marked `base_scanned`, which reads the fresh report.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import Field

from patchprop.domain.models import DomainModel, PatchRequest, utcnow

MODE_VAR = "PATCHPROP_MODE"  # what tells a check-only build from a rebuild, in its environment
BASE_CHECK_MODE = "base-check"
ScanState = Literal["checking", "done", "failed"]
# A build's final status, as the scan's end.
ENDED: dict[str, ScanState] = {
    "SUCCEEDED": "done",
    "FAILED": "failed",
    "STOPPED": "failed",
    "FAULT": "failed",
    "TIMED_OUT": "failed",
}


class BaseScan(DomainModel):
    """The one check-only scan of (base, digest), and the patch it holds back."""

    base: str
    digest: str
    patch: PatchRequest
    state: ScanState = "checking"
    project: str = ""
    build_id: str | None = None
    reason: str = ""  # why it gave no report (a failed or stopped build)
    started_at: datetime = Field(default_factory=utcnow)


def scan_token(base: str, digest: str) -> str:
    """StartBuild's idempotency token for the scan of (base, digest): the same one every time."""
    return "base-check-" + hashlib.sha256(f"{base}@{digest}".encode()).hexdigest()[:32]


def scan_env(patch: PatchRequest, pinned: str, reports_uri: str) -> dict[str, str]:
    """What the check-only build sees: the base pinned by digest and where its reports go."""
    return {
        MODE_VAR: BASE_CHECK_MODE,
        "BASE_IMAGE": pinned,
        "BASE_IMAGE_NAME": patch.base,
        "BASE_IMAGE_DIGEST": patch.digest,
        "BASE_REPORTS_URI": reports_uri,
    }
