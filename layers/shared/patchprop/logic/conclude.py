"""Record what CodeBuild made of a rebuild, judge it, and tell people.

Once per finished rebuild: its outcome (promoted, blocked, failed, succeeded when not scanned,
stopped) with the reasons, published to SNS. Once per patch event, after its last rebuild
finished: a summary of them all.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from patchprop.domain.alerts import Alert, PatchSummary, Template, message, report_link, summary_message
from patchprop.domain.errors import NotFound
from patchprop.domain.models import BuildStateChange, Rebuild, RebuildStatus, utcnow
from patchprop.logic.verdict import Verdict, judge
from patchprop.ports import Builds, Reports, Store, Topic

REBUILD_ID_VAR = "PATCHPROP_REBUILD_ID"


def record_build_event(
    detail: BuildStateChange,
    *,
    store: Store,
    topic: Topic,
    builds: Builds,
    reports: Reports,
    require_scan: bool = True,
    template: Template = "email",
) -> Rebuild | None:
    """Apply one "CodeBuild Build State Change"; None when the build is not one of ours.

    A SUCCEEDED build is judged before its status is recorded, so a failure to read its result
    raises and the event is retried with nothing recorded. Replays change nothing and tell
    nothing twice.
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
    if not rebuild.status.final:
        verdict = Verdict(None)
        if status is RebuildStatus.SUCCEEDED:
            built = builds.build_result(detail.build_key)
            verdict = judge(rebuild, built, store=store, reports=reports, require_scan=require_scan)
        rebuild = _record(rebuild, status, detail.build_key, log_url, verdict, store=store) or rebuild
    tell_finished(rebuild, store=store, topic=topic, template=template)
    return rebuild


def _record(
    rebuild: Rebuild,
    status: RebuildStatus,
    build_id: str,
    log_url: str | None,
    verdict: Verdict,
    *,
    store: Store,
) -> Rebuild | None:
    """Store the final status with the verdict and the alert that tells it (once)."""
    at = utcnow()
    finished = rebuild.model_copy(
        update={
            "status": status,
            "build_id": build_id,
            "log_url": log_url or rebuild.log_url,
            "finished_at": at,
        }
    )
    alert = Alert.from_rebuild(finished, verdict.result, report_url=report_link(verdict.report_uri))
    if verdict.notes:
        alert = alert.model_copy(update={"reasons": [*alert.reasons, *verdict.notes]})
    return store.record_finished(
        rebuild.rebuild_id,
        status,
        build_id,
        log_url,
        at,
        outcome=alert.outcome,
        reasons=alert.reasons,
        report_uri=verdict.report_uri,
        image_digest=verdict.image_digest,
        alert_json=alert.model_dump_json(),
    )


def alert_for(rebuild: Rebuild, *, store: Store) -> Alert:
    """What was (or is to be) told about a finished rebuild: the alert recorded with its status,
    else one made from the rebuild alone (a rebuild that never started, or a very long alert)."""
    stored = store.alert_json(rebuild.rebuild_id)
    if stored:
        return Alert.model_validate_json(stored)
    alert = Alert.from_rebuild(rebuild, report_url=report_link(rebuild.report_uri))
    if rebuild.outcome and rebuild.outcome != alert.outcome:
        alert = alert.model_copy(update={"outcome": rebuild.outcome, "reasons": rebuild.reasons})
    return alert


def notify_once(rebuild: Rebuild, *, store: Store, topic: Topic, template: Template = "email") -> bool:
    """Publish the outcome of a finished rebuild unless it was published already."""
    if rebuild.notified or not rebuild.status.final:
        return False
    topic.publish(message(alert_for(rebuild, store=store), template))
    store.mark_notified(rebuild.rebuild_id)
    return True


def tell_finished(rebuild: Rebuild, *, store: Store, topic: Topic, template: Template = "email") -> None:
    """Tell a finished rebuild once, count it on its patch, and sum the patch up after its last."""
    if not rebuild.status.final:
        return
    notify_once(rebuild, store=store, topic=topic, template=template)
    base, digest = patch_of(rebuild)
    outcome = rebuild.outcome or Alert.from_rebuild(rebuild).outcome
    at = rebuild.finished_at or utcnow()
    count_on_patch(base, digest, rebuild.rebuild_id, outcome, at, store=store, topic=topic, template=template)


def count_on_patch(
    base: str,
    digest: str,
    counted_id: str,
    outcome: str,
    at: datetime,
    *,
    store: Store,
    topic: Topic,
    template: Template = "email",
) -> bool:
    """Count one finished piece of work on the patch `base@digest` (once per `counted_id`), and
    publish the patch's summary if that was the last. True when the summary went out now.

    `outcome` is a rebuild's (promoted, blocked, failed, succeeded, stopped), or "skipped" for
    an image of the patch that will not be rebuilt (a parent failed, a newer digest came).
    """
    _, patch = store.count_finished(base, digest, counted_id, outcome, at)
    if patch is None or patch.get("summarized"):
        return False
    summary = patch_summary(patch)
    if summary.finished < summary.rebuilds or not store.claim_summary(base, digest):
        return False
    try:
        topic.publish(summary_message(summary, template))
    except Exception:
        store.release_summary(base, digest)  # so a retry of the event sends it
        raise
    return True


def patch_of(rebuild: Rebuild) -> tuple[str, str]:
    """The patch a rebuild counts toward: its cascade's (the base that moved), else its own base's."""
    if rebuild.cascade:
        base, _, digest = rebuild.cascade.rpartition("@")
        return base, digest
    return rebuild.base, rebuild.base_digest


def patch_summary(item: dict[str, Any]) -> PatchSummary:
    """A stored patch (its counters kept by Store.count_finished) as a summary."""
    return PatchSummary.model_validate({k: int(v) if isinstance(v, Decimal) else v for k, v in item.items()})


def count_skipped(
    cascade: str, image: str, *, store: Store, topic: Topic, template: Template = "email"
) -> bool:
    """Count an image of a cascade that will not be rebuilt (a parent failed) on its patch."""
    base, _, digest = cascade.rpartition("@")
    return count_on_patch(
        base, digest, f"skipped:{image}", "skipped", utcnow(), store=store, topic=topic, template=template
    )
