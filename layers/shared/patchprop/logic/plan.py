"""Plan a patch: one rebuild request per dependent of the moved base."""

from __future__ import annotations

from dataclasses import dataclass

from patchprop.models import PatchRequest, RebuildRequest
from patchprop.queues import Queue
from patchprop.store import Store


@dataclass(frozen=True)
class Plan:
    patch_id: str
    rebuilds: int
    skipped: int  # dependents with auto-rebuild off


def plan_rebuilds(patch: PatchRequest, *, store: Store, rebuild_queue: Queue) -> Plan:
    """Enqueue a rebuild of every dependent of `patch.base` on the new digest.

    Safe to run twice for the same patch: rebuild ids are derived from (image, base, digest)
    and the rebuilder starts each id once.
    """
    dependents = list(store.dependents_of(patch.base))
    wanted = [d for d in dependents if d.auto_rebuild]
    requests = [RebuildRequest.for_dependent(d, patch) for d in wanted]
    rebuild_queue.send_batch(requests)
    store.record_patch(patch, rebuilds=len(requests))
    return Plan(patch.patch_id, len(requests), len(dependents) - len(wanted))
