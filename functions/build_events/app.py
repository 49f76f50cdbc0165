"""CodeBuild state changes: record, judge (scan reports, gate) and tell each rebuild's outcome once."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import BuildEventsEnv, env_vars
from patchprop.domain.events import BuildStateChange
from patchprop.logic.conclude import conclude, record_build_event

logger = Logger()
tracer = Tracer()
metrics = Metrics()


class BuildStateChangeEvent(EventBridgeModel):
    detail: BuildStateChange


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=BuildStateChangeEvent)
def handler(event: BuildStateChangeEvent, context: LambdaContext) -> dict:
    env = env_vars(BuildEventsEnv)
    adapters = wiring.adapters(env)
    rebuild = record_build_event(
        event.detail,
        store=adapters.store,
        builds=adapters.builds,
        reports=adapters.reports,
        require_scan=env.REQUIRE_SCAN,
        tag_mover=adapters.tag_mover,
        evidence=adapters.evidence,
    )
    if rebuild is None:
        logger.info("not a patchprop build", extra={"build_id": event.detail.build_id})
        return {"status": "ignored"}
    released = conclude(
        rebuild,
        store=adapters.store,
        topic=adapters.topic,
        rebuild_queue=adapters.rebuild_queue,
        template=env.NOTIFY_FORMAT,
        bus=adapters.bus,
    )
    metrics.add_metric(f"Rebuild{rebuild.status.value.capitalize()}", MetricUnit.Count, 1)
    if rebuild.outcome:
        metrics.add_metric(f"Outcome{rebuild.outcome.value.capitalize()}", MetricUnit.Count, 1)
    answer = {"status": rebuild.status.value, "rebuild_id": rebuild.rebuild_id}
    logger.info("build state", extra={**answer, "released": released})
    return answer
