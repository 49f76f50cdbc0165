"""Tell deployment tools: each verdict, and each completed patch, put on the event bus once.

As the SNS message of a rebuild is: put first, then marked, so a failure in between sends it on
the next delivery rather than never; the mark is the outcome announced, so a verdict that
changes (promoted by hand after a block) is a new event, and a replay of the same one is not.
"""

from __future__ import annotations

from patchprop.domain.alerts import Alert
from patchprop.domain.outcome_events import patch_event, rebuild_event
from patchprop.domain.records import Patch, Rebuild
from patchprop.ports import EventBus, Store


def announce_rebuild(rebuild: Rebuild, alert: Alert, *, store: Store, bus: EventBus | None) -> bool:
    """Put the verdict `alert` tells about a finished rebuild on the bus, unless it is already."""
    if bus is None or not rebuild.status.final or rebuild.announced == alert.outcome:
        return False
    bus.put(rebuild_event(rebuild, alert))
    store.mark_announced(rebuild.rebuild_id, alert.outcome)
    return True


def announce_patch(patch: Patch, *, store: Store, bus: EventBus | None) -> bool:
    """Put "Patch Completed" on the bus for a patch whose work is all counted, once."""
    if bus is None or patch.announced or not patch.complete:
        return False
    bus.put(patch_event(patch))
    store.mark_patch_announced(patch.cascade_id)
    return True
