"""Plan a patch: the whole affected set as one cascade; the first wave enqueued at once."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from patchprop.domain.base_check import BaseJudgement
from patchprop.domain.cascade import affected, plan_cascade, release_order
from patchprop.domain.models import CascadeId, Dependent, PatchRequest, RebuildRequest
from patchprop.domain.records import SKIPPED, NodeStatus
from patchprop.ports import Queue, Store

_NOT_STARTED = (NodeStatus.WAITING, NodeStatus.READY)


@dataclass(frozen=True)
class Plan:
    patch_id: CascadeId
    rebuilds: int  # images in the cascade
    released: int  # enqueued now; the others follow their parents
    skipped: str | None = None  # why nothing was planned
    unreadable: tuple[str, ...] = ()  # dependents whose record does not read: not planned


def plan_rebuilds(
    patch: PatchRequest, *, store: Store, rebuild_queue: Queue, base_check: BaseJudgement | None = None
) -> Plan:
    """Plan the cascade of `patch`, once; enqueue the images with no patched parent.

    Safe to run again for the same patch: a planned cascade is not written twice, and the
    first wave is sent again with the same rebuild ids, which the rebuilder starts once.
    The base check's one report of the base goes with each rebuild: none scans the base again.
    """
    producer = cascade_rebuilding(patch.base, patch.digest, store=store)
    if producer:
        # Our own push of a rebuilt image: its cascade releases the images built on it.
        return Plan(patch.cascade_id, 0, 0, skipped=f"rebuilt by the cascade of {producer}")
    cascade = patch.cascade_id
    planned = store.get_patch(patch.base, patch.digest)
    skipped_before = (
        planned is not None and planned.base_check is not None and planned.base_check.urgency == "skip"
    )
    # A rollback to a digest planned before (or by another rollback): planned anew.
    rolled_back = (
        patch.rollback_of is not None and planned is not None and planned.rollback_of != patch.rollback_of
    )
    if planned is None or (skipped_before and not planned.rebuilds) or rolled_back:  # skipped, now forced
        tracked = {b.ref for b in store.list_bases()}
        dependents_of = DependentsOf(store)
        nodes = plan_cascade(patch.base, affected(patch.base, dependents_of, tracked))
        unreadable = tuple(sorted(set(dependents_of.skipped)))
        supersede_older(patch, store=store)
        store.put_cascade(cascade, nodes.values())
        store.record_patch(patch, rebuilds=len(nodes), base_check=base_check)
        first_wave = [n for n in release_order(nodes.values()) if not n.parents]
        total = len(nodes)
    else:  # planned before (a redelivery after a crash): send the first wave again
        stored = list(store.cascade_nodes(cascade))
        first_wave = release_order(
            n.as_node() for n in stored if n.status is NodeStatus.READY and not n.waiting
        )
        total = len(stored)
        unreadable = ()
        base_check = planned.base_check or base_check
    report = base_check.report_uri if base_check else None
    rebuild_queue.send_batch(
        [RebuildRequest.for_dependent(n.dependent, patch, cascade, base_report=report) for n in first_wave]
    )
    return Plan(cascade, total, len(first_wave), unreadable=unreadable)


class DependentsOf:
    """Dependents of a base: one query per base for a small cascade; past SWITCH_AFTER queries,
    the whole graph in one paginated read instead (a deep fleet would cost a query per image)."""

    SWITCH_AFTER = 10

    def __init__(self, store: Store) -> None:
        self.store = store
        self.queries = 0
        self.by_base: dict[str, list[Dependent]] | None = None
        self.skipped: list[str] = []  # records that do not read, on the bases asked about

    def __call__(self, base: str) -> list[Dependent]:
        if self.by_base is None and self.queries >= self.SWITCH_AFTER:
            self.by_base = defaultdict(list)
            # The whole graph's unreadable records, not only this cascade's: each is worth telling.
            for dependent in self.store.list_dependents(skipped=self.skipped):
                for ref in dependent.bases:
                    self.by_base[ref].append(dependent)
        if self.by_base is not None:
            return self.by_base.get(base, [])
        self.queries += 1
        return list(self.store.dependents_of(base, skipped=self.skipped))


def cascade_rebuilding(image: str, digest: str, *, store: Store) -> CascadeId | None:
    """The cascade that is rebuilding `image` or just pushed it at `digest`, if any."""
    last = store.last_rebuild(image)
    if last is None or not last.cascade:
        return None
    if not last.status.final or last.image_digest == digest:
        return last.cascade
    return None


def supersede_older(patch: PatchRequest, *, store: Store) -> int:
    """Rebuilds of an older digest of the same base that have not started yet are dropped.

    Each is counted as skipped on its patch, so the older patch's summary still adds up.
    """
    dropped = 0
    for older in store.patches_of(patch.base):
        if older.digest == patch.digest:
            continue
        cascade = older.cascade_id
        for node in store.cascade_nodes(cascade):
            if store.set_node_status(cascade, node.image, NodeStatus.SUPERSEDED, expect=_NOT_STARTED):
                store.count_finished(cascade, f"skipped:{node.image}", SKIPPED, patch.detected_at)
                dropped += 1
    return dropped
