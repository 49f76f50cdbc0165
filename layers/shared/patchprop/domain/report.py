"""The patch report, from the records alone: how fast patches land, coverage, detection delay,
outcomes, effort saved and compliance. Each figure's definition is in the README ("The patch
report"). Pure: `logic/report.py` reads the records with queries and calls `build_report`.

A record from before a figure was recorded (no method, no push time, no finding counts) is
counted as unknown, never as zero.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from pydantic import Field

from patchprop.domain.base_check import BaseJudgement
from patchprop.domain.fleet import SEVERITIES, ImageStatus, State, is_fips
from patchprop.domain.models import Base, Dependent, DomainModel
from patchprop.domain.records import Patch, Rebuild

MINUTES_PER_MANUAL_PATCH = 60.0  # default: one person-hour to rebuild, test and push one image
SLOWEST = 5
_SINCE = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime:
    """`30d`, `12h`, `2w` before `now`, or an ISO date/time; ValueError naming what reads."""
    found = _SINCE.match(text)
    if found:
        return now - timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (30d, 12h, 2w) or an ISO date (2026-11-01)") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=now.tzinfo)


class Span(DomainModel):
    """One image's rebuild in a patch's cascade, for the timeline."""

    image: str
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str | None


class PatchEvent(DomainModel):
    """A base moved to a digest, and how its cascade went."""

    base: str
    digest: str
    detected_at: datetime
    detected_by: str
    pushed_at: datetime | None = None
    state: str  # landed / open (still running) / not_landed (nothing promoted) / unknown
    landed_at: datetime | None = None
    minutes: float | None = None  # time to patch: detected -> last image of its cascade promoted
    images: int = 0
    promoted: int = 0
    timeline: list[Span] = Field(default_factory=list)


class Distribution(DomainModel):
    """Time to patch over the landed events, in minutes."""

    events: int = 0
    landed: int = 0
    open: int = 0
    not_landed: int = 0
    unknown: int = 0
    median_minutes: float | None = None
    p90_minutes: float | None = None
    max_minutes: float | None = None


class Coverage(DomainModel):
    images: int = 0
    current: int = 0
    behind: int = 0
    unknown: int = 0
    share: float = 0.0  # current / images (0 for an empty fleet)
    by_owner: dict[str, dict[str, float]] = Field(default_factory=dict)


class Delay(DomainModel):
    """Base pushed -> detected, for one source."""

    patches: int = 0
    known: int = 0
    unknown: int = 0
    median_seconds: float | None = None
    max_seconds: float | None = None


class Outcomes(DomainModel):
    rebuilds: int = 0
    by_outcome: dict[str, int] = Field(default_factory=dict)
    by_method: dict[str, int] = Field(default_factory=dict)  # rebuilt / rebased / unknown
    fixed_by_severity: dict[str, int] = Field(default_factory=dict)
    fixed_unknown: int = 0  # promoted rebuilds that recorded no finding counts
    kept_off_by_severity: dict[str, int] = Field(default_factory=dict)


class Effort(DomainModel):
    automated_rebuilds: int = 0
    minutes_per_manual_patch: float = MINUTES_PER_MANUAL_PATCH
    hours_saved: float = 0.0
    triage_avoided: int = 0  # findings fixed by automated rebuilds: no ticket needed


class Compliance(DomainModel):
    promoted_images: int = 0
    with_sbom: int = 0
    with_signature: int = 0
    signature_unknown: int = 0
    base_verified: int = 0
    base_verified_unknown: int = 0
    with_provenance: int = 0
    fips_bases: list[str] = Field(default_factory=list)
    fips_images: list[str] = Field(default_factory=list)
    # Of those not verified: on a base with no signature key configured, and on one refused
    # (its signature failed, promoted anyway by hand or forced).
    base_not_configured: int = 0
    base_refused: int = 0


class Week(DomainModel):
    """One ISO week (starting Monday) of the window."""

    week: str
    outcomes: dict[str, int] = Field(default_factory=dict)
    patch_minutes: list[float] = Field(default_factory=list)
    coverage: float = 0.0


class Report(DomainModel):
    generated_at: datetime
    since: datetime
    owner: str | None = None
    time_to_patch: Distribution
    slowest: list[PatchEvent]
    events: list[PatchEvent]
    coverage: Coverage
    detection: dict[str, Delay]
    outcomes: Outcomes
    effort: Effort
    compliance: Compliance
    weeks: list[Week]


def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def patch_event(patch: Patch, rebuilds: Sequence[Rebuild]) -> PatchEvent:
    """A patch with its cascade's rebuilds: landed when complete and something was promoted."""
    promoted = [r for r in rebuilds if r.promoted_at is not None]
    told_promoted = [r for r in rebuilds if r.told_outcome.value in ("promoted", "succeeded")]
    state, landed, minutes = "landed", None, None
    if not patch.complete or any(not r.status.final for r in rebuilds):
        state = "open"
    elif not told_promoted:
        state = "not_landed"
    elif len(promoted) < len(told_promoted):
        state = "unknown"  # promoted before promotion times were recorded
    else:
        landed = max(r.promoted_at for r in promoted if r.promoted_at)
        minutes = round((landed - patch.detected_at).total_seconds() / 60, 2)
    timeline = [
        Span(
            image=r.image,
            started_at=r.started_at,
            finished_at=r.promoted_at or r.finished_at,
            outcome=r.told_outcome.value if r.status.final else None,
        )
        for r in sorted(rebuilds, key=lambda r: (r.started_at or r.detected_at, r.image))
    ]
    return PatchEvent(
        base=patch.base,
        digest=patch.digest,
        detected_at=patch.detected_at,
        detected_by=patch.detected_by,
        pushed_at=patch.pushed_at,
        state=state,
        landed_at=landed,
        minutes=minutes,
        images=len(rebuilds),
        promoted=len(told_promoted),
        timeline=timeline,
    )


def distribution(events: Sequence[PatchEvent]) -> Distribution:
    minutes = [e.minutes for e in events if e.minutes is not None]
    states = Counter(e.state for e in events)
    return Distribution(
        events=len(events),
        landed=states["landed"],
        open=states["open"],
        not_landed=states["not_landed"],
        unknown=states["unknown"],
        median_minutes=round(statistics.median(minutes), 2) if minutes else None,
        p90_minutes=_p90(minutes) if minutes else None,
        max_minutes=max(minutes) if minutes else None,
    )


def coverage(statuses: Sequence[ImageStatus]) -> Coverage:
    states = Counter(s.state for s in statuses)
    owners: dict[str, Counter[str]] = defaultdict(Counter)
    for s in statuses:
        owners[s.owner or "-"]["images"] += 1
        owners[s.owner or "-"]["current"] += s.state is State.CURRENT
    return Coverage(
        images=len(statuses),
        current=states[State.CURRENT],
        behind=states[State.BEHIND],
        unknown=states[State.UNKNOWN],
        share=_share(states[State.CURRENT], len(statuses)),
        by_owner={
            o: {"images": c["images"], "current": c["current"], "share": _share(c["current"], c["images"])}
            for o, c in sorted(owners.items())
        },
    )


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def detection(patches: Sequence[Patch]) -> dict[str, Delay]:
    """Pushed -> detected by source (webhook, ecr, poller); no push time: unknown."""
    delays: dict[str, Delay] = {}
    for source in sorted({p.detected_by for p in patches}):
        mine = [p for p in patches if p.detected_by == source]
        seconds = [(p.detected_at - p.pushed_at).total_seconds() for p in mine if p.pushed_at]
        delays[source] = Delay(
            patches=len(mine),
            known=len(seconds),
            unknown=len(mine) - len(seconds),
            median_seconds=round(statistics.median(seconds), 2) if seconds else None,
            max_seconds=max(seconds) if seconds else None,
        )
    return delays


def _add(total: dict[str, int], more: Mapping[str, int] | None) -> None:
    for severity, count in (more or {}).items():
        total[severity] = total.get(severity, 0) + count


def outcomes(rebuilds: Sequence[Rebuild]) -> Outcomes:
    final = [r for r in rebuilds if r.status.final]
    fixed = dict.fromkeys(SEVERITIES, 0)
    kept_off = dict.fromkeys(SEVERITIES, 0)
    unknown = 0
    for r in final:
        if r.told_outcome.value in ("promoted", "succeeded"):
            if r.fixed_findings is None:
                unknown += 1
            _add(fixed, r.fixed_findings)
        elif r.told_outcome.value == "blocked":
            _add(kept_off, r.blocking_findings)
    return Outcomes(
        rebuilds=len(final),
        by_outcome=dict(sorted(Counter(r.told_outcome.value for r in final).items())),
        by_method=dict(sorted(Counter(r.method or "unknown" for r in final).items())),
        fixed_by_severity=fixed,
        fixed_unknown=unknown,
        kept_off_by_severity=kept_off,
    )


def effort(rebuilds: Sequence[Rebuild], minutes_per_patch: float) -> Effort:
    automated = [r for r in rebuilds if r.promoted_by == "patchprop"]
    return Effort(
        automated_rebuilds=len(automated),
        minutes_per_manual_patch=minutes_per_patch,
        hours_saved=round(len(automated) * minutes_per_patch / 60, 2),
        triage_avoided=sum(sum((r.fixed_findings or {}).values()) for r in automated),
    )


def base_signature(rebuild: Rebuild, checks: Mapping[str, BaseJudgement]) -> str | None:
    """The base check's signature verdict on the base this rebuild was built on (verified /
    not_configured / failed), else what the rebuild recorded; None: not known (a record from
    before base checks, or a rebuild on an image of the cascade, whose digest was not checked)."""
    check = checks.get(f"{rebuild.base}@{rebuild.base_digest}")
    if check is not None:
        return check.signature
    if rebuild.base_verified is not None:
        return "verified" if rebuild.base_verified else "failed"
    return None


def compliance(
    dependents: Sequence[Dependent],
    bases: Iterable[Base],
    on_tag: Sequence[Rebuild],
    patches: Iterable[Patch] = (),
) -> Compliance:
    """Over each image's newest rebuild on its tag; the base's signature from its patch's check."""
    fips_bases = sorted(b.ref for b in bases if is_fips(b.ref))
    checks = {f"{p.base}@{p.digest}": p.base_check for p in patches if p.base_check is not None}
    signatures = Counter(base_signature(r, checks) for r in on_tag)
    return Compliance(
        promoted_images=len(on_tag),
        with_sbom=sum(bool(r.sbom_uri) for r in on_tag),
        with_signature=sum(r.signed is True for r in on_tag),
        signature_unknown=sum(r.signed is None for r in on_tag),
        base_verified=signatures["verified"],
        base_verified_unknown=signatures[None],
        with_provenance=sum(bool(r.sbom_uri and r.evidence) for r in on_tag),
        fips_bases=fips_bases,
        fips_images=sorted(d.image for d in dependents if any(is_fips(b) for b in d.bases)),
        base_not_configured=signatures["not_configured"],
        base_refused=signatures["failed"],
    )
