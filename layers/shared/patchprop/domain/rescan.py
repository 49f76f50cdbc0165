"""The rescan of a promoted image against current advisories: which findings a rebuild of the
image alone can fix (its own packages, not the base's), and the one rebuild they start.

A finding is the image's own when the base's report for the base digest it is built on does not
list it; only those with a fixed version count. Without the base's findings nothing is told
apart, and nothing is started: a rebuild on the same base cannot fix the base's packages.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from patchprop.domain.findings import Finding, ScanReport
from patchprop.domain.models import DomainModel, utcnow

OWN_FIXES = "own packages have fixes"
MAX_NAMED = 5  # findings named in the reason; the rest are counted
# ScanSource=trivy: a scan-only build of the promoted digest (buildspec/rebuild.sh), told apart
# from a rebuild by its PATCHPROP_MODE (domain/base_scan.py MODE_VAR).
RESCAN_MODE = "rescan"
SCANNING = "scan started"


def own_fixable(report: ScanReport, base: ScanReport) -> list[Finding]:
    """The report's findings with a fix that the base's report does not list, in a stable order."""
    from_base = {finding.key for finding in base.findings}
    own = [f for f in report.findings if f.fixed_version and f.key not in from_base]
    return sorted(own, key=lambda f: (-f.severity.order, f.id, f.package))


def fingerprint(image: str, digest: str, findings: list[Finding]) -> str:
    """The same (image, digest, finding set) gives the same text, whatever the findings' order."""
    keys = sorted(f"{f.id}\t{f.package}\t{f.fixed_version}" for f in findings)
    return hashlib.sha256("\n".join([image, digest, *keys]).encode()).hexdigest()[:32]


def rescan_rebuild_id(image: str, digest: str, findings: list[Finding]) -> str:
    """One rebuild per (image, promoted digest, fixable finding set)."""
    return "rb-own-" + fingerprint(image, digest, findings)


def own_fixes_reason(findings: list[Finding]) -> str:
    """E.g. "own packages have fixes: CVE-2026-1 in libfoo 1.2 (fixed in 1.3); … and 2 more"."""
    named = "; ".join(f.summary() for f in findings[:MAX_NAMED])
    more = len(findings) - MAX_NAMED
    return f"{OWN_FIXES}: {named}" + (f"; and {more} more" if more > 0 else "")


def rescan_token(image: str, digest: str, day: str) -> str:
    """StartBuild's idempotency token for the day's scan of (image, digest): the same every time."""
    return "rescan-" + hashlib.sha256(f"{image}@{digest}@{day}".encode()).hexdigest()[:32]


def rescan_report_uri(root: str, repository: str, digest: str, day: str) -> str:
    """Where the day's scan of the digest leaves its report: `<root>/<registry/repo>/<hex>/<day>/`
    (a fresh one each day: today's advisories, never a base's report under base-reports/)."""
    return f"{root.rstrip('/')}/{repository}/{digest.removeprefix('sha256:')}/{day}/report.json"


def rescan_env(image: str, pinned: str, digest: str, report_uri: str) -> dict[str, str]:
    """What the scan-only build sees: the promoted digest pinned, and where its report goes."""
    return {
        "PATCHPROP_MODE": RESCAN_MODE,
        "RESCAN_IMAGE": pinned,
        "RESCAN_IMAGE_NAME": image,
        "RESCAN_IMAGE_DIGEST": digest,
        "RESCAN_REPORT_URI": report_uri,
    }


class RescanState(DomainModel):
    """The last rescan of one image, stored (one item per image)."""

    image: str
    day: str = ""  # the UTC day (YYYY-MM-DD) it was last claimed for a rescan
    at: datetime | None = None  # when it was last rescanned
    digest: str | None = None  # the promoted digest rescanned
    outcome: str = ""  # "rebuild started", "no fixable own findings", "not scanned: …"
    fingerprint: str | None = None  # the finding set of the last rebuild it started
    rebuild_id: str | None = None
    build_id: str | None = None  # ScanSource=trivy: the scan-only build of `digest` (scanning)
    report_uri: str | None = None  # where that build leaves its report


def day_of(at: datetime | None = None) -> str:
    return (at or utcnow()).strftime("%Y-%m-%d")


def oldest_first(states: dict[str, RescanState | None]) -> list[str]:
    """Images never rescanned first, then by their last rescan, oldest first (ties by name)."""
    never = datetime.min.replace(tzinfo=utcnow().tzinfo)

    def last(image: str) -> tuple[datetime, str]:
        state = states[image]
        return (state.at if state is not None and state.at else never, image)

    return sorted(states, key=last)
