"""A rebuild finished: record it, tell it, advance or block its cascade, give back its slot.

`conclude` is that one sequence, called by the build-events handler (a build ended) and by the
rebuilder (a rebuild that never started). `record_build_event` applies a CodeBuild state change
and judges a build that succeeded before anything is recorded.
"""

from __future__ import annotations

from patchprop.domain.alerts import Alert, Template, report_link
from patchprop.domain.cascade import release_order
from patchprop.domain.errors import NotFound
from patchprop.domain.events import NO_RESULT, BuildResult, BuildStateChange
from patchprop.domain.fleet import finding_counts
from patchprop.domain.models import PatchRequest, RebuildRequest, utcnow
from patchprop.domain.receipt import Promoter
from patchprop.domain.records import (
    PROMOTABLE,
    SKIPPED,
    CascadeNode,
    Finish,
    NodeStatus,
    Outcome,
    Promotion,
    Rebuild,
    RebuildStatus,
)
from patchprop.logic.alerts import count_skipped, tell_finished
from patchprop.logic.ecr_verdict import EcrScanning, judge_on_ecr
from patchprop.logic.promote import Evidence, attach_evidence, by_hand_hint, move_candidate
from patchprop.logic.rebase import method_note
from patchprop.logic.verdict import Verdict, judge, read_result
from patchprop.ports import Builds, EventBus, Queue, Reports, Store, TagMover, Topic

REBUILD_ID_VAR = "PATCHPROP_REBUILD_ID"
_RUNNING = (NodeStatus.READY, NodeStatus.RUNNING)


def record_build_event(
    detail: BuildStateChange,
    *,
    store: Store,
    builds: Builds,
    reports: Reports,
    require_scan: bool = True,
    tag_mover: TagMover | None = None,
    evidence: Evidence | None = None,
    ecr: EcrScanning | None = None,
) -> Rebuild | None:
    """Apply one "CodeBuild Build State Change"; None when the build is not one of ours.

    A SUCCEEDED build is judged before its status is recorded, so a failure to read its result
    raises and the event is retried with nothing recorded. A candidate that passed has its tag
    moved (`tag_mover`) before it is recorded promoted; a move that fails for now raises
    PromotionPending (retried), and past MOVE_ATTEMPTS it is recorded "held" (passed, not
    promoted). Replays change nothing.
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
    result, missing = (
        read_result(builds, detail.build_key)
        if status in (RebuildStatus.SUCCEEDED, RebuildStatus.FAILED)
        else (None, NO_RESULT)
    )
    verdict = Verdict(None)
    if status is RebuildStatus.SUCCEEDED:
        verdict = (
            judge(rebuild, result, store=store, reports=reports, require_scan=require_scan, missing=missing)
            if ecr is None  # ScanSource=ecr: ECR's findings (ScanPending while it scans)
            else judge_on_ecr(
                rebuild,
                result,
                store=store,
                reports=reports,
                require_scan=require_scan,
                ecr=ecr,
                missing=missing,
            )
        )
    reason = _failure_reason(result, status) or rebuild.reason
    finished = rebuild.model_copy(
        update={
            "status": status,
            "build_id": detail.build_key,
            "log_url": log_url or rebuild.log_url,
            "reason": reason,
        }
    )
    alert = Alert.from_rebuild(finished, verdict.result, report_url=report_link(verdict.report_uri))
    notes = [*method_note(rebuild), *verdict.notes, *_smoke_notes(result, rebuild.rebuild_id)]
    moved = None
    if (
        status is RebuildStatus.SUCCEEDED
        and tag_mover is not None
        and result is not None
        and result.candidate
        and verdict.image_digest
        and alert.outcome in PROMOTABLE
    ):
        moved = move_candidate(rebuild, verdict.image_digest, store=store, tag_mover=tag_mover)
        notes += moved.reasons
    elif status is RebuildStatus.SUCCEEDED and result is not None and result.candidate:
        notes.append(by_hand_hint(rebuild.rebuild_id))
    if notes:
        alert = alert.model_copy(update={"reasons": [*alert.reasons, *notes]})
    if moved is not None and moved.outcome is Outcome.HELD:
        alert = alert.model_copy(update={"outcome": Outcome.HELD})
    on_tag_at = moved.promoted_at if moved else None
    if status is RebuildStatus.SUCCEEDED and result and not result.candidate and alert.outcome in PROMOTABLE:
        on_tag_at = utcnow()  # PUSH=tag: the build moved the tag itself
    finish = Finish(
        status=status,
        build_id=detail.build_key,
        log_url=log_url,
        outcome=alert.outcome,
        reasons=alert.reasons,
        report_uri=verdict.report_uri,
        image_digest=verdict.image_digest,
        sbom_uri=result.sbom if result else None,
        promoted_by="patchprop" if on_tag_at else None,
        promoted_at=on_tag_at,
        **finding_counts(verdict.result if verdict.report_uri else None),
        reason=reason,
    )
    recorded = store.record_finished(rebuild.rebuild_id, finish, alert)
    if recorded is not None and recorded.on_tag and evidence is not None:
        recorded = _with_evidence(recorded, result, verdict, store=store, evidence=evidence)
    return recorded or rebuild


def _failure_reason(result: BuildResult | None, status: RebuildStatus) -> str | None:
    """Why a build failed: the step and the last lines of its log, as the rebuild script told."""
    if status is not RebuildStatus.FAILED:
        return None
    failure = result.failure if result else None
    if failure is None:
        return "the build failed and left no reason (see its log)"
    if result is not None and result.smoke is not None and not result.smoke.passed:
        return failure.message or failure.reason  # the smoke note carries its output's tail
    return failure.reason


def _smoke_notes(result: BuildResult | None, rebuild_id: str) -> list[str]:
    """What a failed smoke test says in the alert: why, its output's tail, and the tag unmoved."""
    smoke = result.smoke if result else None
    if smoke is None or smoke.passed:
        return []
    why = "timed out" if smoke.timed_out else f"exited {smoke.exit}"
    tail = smoke.tail[-2000:].strip() or "(no output)"
    return [f"The smoke test {why}; the tag did not move. Its output's tail:\n{tail}"]


def _with_evidence(
    rebuild: Rebuild, result: BuildResult | None, verdict: Verdict, *, store: Store, evidence: Evidence
) -> Rebuild:
    """Attach the evidence to a rebuild patchprop just promoted; the notes join its reasons."""
    promoter = Promoter(by="patchprop", at=rebuild.promoted_at or utcnow())
    attached, notes = attach_evidence(
        rebuild, result, verdict.result, promoter, store=store, evidence=evidence
    )
    signed = evidence.signer is not None and not any(note.startswith("Signing ") for note in notes)
    promotion = Promotion(
        outcome=rebuild.told_outcome, reasons=[*rebuild.reasons, *notes], evidence=attached, signed=signed
    )
    return store.record_promotion(rebuild.rebuild_id, promotion) or rebuild


def conclude(
    rebuild: Rebuild,
    *,
    store: Store,
    topic: Topic,
    rebuild_queue: Queue,
    template: Template = "email",
    bus: EventBus | None = None,
) -> list[str]:
    """Tell a finished rebuild (SNS, and the event bus when given) and move its cascade on;
    returns the images released (enqueued)."""
    if not rebuild.status.final:
        return []
    tell_finished(rebuild, store=store, topic=topic, template=template, bus=bus)
    released, blocked = advance_cascade(rebuild, store=store, rebuild_queue=rebuild_queue)
    for image in blocked:
        count_skipped(rebuild.patch, image, store=store, topic=topic, template=template, bus=bus)
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
    if not succeeded or rebuild.outcome in (Outcome.BLOCKED, Outcome.FAILED, Outcome.HELD):
        return [], _block_below(node, store=store)
    return _release_children(node, rebuild, store=store, rebuild_queue=rebuild_queue), []


def _release_children(
    node: CascadeNode, rebuild: Rebuild, *, store: Store, rebuild_queue: Queue
) -> list[str]:
    """Enqueue the children of `node` whose patched parents are all rebuilt now; returns them."""
    cascade, image = node.cascade, node.image
    new_digest = rebuild.image_digest
    if not new_digest:
        return []  # no build result to pin to: the push's webhook or the next poll takes over
    base = store.get_base(image)
    previous = base.digest if base and base.digest != new_digest else None
    if base is not None and base.digest != new_digest:
        store.record_digest(image, base.digest, new_digest)  # so our own push is not a new patch
    ready = [
        store.get_node(cascade, child)
        for child in node.children
        if store.parent_rebuilt(cascade, child, image)
    ]
    moved = PatchRequest(
        base=image,
        digest=new_digest,
        previous_digest=rebuild.tag_digest_at_start or previous,
        detected_by="cascade",
        detected_at=rebuild.detected_at,
    )
    wave = release_order(n.as_node() for n in ready if n)
    # The parent's own scan is its children's base report: no child scans its base again.
    rebuild_queue.send_batch(
        [
            RebuildRequest.for_dependent(n.dependent, moved, cascade, base_report=rebuild.report_uri)
            for n in wave
        ]
    )
    return [n.image for n in wave]


def resume_cascade(rebuild: Rebuild, *, store: Store, rebuild_queue: Queue) -> list[str]:
    """A rebuild promoted by hand: what its block held below it waits again, and what waited only
    on it is released. Returns the images released."""
    if not rebuild.cascade:
        return []
    node = store.get_node(rebuild.cascade, rebuild.image)
    if node is None:
        return []
    store.set_node_status(node.cascade, node.image, NodeStatus.DONE, expect=(NodeStatus.FAILED,))
    pending = list(node.children)
    while pending:
        child = pending.pop()
        if store.set_node_status(node.cascade, child, NodeStatus.WAITING, expect=(NodeStatus.BLOCKED,)):
            # It was counted skipped on the patch; it is to be rebuilt and counted as that now.
            store.uncount_finished(rebuild.patch, f"skipped:{child}", SKIPPED)
            found = store.get_node(node.cascade, child)
            pending.extend(found.children if found else [])
    return _release_children(node, rebuild, store=store, rebuild_queue=rebuild_queue)


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
