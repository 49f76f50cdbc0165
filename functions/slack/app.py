"""Outcome messages to Slack: Block Kit through an incoming webhook, one post a second at most."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import SlackEnv, env_vars
from patchprop.logic.slack import Pacer, post_outcome
from patchprop.retry import retrying

logger = Logger()
tracer = Tracer()
metrics = Metrics()

processor = BatchProcessor(event_type=EventType.SQS, model=SqsRecordModel)
# Per container; with ReservedConcurrentExecutions 1 there is one container at a time.
pacer = Pacer()


def record_handler(record: SqsRecordModel) -> None:
    adapters = wiring.adapters(env_vars(SlackEnv))
    attributes = {name: value.stringValue or "" for name, value in record.messageAttributes.items()}

    def post() -> None:
        post_outcome(
            attributes, record.body, store=adapters.store, webhook=adapters.slack_webhook, pacer=pacer
        )

    retrying(record, adapters.slack_queue, metrics, post)  # Slack's 429: hidden for its Retry-After
    metrics.add_metric("SlackPosted", MetricUnit.Count, 1)
    extra = {"outcome": attributes.get("outcome"), "image": attributes.get("image")}
    logger.info("posted to Slack", extra=extra)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
