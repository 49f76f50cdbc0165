"""Record what CodeBuild made of a rebuild and tell people, once per finished rebuild."""

from __future__ import annotations

from patchprop.errors import NotFound
from patchprop.models import BuildStateChange, Rebuild, RebuildStatus
from patchprop.notify import Message, Topic
from patchprop.store import Store

REBUILD_ID_VAR = "PATCHPROP_REBUILD_ID"
_OUTCOME = {
    RebuildStatus.SUCCEEDED: "succeeded",
    RebuildStatus.FAILED: "failed",
    RebuildStatus.STOPPED: "stopped",
    RebuildStatus.NOT_STARTED: "failed",
}


def _short(digest: str | None) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "(none)"


def outcome_message(rebuild: Rebuild) -> Message:
    """An email-readable subject and body, and attributes for SNS filter policies."""
    outcome = _OUTCOME.get(rebuild.status, rebuild.status.value.lower())
    subject = f"patchprop: {rebuild.image} rebuild {outcome}"
    lines = [
        f"The rebuild of {rebuild.image} on a new digest of its base {outcome}.",
        "",
        f"Image:          {rebuild.image}",
        f"Base:           {rebuild.base}",
        f"Base digest:    {rebuild.previous_digest or '(unknown)'}",
        f"             -> {rebuild.base_digest}",
        f"Status:         {rebuild.status.value}",
        f"CodeBuild:      {rebuild.project} {rebuild.build_id or ''}".rstrip(),
    ]
    if rebuild.reason:
        lines.append(f"Reason:         {rebuild.reason}")
    if rebuild.log_url:
        lines.append(f"Build log:      {rebuild.log_url}")
    if rebuild.owner:
        lines.append(f"Owner:          {rebuild.owner}")
    lines += ["", f"Detected:       {rebuild.detected_at.isoformat()}"]
    if rebuild.finished_at:
        lines.append(f"Finished:       {rebuild.finished_at.isoformat()}")
    lines += ["", f"Rebuild id:     {rebuild.rebuild_id}"]
    attributes: dict[str, str | int | float] = {
        "outcome": outcome,
        "image": rebuild.image,
        "base": rebuild.base,
        "project": rebuild.project,
        "status": rebuild.status.value,
    }
    if rebuild.owner:
        attributes["owner"] = rebuild.owner
    # SNS subjects: ASCII, no newlines, at most 100 characters.
    subject = subject.encode("ascii", "replace").decode()[:100]
    return Message(subject=subject, body="\n".join(lines) + "\n", attributes=attributes)


def notify_once(rebuild: Rebuild, *, store: Store, topic: Topic) -> bool:
    """Publish the outcome of a finished rebuild unless it was published already."""
    if rebuild.notified or not rebuild.status.final:
        return False
    topic.publish(outcome_message(rebuild))
    store.mark_notified(rebuild.rebuild_id)
    return True


def record_build_event(detail: BuildStateChange, *, store: Store, topic: Topic) -> Rebuild | None:
    """Apply one "CodeBuild Build State Change"; None when the build is not one of ours."""
    rebuild_id = detail.env(REBUILD_ID_VAR) or store.rebuild_id_for_build(detail.build_key)
    if not rebuild_id:
        return None
    if store.get_rebuild(rebuild_id) is None:
        # Our build, but the rebuilder has not stored it yet: fail so the event is retried.
        raise NotFound(f"rebuild {rebuild_id} of build {detail.build_id} is not recorded yet")
    try:
        status = RebuildStatus(detail.build_status)
    except ValueError:
        return store.get_rebuild(rebuild_id)  # e.g. FAULT phases we do not track
    log_url = detail.additional_information.logs.deep_link if detail.additional_information.logs else None
    if not status.final:
        store.record_progress(rebuild_id, detail.build_key, log_url)
        return store.get_rebuild(rebuild_id)
    rebuild = store.record_finished(rebuild_id, status, detail.build_key, log_url)
    if rebuild is None:
        return None
    notify_once(rebuild, store=store, topic=topic)
    return rebuild
