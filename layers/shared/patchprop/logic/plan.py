"""Plan a patch: the whole affected set as one cascade; the first wave enqueued at once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from patchprop.domain.cascade import Node, affected, plan_cascade, release_order
from patchprop.domain.models import Dependent, PatchRequest, Rebuild, RebuildRequest, RebuildStatus
from patchprop.ports import Queue, Store


@dataclass(frozen=True)
class Plan:
    patch_id: str
    rebuilds: int  # images in the cascade
    released: int  # enqueued now; the others follow their parents
    skipped: str | None = None  # why nothing was planned


def plan_rebuilds(patch: PatchRequest, *, store: Store, rebuild_queue: Queue) -> Plan:
    """Plan the cascade of `patch`, once; enqueue the images with no patched parent.

    Safe to run again for the same patch: a planned cascade is not written twice, and the
    first wave is sent again with the same rebuild ids, which the rebuilder starts once.
    """
    producer = cascade_rebuilding(patch.base, patch.digest, store=store)
    if producer:
        # Our own push of a rebuilt image: its cascade releases the images built on it.
        return Plan(patch.patch_id, 0, 0, skipped=f"rebuilt by the cascade of {producer}")
    cascade = patch.patch_id
    if store.get_patch(patch.base, patch.digest) is None:
        tracked = {b.ref for b in store.list_bases()}
        nodes = plan_cascade(patch.base, affected(patch.base, DependentsOf(store), tracked))
        supersede_older(patch, store=store)
        store.put_cascade(cascade, nodes.values())
        store.record_patch(patch, rebuilds=len(nodes))
        first_wave = [n for n in release_order(nodes.values()) if not n.parents]
        total = len(nodes)
    else:  # planned before (a redelivery after a crash): send the first wave again
        stored = list(store.cascade_nodes(cascade))
        first_wave = [_node(item) for item in stored if item["status"] == "READY" and not item.get("waiting")]
        first_wave = release_order(first_wave)
        total = len(stored)
    rebuild_queue.send_batch([RebuildRequest.for_dependent(n.dependent, patch, cascade) for n in first_wave])
    return Plan(cascade, total, len(first_wave))


class DependentsOf:
    """Dependents of a base: one query per base for a small cascade; past SWITCH_AFTER queries,
    the whole graph in one paginated read instead (a deep fleet would cost a query per image)."""

    SWITCH_AFTER = 10

    def __init__(self, store: Store) -> None:
        self.store = store
        self.queries = 0
        self.by_base: dict[str, list[Dependent]] | None = None

    def __call__(self, base: str) -> list[Dependent]:
        if self.by_base is None and self.queries >= self.SWITCH_AFTER:
            self.by_base = defaultdict(list)
            for dependent in self.store.list_dependents():
                for ref in dependent.bases:
                    self.by_base[ref].append(dependent)
        if self.by_base is not None:
            return self.by_base.get(base, [])
        self.queries += 1
        return list(self.store.dependents_of(base))


def cascade_rebuilding(image: str, digest: str, *, store: Store) -> str | None:
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
        if older.get("digest") == patch.digest:
            continue
        cascade = f"{patch.base}@{older['digest']}"
        for item in store.cascade_nodes(cascade):
            if store.set_node_status(cascade, item["image"], "SUPERSEDED", expect=("WAITING", "READY")):
                store.count_finished(
                    patch.base, older["digest"], f"skipped:{item['image']}", "skipped", patch.detected_at
                )
                dropped += 1
    return dropped


def advance_cascade(
    rebuild: Rebuild,
    *,
    store: Store,
    rebuild_queue: Queue,
    skipped: Callable[[str], object] = lambda _image: None,
) -> list[str]:
    """A cascade rebuild finished: enqueue the images it was the last patched parent of.

    Runs once per rebuild (the node's move to DONE or FAILED is conditional). A rebuild that
    failed, or that the gate failed or blocked, blocks every image below it; `skipped(image)`
    is called for each. Returns the images enqueued.
    """
    if not rebuild.cascade or not rebuild.status.final:
        return []
    cascade, image = rebuild.cascade, rebuild.image
    node = store.get_node(cascade, image)
    succeeded = rebuild.status is RebuildStatus.SUCCEEDED
    if node is None or not store.set_node_status(
        cascade, image, "DONE" if succeeded else "FAILED", expect=("READY", "RUNNING")
    ):
        return []
    if rebuild.build_id:
        store.release_build_slot()  # its build held a slot of the concurrency cap
    new_digest = rebuild.image_digest
    if not succeeded or rebuild.outcome in ("blocked", "failed"):
        for blocked in _block_below(cascade, node, store=store):
            skipped(blocked)
        return []
    if not new_digest:
        return []  # no build result to pin to: the push's webhook or the next poll takes over
    base = store.get_base(image)
    previous = base.digest if base and base.digest != new_digest else None
    if base is not None:
        store.record_digest(image, base.digest, new_digest)  # so our own push is not a new patch
    ready = [
        store.get_node(cascade, child)
        for child in node.get("children", [])
        if store.parent_rebuilt(cascade, child, image)
    ]
    moved = PatchRequest(
        base=image,
        digest=new_digest,
        previous_digest=previous,
        detected_by="cascade",
        detected_at=rebuild.detected_at,
    )
    wave = release_order(_node(item) for item in ready if item)
    rebuild_queue.send_batch([RebuildRequest.for_dependent(n.dependent, moved, cascade) for n in wave])
    return [n.image for n in wave]


def _block_below(cascade: str, node: dict, *, store: Store) -> list[str]:
    """Mark every image waiting below `node` BLOCKED; returns them."""
    blocked: list[str] = []
    pending = list(node.get("children", []))
    while pending:
        child = pending.pop()
        if store.set_node_status(cascade, child, "BLOCKED", expect=("WAITING",)):
            blocked.append(child)
            found = store.get_node(cascade, child)
            pending.extend(found.get("children", []) if found else [])
    return blocked


def _node(item: dict) -> Node:
    return Node(Dependent.model_validate(item["dependent"]), priority=float(item.get("priority", 0)))
