"""Rebuild queue consumer: start each rebuild on CodeBuild exactly once; throttled → retry later."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.parser.types import Json
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import RebuilderEnv, env_vars
from patchprop.domain.models import RebuildRequest
from patchprop.logic.conclude import conclude
from patchprop.logic.start import start_rebuild
from patchprop.retry import retrying

logger = Logger()
tracer = Tracer()
metrics = Metrics()


class RebuildRecord(SqsRecordModel):
    body: Json[RebuildRequest]


processor = BatchProcessor(
    event_type=EventType.SQS,
    model=RebuildRecord,
    # Report every record as failed rather than raise: SQS retries just those, the same way.
    raise_on_entire_batch_failure=False,
)
# Two deliveries of one rebuild at once: the second waits (fails, retried) instead of racing.
idempotency = IdempotencyConfig(event_key_jmespath="rebuild_id", expires_after_seconds=7 * 24 * 3600)
persistence = wiring.idempotency_store(lambda: env_vars(RebuilderEnv).IDEMPOTENCY_TABLE_NAME)


@idempotent_function(data_keyword_argument="request", config=idempotency, persistence_store=persistence)
def start(request: RebuildRequest) -> dict:
    env = env_vars(RebuilderEnv)
    adapters = wiring.adapters(env)
    rebuild = start_rebuild(
        request,
        store=adapters.store,
        builds=adapters.builds,
        allowed_projects=env.projects,
        cap=env.BUILD_CONCURRENCY_CAP,
        cap_wait=env.CAP_WAIT_SECONDS,
        tag_mover=adapters.tag_mover,
        rebaser=adapters.rebaser,
        on_released=lambda n: metrics.add_metric("BuildSlotsReleased", MetricUnit.Count, n),
    )
    if rebuild is None:
        return {"rebuild_id": request.rebuild_id, "status": "SUPERSEDED", "build_id": None}
    # Only if it never started: say so, and block what waits on it in its cascade.
    conclude(
        rebuild,
        store=adapters.store,
        topic=adapters.topic,
        rebuild_queue=adapters.rebuild_queue,
        template=env.NOTIFY_FORMAT,
        bus=adapters.bus,
    )
    return {"rebuild_id": rebuild.rebuild_id, "status": rebuild.status.value, "build_id": rebuild.build_id}


def record_handler(record: RebuildRecord) -> dict:
    queue = wiring.adapters(env_vars(RebuilderEnv)).rebuild_queue
    again = record.body.model_copy(update={"waits": record.body.waits + 1})  # sent again to wait
    result = retrying(record, queue, metrics, lambda: start(request=record.body), message=again)
    if result is None:  # waiting for the cap or a cooldown: sent again, delayed
        return {"rebuild_id": record.body.rebuild_id, "status": "WAITING", "build_id": None}
    logger.info("rebuild", extra=result)
    return result


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
