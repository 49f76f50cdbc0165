"""Scheduled poll: one HEAD per tracked base; a moved digest takes the webhook's path.

Each run also reconciles the concurrency cap with the builds really running (logic/reconcile.py).
"""

from __future__ import annotations

from collections import Counter

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import PollerEnv, env_vars
from patchprop.logic.base_check import release_due
from patchprop.logic.detect import poll_bases
from patchprop.logic.reconcile import reconcile_slots

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
    projects = env_vars(PollerEnv).projects
    slots = reconcile_slots(slots=adapters.store, builds=adapters.builds, projects=projects)
    metrics.add_metric("BuildSlotsReleased", MetricUnit.Count, slots.released)
    if slots.released:
        logger.warning("leaked build slots released", extra=slots.as_dict())
    return {"bases": len(checks), **counts}
