"""CodeBuild state changes: record, judge (scan reports, gate) and tell each rebuild's outcome once."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import EnvVars, env_vars
from patchprop.domain.alerts import NotifyFormat
from patchprop.domain.events import BuildStateChange
from patchprop.logic.conclude import conclude, record_build_event

logger = Logger()
tracer = Tracer()
metrics = Metrics()


class Env(EnvVars):
    TABLE_NAME: str
    TOPIC_ARN: str
    REBUILD_QUEUE_URL: str
    # No scan report: true fails the rebuild, false tells it as "succeeded" (not scanned).
    REQUIRE_SCAN: bool = True
    NOTIFY_FORMAT: NotifyFormat = "email"
    REPORTS_BUCKET: str = ""  # reports are read from this bucket only


class BuildStateChangeEvent(EventBridgeModel):
    detail: BuildStateChange


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=BuildStateChangeEvent)
def handler(event: BuildStateChangeEvent, context: LambdaContext) -> dict:
    env = env_vars(Env)
    store = wiring.store(env.TABLE_NAME)
    rebuild = record_build_event(
        event.detail,
        store=store,
        builds=wiring.codebuild(),
        reports=wiring.reports(env.REPORTS_BUCKET),
        require_scan=env.REQUIRE_SCAN,
    )
    if rebuild is None:
        logger.info("not a patchprop build", extra={"build_id": event.detail.build_id})
        return {"status": "ignored"}
    released = conclude(
        rebuild,
        store=store,
        topic=wiring.topic(env.TOPIC_ARN),
        rebuild_queue=wiring.queue(env.REBUILD_QUEUE_URL),
        template=env.NOTIFY_FORMAT,
    )
    metrics.add_metric(f"Rebuild{rebuild.status.value.capitalize()}", MetricUnit.Count, 1)
    if rebuild.outcome:
        metrics.add_metric(f"Outcome{rebuild.outcome.capitalize()}", MetricUnit.Count, 1)
    logger.info(
        "build state",
        extra={"rebuild_id": rebuild.rebuild_id, "status": rebuild.status.value, "released": released},
    )
    return {"status": rebuild.status.value, "rebuild_id": rebuild.rebuild_id}
