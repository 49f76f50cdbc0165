"""A rebuild finished: record it, tell it, advance or block its cascade, give back its slot.

`conclude` is that one sequence, called by the build-events handler (a build ended) and by the
rebuilder (a rebuild that never started). `record_build_event` applies a CodeBuild state change
and judges a build that succeeded before anything is recorded.
"""

from __future__ import annotations

from patchprop.domain.alerts import Alert, Template, report_link
from patchprop.domain.cascade import release_order
from patchprop.domain.errors import NotFound
from patchprop.domain.events import BuildStateChange
from patchprop.domain.models import PatchRequest, RebuildRequest
from patchprop.domain.records import CascadeNode, Finish, NodeStatus, Outcome, Rebuild, RebuildStatus
from patchprop.logic.alerts import count_skipped, tell_finished
from patchprop.logic.verdict import Verdict, judge
from patchprop.ports import Builds, Queue, Reports, Store, Topic

REBUILD_ID_VAR = "PATCHPROP_REBUILD_ID"
_RUNNING = (NodeStatus.READY, NodeStatus.RUNNING)


def record_build_event(
    detail: BuildStateChange, *, store: Store, builds: Builds, reports: Reports, require_scan: bool = True
) -> Rebuild | None:
    """Apply one "CodeBuild Build State Change"; None when the build is not one of ours.

    A SUCCEEDED build is judged before its status is recorded, so a failure to read its result
    raises and the event is retried with nothing recorded. Replays change nothing.
    """
    rebuild_id = detail.env(REBUILD_ID_VAR) or store.rebuild_id_for_build(detail.build_key)
    if not rebuild_id:
        return None
    rebuild = store.get_rebuild(rebuild_id)
    if rebuild is None:
        # Our build, but the rebuilder has not stored it yet: fail so the event is retried.
        raise NotFound(f"rebuild {rebuild_id} of build {detail.build_id} is not recorded yet")
    try:
        status = RebuildStatus(detail.build_status)
    except ValueError:
        return rebuild  # e.g. FAULT phases we do not track
    log_url = detail.additional_information.logs.deep_link if detail.additional_information.logs else None
    if not status.final:
        store.record_progress(rebuild_id, detail.build_key, log_url)
        return store.get_rebuild(rebuild_id)
    if rebuild.status.final:
        return rebuild
    verdict = Verdict(None)
    if status is RebuildStatus.SUCCEEDED:
        built = builds.build_result(detail.build_key)
        verdict = judge(rebuild, built, store=store, reports=reports, require_scan=require_scan)
    finished = rebuild.model_copy(
        update={"status": status, "build_id": detail.build_key, "log_url": log_url or rebuild.log_url}
    )
    alert = Alert.from_rebuild(finished, verdict.result, report_url=report_link(verdict.report_uri))
    if verdict.notes:
        alert = alert.model_copy(update={"reasons": [*alert.reasons, *verdict.notes]})
    finish = Finish(
        status=status,
        build_id=detail.build_key,
        log_url=log_url,
        outcome=alert.outcome,
        reasons=alert.reasons,
        report_uri=verdict.report_uri,
        image_digest=verdict.image_digest,
    )
    recorded = store.record_finished(rebuild.rebuild_id, finish, alert)
    return recorded or rebuild


def conclude(
    rebuild: Rebuild, *, store: Store, topic: Topic, rebuild_queue: Queue, template: Template = "email"
) -> list[str]:
    """Tell a finished rebuild and move its cascade on; returns the images released (enqueued)."""
    if not rebuild.status.final:
        return []
    tell_finished(rebuild, store=store, topic=topic, template=template)
    released, blocked = advance_cascade(rebuild, store=store, rebuild_queue=rebuild_queue)
    for image in blocked:
        count_skipped(rebuild.patch, image, store=store, topic=topic, template=template)
    return released


def advance_cascade(rebuild: Rebuild, *, store: Store, rebuild_queue: Queue) -> tuple[list[str], list[str]]:
    """Enqueue the images `rebuild` was the last patched parent of, or block every image below it.

    Runs once per rebuild (the node's move to DONE or FAILED is conditional), and gives back the
    build's slot of the concurrency cap. Returns (released, blocked).
    """
    if not rebuild.cascade or not rebuild.status.final:
        return [], []
    cascade, image = rebuild.cascade, rebuild.image
    node = store.get_node(cascade, image)
    succeeded = rebuild.status is RebuildStatus.SUCCEEDED
    done = NodeStatus.DONE if succeeded else NodeStatus.FAILED
    if node is None or not store.set_node_status(cascade, image, done, expect=_RUNNING):
        return [], []
    if rebuild.build_id:
        store.release_build_slot()  # its build held a slot of the concurrency cap
    if not succeeded or rebuild.outcome in (Outcome.BLOCKED, Outcome.FAILED):
        return [], _block_below(node, store=store)
    new_digest = rebuild.image_digest
    if not new_digest:
        return [], []  # no build result to pin to: the push's webhook or the next poll takes over
    base = store.get_base(image)
    previous = base.digest if base and base.digest != new_digest else None
    if base is not None:
        store.record_digest(image, base.digest, new_digest)  # so our own push is not a new patch
    ready = [
        store.get_node(cascade, child)
        for child in node.children
        if store.parent_rebuilt(cascade, child, image)
    ]
    moved = PatchRequest(
        base=image,
        digest=new_digest,
        previous_digest=previous,
        detected_by="cascade",
        detected_at=rebuild.detected_at,
    )
    wave = release_order(n.as_node() for n in ready if n)
    rebuild_queue.send_batch([RebuildRequest.for_dependent(n.dependent, moved, cascade) for n in wave])
    return [n.image for n in wave], []


def _block_below(node: CascadeNode, *, store: Store) -> list[str]:
    """Mark every image waiting below `node` BLOCKED; returns them."""
    blocked: list[str] = []
    pending = list(node.children)
    while pending:
        child = pending.pop()
        if store.set_node_status(node.cascade, child, NodeStatus.BLOCKED, expect=(NodeStatus.WAITING,)):
            blocked.append(child)
            found = store.get_node(node.cascade, child)
            pending.extend(found.children if found else [])
    return blocked
