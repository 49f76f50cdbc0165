"""Patch queue consumer: plan one rebuild per dependent of the moved base, once per patch."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.idempotency import (
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.parser.types import Json
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import EnvVars, env_vars
from patchprop.domain.models import PatchRequest
from patchprop.logic.plan import plan_rebuilds

logger = Logger()
tracer = Tracer()


class Env(EnvVars):
    TABLE_NAME: str
    REBUILD_QUEUE_URL: str
    IDEMPOTENCY_TABLE_NAME: str


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


def record_handler(record: PatchRecord) -> dict:
    env = env_vars(Env)

    @idempotent_function(
        data_keyword_argument="patch",
        config=idempotency,
        persistence_store=wiring.idempotency_store(env.IDEMPOTENCY_TABLE_NAME, "planner"),
    )
    def plan(patch: PatchRequest) -> dict:
        result = plan_rebuilds(
            patch, store=wiring.store(env.TABLE_NAME), rebuild_queue=wiring.queue(env.REBUILD_QUEUE_URL)
        )
        logger.info(
            "patch planned",
            extra={
                "patch": result.patch_id,
                "rebuilds": result.rebuilds,
                "released": result.released,
                "skipped": result.skipped,
            },
        )
        return {"patch": result.patch_id, "rebuilds": result.rebuilds, "released": result.released}

    return plan(patch=record.body)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
