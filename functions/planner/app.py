"""Patch queue consumer: plan one rebuild per dependent of the moved base, once per patch."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.parser.types import Json
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import PlannerEnv, env_vars
from patchprop.domain.models import PatchRequest
from patchprop.logic.plan import plan_rebuilds

logger = Logger()
tracer = Tracer()
metrics = Metrics()  # flushes what the store counts (UnreadableDependent)


class PatchRecord(SqsRecordModel):
    body: Json[PatchRequest]


processor = BatchProcessor(
    event_type=EventType.SQS,
    model=PatchRecord,
    # Report every record as failed rather than raise: SQS retries just those, the same way.
    raise_on_entire_batch_failure=False,
)
# One plan per (base, digest), however many webhooks, polls and redeliveries report it.
idempotency = IdempotencyConfig(event_key_jmespath="[base, digest]", expires_after_seconds=24 * 3600)
persistence = wiring.idempotency_store(lambda: env_vars(PlannerEnv).IDEMPOTENCY_TABLE_NAME)


@idempotent_function(data_keyword_argument="patch", config=idempotency, persistence_store=persistence)
def plan(patch: PatchRequest) -> dict:
    adapters = wiring.adapters(env_vars(PlannerEnv))
    result = plan_rebuilds(patch, store=adapters.store, rebuild_queue=adapters.rebuild_queue)
    answer = {"patch": result.patch_id, "rebuilds": result.rebuilds, "released": result.released}
    logger.info("patch planned", extra={**answer, "skipped": result.skipped})
    if result.unreadable:  # the others were planned; these need re-registering
        logger.error("dependents not planned: their records do not read", extra={"images": result.unreadable})
    return answer


def record_handler(record: PatchRecord) -> dict:
    return plan(patch=record.body)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
