"""The report over time: coverage at a moment rebuilt from the records, the window's weeks, and
the whole report (`build_report`) from what `logic/report.py` read. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from patchprop.domain.fleet import State, built_on, fleet_status
from patchprop.domain.models import Base, Dependent
from patchprop.domain.records import Patch, Rebuild
from patchprop.domain.report import (
    MINUTES_PER_MANUAL_PATCH,
    SLOWEST,
    PatchEvent,
    Report,
    Week,
    compliance,
    coverage,
    detection,
    distribution,
    effort,
    outcomes,
    patch_event,
)


def digest_at(base: Base, patches: Sequence[Patch], at: datetime) -> str | None:
    """The digest `base` pointed at, at `at`: the newest of its patches (oldest first) detected by
    then, else the one before its first patch, else the base's digest now."""
    before = [p for p in patches if p.detected_at <= at]
    if before:
        return before[-1].digest
    return patches[0].previous_digest if patches else base.digest


def covered_at(
    dependent: Dependent,
    wanted: Mapping[str, tuple[str | None, bool]],
    rebuilds: Sequence[Rebuild],
    at: datetime,
) -> bool:
    """On the digest every base pointed at, at `at` (rebuilds promoted by then). `wanted`: each
    base's digest at `at`, and whether it had moved by then."""
    by_then = [r for r in rebuilds if r.promoted_at and r.promoted_at <= at]
    for ref in dependent.bases:
        if ref not in wanted:
            continue
        digest, moved = wanted[ref]
        on = built_on(by_then, ref)
        tried = sorted(
            (r for r in rebuilds if r.base == ref and r.detected_at <= at), key=lambda r: r.detected_at
        )
        if on is not None:
            held: str | None = on.base_digest
        elif tried and tried[0].previous_digest:
            held = tried[0].previous_digest  # never promoted on it: where its first rebuild began
        else:
            held = None if moved else digest
        if held != digest:
            return False
    return True


def image_digest_at(rebuilds: Sequence[Rebuild], at: datetime) -> str | None:
    """A registered image's digest at `at`, as a base of others: its newest rebuild promoted by then."""
    promoted = [r for r in rebuilds if r.promoted_at and r.promoted_at <= at and r.image_digest]
    return max(promoted, key=lambda r: r.promoted_at or at).image_digest if promoted else None


def coverage_at(
    dependents: Sequence[Dependent],
    bases: Mapping[str, Base],
    rebuilds_by_image: Mapping[str, Sequence[Rebuild]],
    patches: Sequence[Patch],
    at: datetime,
) -> float:
    """The share of images on the digest of every base as it was at `at` (0 for no images)."""
    if not dependents:
        return 0.0
    mine: dict[str, list[Patch]] = {}
    for p in sorted(patches, key=lambda p: p.detected_at):
        mine.setdefault(p.base, []).append(p)
    wanted: dict[str, tuple[str | None, bool]] = {}
    for ref, base in bases.items():
        # A base that is a registered image moves by its own promotions (no patch is recorded).
        promoted = image_digest_at(rebuilds_by_image.get(ref, ()), at)
        if promoted is not None:
            wanted[ref] = (promoted, True)
        else:
            moved = any(p.detected_at <= at for p in mine.get(ref, []))
            wanted[ref] = (digest_at(base, mine.get(ref, []), at), moved)
    covered = sum(covered_at(d, wanted, rebuilds_by_image.get(d.image, ()), at) for d in dependents)
    return covered / len(dependents)


def week_start(at: datetime) -> datetime:
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def weeks(
    dependents: Sequence[Dependent],
    bases: Mapping[str, Base],
    rebuilds_by_image: Mapping[str, Sequence[Rebuild]],
    patches: Sequence[Patch],
    events: Sequence[PatchEvent],
    since: datetime,
    now: datetime,
) -> list[Week]:
    """Each week from `since` to `now`: outcomes of rebuilds finished in it, times to patch of the
    events detected in it, and coverage at its end (or now, for this week)."""
    finished = [r for rs in rebuilds_by_image.values() for r in rs if r.status.final]
    found: list[Week] = []
    start = week_start(since)
    while start <= now:
        after = start + timedelta(days=7)
        end = min(after, now)
        in_week = [r for r in finished if start <= (r.finished_at or r.detected_at) < after]
        share = coverage_at(dependents, bases, rebuilds_by_image, patches, end)
        found.append(
            Week(
                week=start.date().isoformat(),
                outcomes=dict(sorted(Counter(r.told_outcome.value for r in in_week).items())),
                patch_minutes=[
                    e.minutes for e in events if e.minutes is not None and start <= e.detected_at < after
                ],
                coverage=round(share, 4),
            )
        )
        start += timedelta(days=7)
    return found


def build_report(
    *,
    dependents: Sequence[Dependent],
    bases: Sequence[Base],
    patches: Sequence[Patch],
    rebuilds_by_image: Mapping[str, Sequence[Rebuild]],
    since: datetime,
    now: datetime,
    owner: str | None = None,
    minutes_per_patch: float = MINUTES_PER_MANUAL_PATCH,
) -> Report:
    """The report over the window [since, now], for one owner's images or the whole fleet.
    `rebuilds_by_image` holds at least each image's rebuilds detected since `since`."""
    if owner is not None:
        dependents = [d for d in dependents if d.owner == owner]
    images = {d.image for d in dependents}
    by_image = {image: list(rs) for image, rs in rebuilds_by_image.items() if image in images}
    everything = [r for rs in by_image.values() for r in rs]
    in_window = [r for r in everything if r.detected_at >= since]
    by_patch: dict[str, list[Rebuild]] = {}
    for r in in_window:
        by_patch.setdefault(str(r.patch), []).append(r)
    window_patches = [p for p in patches if p.detected_at >= since]
    events = [
        patch_event(p, by_patch[str(p.cascade_id)]) for p in window_patches if str(p.cascade_id) in by_patch
    ]
    events.sort(key=lambda e: e.detected_at)
    statuses = fleet_status(dependents, bases, by_image, patches, now)
    newest_on_tag = [
        max(on, key=lambda r: r.promoted_at or r.detected_at)
        for rs in by_image.values()
        if (on := [r for r in rs if r.on_tag])
    ]
    by_ref = {b.ref: b for b in bases}
    return Report(
        generated_at=now,
        since=since,
        owner=owner,
        time_to_patch=distribution(events),
        slowest=sorted((e for e in events if e.minutes is not None), key=lambda e: -(e.minutes or 0))[
            :SLOWEST
        ],
        events=events,
        coverage=coverage(statuses),
        detection=detection([p for p in window_patches if owner is None or str(p.cascade_id) in by_patch]),
        outcomes=outcomes(in_window),
        effort=effort(in_window, minutes_per_patch),
        compliance=compliance(dependents, bases, newest_on_tag, patches),
        weeks=weeks(dependents, by_ref, by_image, patches, events, since, now),
    )


__all__ = ["State", "build_report", "coverage_at", "covered_at", "digest_at", "weeks"]
