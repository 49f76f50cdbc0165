"""The fleet status and the patch report from the store, read with queries (never a scan):

- the bases and the dependents: one GSI1 query each;
- each base's patches: one query per base (PK = BASE#<ref>);
- each image's rebuilds: one GSI1 query per image, newest first, read only until it is past the
  window and has met the rebuild on the image's tag for each of its bases.

The figures themselves are computed in `patchprop.domain.report` / `history` (pure).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel

from patchprop.domain.errors import InvalidQuery, NotFound
from patchprop.domain.fleet import ImageStatus, State, fleet_status
from patchprop.domain.history import build_report
from patchprop.domain.models import Base, Dependent, utcnow
from patchprop.domain.records import Patch, Rebuild
from patchprop.domain.report import MINUTES_PER_MANUAL_PATCH, Report, parse_since
from patchprop.ports import Store

DEFAULT_SINCE = "30d"
PAST_WINDOW = 50  # at most this many rebuilds of an image read past the window (looking for its tag's)


class FleetStatus(BaseModel):
    """`GET /status`: every image (or those asked for), worst first."""

    generated_at: datetime
    images: list[ImageStatus]
    behind: int
    unknown: int
    current: int


class Records(BaseModel):
    """What the report is computed from, as read."""

    dependents: list[Dependent]
    bases: list[Base]
    patches: list[Patch]
    rebuilds_by_image: dict[str, list[Rebuild]]


def image_rebuilds(store: Store, dependent: Dependent, since: datetime | None) -> list[Rebuild]:
    """An image's rebuilds detected since `since`, and older ones until each base's on-tag one."""
    found: list[Rebuild] = []
    wanted = set(dependent.bases)
    past = 0
    for rebuild in store.recent_rebuilds(dependent.image):
        inside = since is not None and rebuild.detected_at >= since
        if not inside:
            if not wanted or past >= PAST_WINDOW:
                break
            past += 1
        found.append(rebuild)
        if rebuild.on_tag:
            wanted.discard(rebuild.base)
    return found


def read_records(store: Store, since: datetime | None, owner: str | None = None) -> Records:
    """The records of the fleet (or of one owner's images); NotFound (field `owner`) for an owner
    no image has."""
    dependents = list(store.list_dependents())
    if owner is not None:
        dependents = [d for d in dependents if d.owner == owner]
        if not dependents:
            raise NotFound(f"no registered image has owner {owner!r}", field="owner")
    bases = list(store.list_bases())
    wanted = {ref for d in dependents for ref in d.bases}
    patches = [p for b in bases if b.ref in wanted for p in store.patches_of(b.ref)]
    rebuilds = {d.image: image_rebuilds(store, d, since) for d in dependents}
    return Records(dependents=dependents, bases=bases, patches=patches, rebuilds_by_image=rebuilds)


def status(
    *, store: Store, owner: str | None = None, behind_only: bool = False, now: datetime | None = None
) -> FleetStatus:
    """The fleet's drift, worst first; `behind_only`: only the images behind."""
    now = now or utcnow()
    records = read_records(store, None, owner)
    images = fleet_status(records.dependents, records.bases, records.rebuilds_by_image, records.patches, now)
    states = [i.state for i in images]
    if behind_only:
        images = [i for i in images if i.state is State.BEHIND]
    return FleetStatus(
        generated_at=now,
        images=images,
        behind=states.count(State.BEHIND),
        unknown=states.count(State.UNKNOWN),
        current=states.count(State.CURRENT),
    )


def window_start(since: str | None, now: datetime) -> datetime:
    try:
        return parse_since(since or DEFAULT_SINCE, now)
    except ValueError as exc:
        raise InvalidQuery(str(exc), field="since") from exc


def report(
    *,
    store: Store,
    since: str | None = None,
    owner: str | None = None,
    minutes_per_patch: float = MINUTES_PER_MANUAL_PATCH,
    now: datetime | None = None,
) -> Report:
    """The patch report over the window (`30d` by default), for the fleet or one owner."""
    now = now or utcnow()
    start = window_start(since, now)
    records = read_records(store, start, owner)
    return build_report(
        dependents=records.dependents,
        bases=records.bases,
        patches=records.patches,
        rebuilds_by_image=records.rebuilds_by_image,
        since=start,
        now=now,
        owner=owner,
        minutes_per_patch=minutes_per_patch,
    )


__all__: Sequence[str] = [
    "MINUTES_PER_MANUAL_PATCH",
    "FleetStatus",
    "Report",
    "read_records",
    "report",
    "status",
]
