"""Patch queue consumer: judge the moved base once, then plan one rebuild per dependent, once.

The base check (logic/base_check.py) verifies and diffs the new digest and decides its urgency:
planned now, held for a batch window or a soak (the poller's tick releases it), skipped, or
refused. A released patch comes back `admitted` and is planned without a new check.
"""

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
from patchprop.config import PlannerEnv, env_vars
from patchprop.domain.models import PatchRequest
from patchprop.domain.urgency import parse_base_settings
from patchprop.logic.base_check import admit_patch

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
# One admission per (base, digest) and stage, however many webhooks, polls and redeliveries
# report it: the first sight, its release from a hold, and an owner's --now are each one.
# Back from its check-only scan (base_scanned) is one more: it is checked and planned then; and
# a rollback's patch (rollback_of) is its own, even onto a digest planned before.
idempotency = IdempotencyConfig(
    event_key_jmespath="[base, digest, admitted, force_now, base_scanned, rollback_of]",
    expires_after_seconds=24 * 3600,
)
persistence = wiring.idempotency_store(lambda: env_vars(PlannerEnv).IDEMPOTENCY_TABLE_NAME)


@idempotent_function(data_keyword_argument="patch", config=idempotency, persistence_store=persistence)
def plan(patch: PatchRequest) -> dict:
    env = env_vars(PlannerEnv)
    adapters = wiring.adapters(env)
    admitted = admit_patch(
        patch,
        store=adapters.store,
        rebuild_queue=adapters.rebuild_queue,
        topic=adapters.topic,
        sources=adapters.base_sources,
        settings=parse_base_settings(env.BASE_CHECKS),
        template=env.NOTIFY_FORMAT,
        reports=adapters.reports,  # the dependents' last reports: a fix none of them has is no hurry
        scanner=adapters.base_scanner(env),
    )
    result = admitted.plan
    answer = {
        "patch": str(patch.cascade_id),
        "urgency": admitted.check.urgency,
        "rebuilds": result.rebuilds if result else 0,
        "released": result.released if result else 0,
    }
    logger.info("patch admitted", extra={**answer, "reason": admitted.check.urgency_reason})
    if result and result.unreadable:  # the others were planned; these need re-registering
        logger.error("dependents not planned: their records do not read", extra={"images": result.unreadable})
    return answer


def record_handler(record: PatchRecord) -> dict:
    patch = record.body
    try:
        return plan(patch=patch)
    except Exception as error:
        # The batch processor only lists the record as failed: say which patch, and why, here.
        where = {"base": patch.base, "digest": patch.digest, "error": type(error).__name__}
        logger.exception("patch not planned; SQS redelivers it (then the DLQ)", extra=where)
        metrics.add_metric("PatchNotPlanned", MetricUnit.Count, 1)
        raise


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
