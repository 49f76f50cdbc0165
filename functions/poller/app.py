"""Scheduled poll: one HEAD per tracked base; a moved digest takes the webhook's path.

Each run also reconciles the concurrency cap with the builds really running (logic/reconcile.py)
and, with OWN_PACKAGE_RESCANS_PER_DAY > 0, rescans promoted images (logic/rescan.py).
"""

from __future__ import annotations

from collections import Counter

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import PollerEnv, env_vars
from patchprop.logic.base_check import release_due
from patchprop.logic.base_scan import sweep_base_scans
from patchprop.logic.detect import poll_bases
from patchprop.logic.reconcile import reconcile_slots
from patchprop.logic.rescan import STARTED, rescan_due

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    adapters = wiring.adapters(env_vars(PollerEnv))
    checks = poll_bases(store=adapters.store, registry=adapters.registry, patches=adapters.patch_queue)
    counts = Counter(c.seen.value for c in checks)
    for seen, n in counts.items():
        metrics.add_metric(f"Base{seen.capitalize()}", MetricUnit.Count, n)
    # Base digests whose batch window or soak ended go to the planner (each once).
    released = release_due(store=adapters.store, patches=adapters.patch_queue)
    metrics.add_metric("BaseReleased", MetricUnit.Count, len(released))
    logger.info("poll done", extra={"bases": len(checks), **counts, "released": released})
    # Check-only base scans whose end never came: their patches go on, "not scanned".
    swept = sweep_base_scans(
        scans=adapters.base_scans,
        patches=adapters.patch_queue,
        timeout_minutes=env_vars(PollerEnv).BASE_SCAN_TIMEOUT_MINUTES,
    )
    metrics.add_metric("BaseScansSwept", MetricUnit.Count, len(swept))
    projects = env_vars(PollerEnv).projects
    slots = reconcile_slots(slots=adapters.store, builds=adapters.builds, projects=projects)
    metrics.add_metric("BuildSlotsReleased", MetricUnit.Count, slots.released)
    if slots.released:
        logger.warning("leaked build slots released", extra=slots.as_dict())
    # With OwnPackageRescansPerDay > 0: {"image": IMAGE} in the event rescans that image alone.
    rescanned = rescan(adapters, env_vars(PollerEnv), event.get("image"))
    return {"bases": len(checks), **counts, **({"rescanned": rescanned} if rescanned else {})}


def rescan(adapters: wiring.Adapters, env: PollerEnv, image: str | None = None) -> list[dict]:
    """The tick's rescans of promoted images (none unless OWN_PACKAGE_RESCANS_PER_DAY > 0)."""
    if env.OWN_PACKAGE_RESCANS_PER_DAY <= 0:
        return []
    parts = adapters.rescan_parts(env.SCAN_SOURCE, env.projects)
    done = rescan_due(parts, per_day=env.OWN_PACKAGE_RESCANS_PER_DAY, scan_source=env.SCAN_SOURCE, only=image)
    started = sum(1 for r in done if r.outcome == STARTED)
    metrics.add_metric("OwnPackageRescans", MetricUnit.Count, len(done))
    metrics.add_metric("OwnPackageRebuilds", MetricUnit.Count, started)
    return [{"image": r.image, "outcome": r.outcome, "rebuild_id": r.rebuild_id} for r in done]
