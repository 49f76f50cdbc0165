"""Tell people: each finished rebuild published once, counted once on its patch, and one summary
per patch once its last rebuild (or skipped image) is counted."""

from __future__ import annotations

from datetime import datetime

from patchprop.domain.alerts import Alert, PatchSummary, Template, message, report_link, summary_message
from patchprop.domain.models import CascadeId, utcnow
from patchprop.domain.records import SKIPPED, Patch, Rebuild
from patchprop.logic.announce import announce_patch, announce_rebuild
from patchprop.ports import EventBus, Store, Topic


def alert_for(rebuild: Rebuild, *, store: Store) -> Alert:
    """What was (or is to be) told about a finished rebuild: the alert recorded with its status,
    else one made from the rebuild alone (a rebuild that never started, or a very long alert)."""
    stored = store.get_alert(rebuild.rebuild_id)
    if stored is not None:
        return stored
    alert = Alert.from_rebuild(rebuild, report_url=report_link(rebuild.report_uri))
    if rebuild.outcome and rebuild.outcome != alert.outcome:
        alert = alert.model_copy(update={"outcome": rebuild.outcome, "reasons": rebuild.reasons})
    return alert


def notify_once(
    rebuild: Rebuild,
    *,
    store: Store,
    topic: Topic,
    template: Template = "email",
    bus: EventBus | None = None,
) -> bool:
    """Publish the outcome of a finished rebuild unless it was published already; and put it on
    the event bus (`bus`) unless it is there already. True when the SNS message went out now."""
    if not rebuild.status.final or (rebuild.notified and (bus is None or rebuild.announced)):
        return False
    alert = alert_for(rebuild, store=store)
    sent = False
    if not rebuild.notified:
        topic.publish(message(alert, template))
        store.mark_notified(rebuild.rebuild_id)
        sent = True
    announce_rebuild(rebuild, alert, store=store, bus=bus)
    return sent


def tell_finished(
    rebuild: Rebuild,
    *,
    store: Store,
    topic: Topic,
    template: Template = "email",
    bus: EventBus | None = None,
) -> None:
    """Tell a finished rebuild once, count it on its patch, and sum the patch up after its last."""
    if not rebuild.status.final:
        return
    notify_once(rebuild, store=store, topic=topic, template=template, bus=bus)
    if rebuild.trigger:  # a rescan's rebuild (logic/rescan.py) is no part of its base's patch
        return
    at = rebuild.finished_at or utcnow()
    count_on_patch(
        rebuild.patch,
        rebuild.rebuild_id,
        rebuild.told_outcome,
        at,
        store=store,
        topic=topic,
        template=template,
        bus=bus,
    )


def count_skipped(
    cascade: CascadeId,
    image: str,
    *,
    store: Store,
    topic: Topic,
    template: Template = "email",
    bus: EventBus | None = None,
) -> bool:
    """Count an image of a cascade that will not be rebuilt (a parent failed) on its patch."""
    return count_on_patch(
        cascade, f"skipped:{image}", SKIPPED, utcnow(), store=store, topic=topic, template=template, bus=bus
    )


def count_on_patch(
    patch: CascadeId,
    counted_id: str,
    outcome: str,
    at: datetime,
    *,
    store: Store,
    topic: Topic,
    template: Template = "email",
    bus: EventBus | None = None,
) -> bool:
    """Count one finished piece of work on `patch` (once per `counted_id`), and publish the
    patch's summary if that was the last. True when the summary went out now.

    `outcome` is a rebuild's, or "skipped" for an image of the patch that will not be rebuilt (a
    parent failed, a newer digest came). A complete patch also goes on the event bus (`bus`),
    once, after its summary.
    """
    _, counted = store.count_finished(patch, counted_id, outcome, at)
    if counted is None or not counted.complete:
        return False
    sent = False
    if not counted.summarized and store.claim_summary(patch):
        try:
            topic.publish(summary_message(patch_summary(counted), template))
        except Exception:
            store.release_summary(patch)  # so a retry of the event sends it
            raise
        sent = True
    announce_patch(counted, store=store, bus=bus)
    return sent


def patch_summary(patch: Patch) -> PatchSummary:
    """A stored patch, with its counters, as a summary."""
    return PatchSummary.model_validate(patch.model_dump())
