"""Outcome messages to Slack: Block Kit through an incoming webhook, one post a second at most."""

from __future__ import annotations

import math

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.adapters.slack import SlackRateLimited
from patchprop.config import SlackEnv, env_vars
from patchprop.logic.slack import Pacer, post_outcome

logger = Logger()
tracer = Tracer()
metrics = Metrics()

processor = BatchProcessor(event_type=EventType.SQS, model=SqsRecordModel)
# Per container; with ReservedConcurrentExecutions 1 there is one container at a time.
pacer = Pacer()


def record_handler(record: SqsRecordModel) -> None:
    adapters = wiring.adapters(env_vars(SlackEnv))
    attributes = {name: value.stringValue or "" for name, value in record.messageAttributes.items()}
    try:
        post_outcome(
            attributes, record.body, store=adapters.store, webhook=adapters.slack_webhook, pacer=pacer
        )
    except SlackRateLimited as exc:
        # Fail the record and keep it out of sight until Slack's Retry-After has passed.
        delay = max(1, math.ceil(exc.retry_after))
        adapters.slack_queue.retry_later(record.receiptHandle, delay)
        logger.warning("Slack rate limited; retrying later", extra={"delay": delay})
        metrics.add_metric("SlackRateLimited", MetricUnit.Count, 1)
        raise
    metrics.add_metric("SlackPosted", MetricUnit.Count, 1)
    logger.info(
        "posted to Slack", extra={"outcome": attributes.get("outcome"), "image": attributes.get("image")}
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
