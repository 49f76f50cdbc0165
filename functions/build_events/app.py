"""CodeBuild state changes: record, judge (scan reports, gate) and tell each rebuild's outcome once."""

from __future__ import annotations

from functools import partial

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import EnvVars, env_vars
from patchprop.domain.alerts import NotifyFormat
from patchprop.domain.models import BuildStateChange
from patchprop.logic.conclude import count_skipped, record_build_event
from patchprop.logic.plan import advance_cascade

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
    rebuild = record_build_event(
        event.detail,
        store=wiring.store(env.TABLE_NAME),
        topic=wiring.topic(env.TOPIC_ARN),
        builds=wiring.codebuild(),
        reports=wiring.reports(env.REPORTS_BUCKET),
        require_scan=env.REQUIRE_SCAN,
        template=env.NOTIFY_FORMAT,
    )
    if rebuild is None:
        logger.info("not a patchprop build", extra={"build_id": event.detail.build_id})
        return {"status": "ignored"}
    store, topic = wiring.store(env.TABLE_NAME), wiring.topic(env.TOPIC_ARN)
    released = advance_cascade(
        rebuild,
        store=store,
        rebuild_queue=wiring.queue(env.REBUILD_QUEUE_URL),
        skipped=partial(
            count_skipped, rebuild.cascade or "", store=store, topic=topic, template=env.NOTIFY_FORMAT
        ),
    )
    metrics.add_metric(f"Rebuild{rebuild.status.value.capitalize()}", MetricUnit.Count, 1)
    if rebuild.outcome:
        metrics.add_metric(f"Outcome{rebuild.outcome.capitalize()}", MetricUnit.Count, 1)
    logger.info(
        "build state",
        extra={"rebuild_id": rebuild.rebuild_id, "status": rebuild.status.value, "released": released},
    )
    return {"status": rebuild.status.value, "rebuild_id": rebuild.rebuild_id}
