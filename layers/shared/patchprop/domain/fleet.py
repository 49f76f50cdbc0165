"""The fleet's drift, from the records alone: for each image and each of its bases, the base digest
it is built on against the base's current one, since when it is behind, and its last rebuild.

Pure: the caller reads bases, dependents, patches and each image's recent rebuilds (queries) and
passes them in; `report` sums these up over time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum

from patchprop.domain.findings import Finding, Severity
from patchprop.domain.gate import GateResult
from patchprop.domain.models import Base, Dependent, DomainModel
from patchprop.domain.records import Patch, Rebuild

SEVERITIES = [s.value for s in sorted(Severity, key=lambda s: s.order, reverse=True)]


class State(StrEnum):
    BEHIND = "behind"  # a base moved past the digest the image is built on
    UNKNOWN = "unknown"  # never rebuilt by patchprop on a base that has moved: cannot tell
    CURRENT = "current"


class BaseDrift(DomainModel):
    """One base of an image: the digest the image is built on, and the base's current digest."""

    base: str
    built_on: str | None  # None: not known (never rebuilt on it by patchprop)
    current: str | None
    state: State
    behind_since: datetime | None = None  # when the base first moved past `built_on`


class ImageStatus(DomainModel):
    """One image of the fleet, as `patchprop status` shows it."""

    image: str
    owner: str | None = None
    state: State
    behind_since: datetime | None = None
    behind_seconds: float | None = None
    bases: list[BaseDrift]
    last_outcome: str | None = None  # the last rebuild's outcome, or its status while it runs
    last_method: str | None = None  # rebuilt / rebased; None: not recorded
    last_rebuild_at: datetime | None = None
    open_findings: dict[str, int] | None = None  # by severity, from its last scanned rebuild
    fips: bool = False  # built on a FIPS base (by name)
    # Current on its own bases, but one of them is an image that is itself behind: it will be
    # rebuilt when that one is, so it is behind too (since then), through it.
    behind_via: str | None = None


def is_fips(ref: str) -> bool:
    """A FIPS variant by its name (`…-fips`, `fips-…`, `:…fips…`); labels are not read."""
    return "fips" in ref.lower()


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Findings by severity, every severity present (zero when none)."""
    tally = Counter(f.severity.value for f in findings)
    return {severity: tally.get(severity, 0) for severity in SEVERITIES}


def finding_counts(result: GateResult | None) -> dict[str, dict[str, int]]:
    """What a judged rebuild records for the report: findings fixed, blocking and open, by
    severity; nothing when the rebuild was not judged on a scan report (then unknown)."""
    if result is None or result.outcome not in ("promoted", "blocked"):
        return {}
    return {
        "fixed_findings": counts(result.fixed),
        "blocking_findings": counts(result.blocking),
        "open_findings": counts([*result.still_present, *result.new_from_base, *result.new_own]),
    }


def built_on(rebuilds: Iterable[Rebuild], base: str) -> Rebuild | None:
    """The newest rebuild of an image on `base` that is on its tag (promoted, not rolled back)."""
    on_tag = [r for r in rebuilds if r.base == base and r.on_tag and r.promoted_at]
    return max(on_tag, key=lambda r: r.promoted_at or r.detected_at, default=None)


def drift(base: Base | None, ref: str, rebuilds: Sequence[Rebuild], patches: Sequence[Patch]) -> BaseDrift:
    """Where one image stands on one base."""
    current = base.digest if base else None
    on = built_on(rebuilds, ref)
    tried = sorted((r for r in rebuilds if r.base == ref), key=lambda r: r.detected_at)
    if on is not None:
        digest: str | None = on.base_digest
    elif tried and tried[0].previous_digest:
        digest = tried[0].previous_digest  # never promoted on it: still where its first rebuild began
    elif base is not None and base.previous_digest is None:
        digest = current  # the base never moved since it was tracked: the image is on it
    else:
        digest = None
    if current is None or digest == current:
        return BaseDrift(base=ref, built_on=digest, current=current, state=State.CURRENT)
    if digest is None:
        return BaseDrift(base=ref, built_on=None, current=current, state=State.UNKNOWN)
    # Since the patch that moved the base away from the digest the image is on.
    moves = [p.detected_at for p in patches if p.base == ref and p.previous_digest == digest]
    since = min(moves, default=base.changed_at if base else None)
    return BaseDrift(base=ref, built_on=digest, current=current, state=State.BEHIND, behind_since=since)


def image_status(
    dependent: Dependent,
    bases: Mapping[str, Base],
    rebuilds: Sequence[Rebuild],
    patches: Sequence[Patch],
    now: datetime,
) -> ImageStatus:
    """One image's status: the worst of its bases, its last rebuild, its open findings."""
    drifts = [drift(bases.get(ref), ref, rebuilds, patches) for ref in dependent.bases]
    behind = [d.behind_since for d in drifts if d.state is State.BEHIND]
    state = State.CURRENT
    if behind:
        state = State.BEHIND
    elif any(d.state is State.UNKNOWN for d in drifts):
        state = State.UNKNOWN
    since = min((b for b in behind if b), default=None)
    last = max(rebuilds, key=lambda r: r.detected_at, default=None)
    scanned = [r for r in rebuilds if r.open_findings is not None]
    findings = max(scanned, key=lambda r: r.detected_at).open_findings if scanned else None
    outcome = None
    if last is not None:
        outcome = last.told_outcome.value if last.status.final else last.status.value
    return ImageStatus(
        image=dependent.image,
        owner=dependent.owner,
        state=state,
        behind_since=since,
        behind_seconds=(now - since).total_seconds() if since else None,
        bases=drifts,
        last_outcome=outcome,
        last_method=last.method if last else None,
        last_rebuild_at=last.detected_at if last else None,
        open_findings=findings,
        fips=any(is_fips(ref) for ref in dependent.bases),
    )


_STATE_ORDER = {State.BEHIND: 0, State.UNKNOWN: 1, State.CURRENT: 2}
_BAD_OUTCOMES = {"failed", "blocked", "held", "stopped"}


def worst_first(statuses: Iterable[ImageStatus]) -> list[ImageStatus]:
    """Behind first (the longest behind first), then unknown, then current; within each, a last
    rebuild that failed or was blocked first, then by image."""
    return sorted(
        statuses,
        key=lambda s: (
            _STATE_ORDER[s.state],
            -(s.behind_seconds or 0.0),
            s.last_outcome not in _BAD_OUTCOMES,
            s.image,
        ),
    )


def fleet_status(
    dependents: Iterable[Dependent],
    bases: Iterable[Base],
    rebuilds_by_image: Mapping[str, Sequence[Rebuild]],
    patches: Sequence[Patch],
    now: datetime,
) -> list[ImageStatus]:
    """Every image's status, worst first."""
    by_ref = {b.ref: b for b in bases}
    found = {
        d.image: image_status(d, by_ref, rebuilds_by_image.get(d.image, ()), patches, now) for d in dependents
    }
    return worst_first(behind_through_parents(found, {d.image: d.bases for d in dependents}, now).values())


def behind_through_parents(
    found: dict[str, ImageStatus], bases_of: Mapping[str, Sequence[str]], now: datetime
) -> dict[str, ImageStatus]:
    """An image on a registered image that is behind is behind too (transitively), since then."""
    changed = True
    while changed:
        changed = False
        for image, status in found.items():
            if status.state is State.BEHIND:
                continue
            parent = next(
                (found[b] for b in bases_of[image] if b in found and found[b].state is State.BEHIND), None
            )
            if parent is None:
                continue
            since = parent.behind_since
            found[image] = status.model_copy(
                update={
                    "state": State.BEHIND,
                    "behind_since": since,
                    "behind_seconds": (now - since).total_seconds() if since else None,
                    "behind_via": parent.image,
                }
            )
            changed = True
    return found
