"""CodeBuild state changes: record each rebuild's outcome and publish it once to SNS."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import EnvVars, env_vars
from patchprop.logic.outcome import record_build_event
from patchprop.models import BuildStateChange

logger = Logger()
tracer = Tracer()
metrics = Metrics()


class Env(EnvVars):
    TABLE_NAME: str
    TOPIC_ARN: str


class BuildStateChangeEvent(EventBridgeModel):
    detail: BuildStateChange


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=BuildStateChangeEvent)
def handler(event: BuildStateChangeEvent, context: LambdaContext) -> dict:
    env = env_vars(Env)
    rebuild = record_build_event(
        event.detail, store=wiring.store(env.TABLE_NAME), topic=wiring.topic(env.TOPIC_ARN)
    )
    if rebuild is None:
        logger.info("not a patchprop build", extra={"build_id": event.detail.build_id})
        return {"status": "ignored"}
    metrics.add_metric(f"Rebuild{rebuild.status.value.capitalize()}", MetricUnit.Count, 1)
    logger.info("build state", extra={"rebuild_id": rebuild.rebuild_id, "status": rebuild.status.value})
    return {"status": rebuild.status.value, "rebuild_id": rebuild.rebuild_id}
