"""The cap never leaks: its counter reconciled against the builds really running.

A slot is claimed before StartBuild and given back when the rebuild ends; a rebuilder that dies
in between (or a build event lost) keeps it forever, and a long-lived stack slowly stops
rebuilding. `reconcile_slots` runs on the poll schedule and when a rebuild has waited on a full
cap for long: a counter above the builds patchprop has running is lowered to that count, with a
conditional write (a claim or release meanwhile makes it wait for the next cycle).

A claim whose StartBuild is under way at that instant is not yet a running build: lowering the
counter then lets one more build start than the cap, once, and the next cycle corrects it. That is
the trade: over by one for a moment, rather than a slot lost for good.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from patchprop.ports import Builds, SlotLedger

CAP_WAIT_RECONCILE_AFTER = 4  # waits of one rebuild (RebuildRequest.waits) before reconciling


@dataclass(frozen=True)
class Reconciled:
    in_use: int  # the counter as read
    running: int | None  # builds running (None: not asked, the counter was 0)
    released: int  # slots given back

    def as_dict(self) -> dict[str, int | None]:
        return {"in_use": self.in_use, "running": self.running, "released": self.released}


def reconcile_slots(*, slots: SlotLedger, builds: Builds, projects: Collection[str]) -> Reconciled:
    """Lower the cap's counter to the builds really running; what was released."""
    in_use = slots.build_slots_in_use()
    if in_use <= 0:
        return Reconciled(in_use, None, 0)
    running = builds.running_builds(projects)
    if running >= in_use or not slots.set_build_slots_in_use(running, expect=in_use):
        return Reconciled(in_use, running, 0)
    return Reconciled(in_use, running, in_use - running)
