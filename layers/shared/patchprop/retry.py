"""The one table from errors to retries for queue record handlers (SQS, partial batch failure).

A wait patchprop chose (its cap, a cooldown) sends the message again, delayed, and the record
succeeds, so waits never count towards the DLQ's maxReceiveCount. A wait someone else asked
for (CodeBuild throttling, Slack's 429) fails the record and hides it until then.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel

from patchprop.adapters.slack import SlackRateLimited
from patchprop.domain.errors import BuildThrottled, Deferred
from patchprop.ports import Queue

T = TypeVar("T")
MAX_BACKOFF = 900  # seconds
logger = Logger(child=True)


def backoff(receive_count: int) -> int:
    """Exponential, jittered delay before a throttled rebuild is tried again."""
    return min(MAX_BACKOFF, 10 * 2 ** min(receive_count, 10)) + random.randint(0, 10)  # noqa: S311


@dataclass(frozen=True)
class Retry:
    """When to look again (from the error and the receive count), and how."""

    seconds: Callable[[Any, int], float]
    resend: bool  # True: send again delayed, the record succeeds; False: hide it, the record fails
    metric: Callable[[Exception], str]


SQS_RETRIES: dict[type[Exception], Retry] = {
    Deferred: Retry(lambda exc, _n: exc.seconds, True, lambda exc: f"RebuildDeferred{type(exc).__name__}"),
    BuildThrottled: Retry(lambda _exc, n: backoff(n), False, lambda _exc: "RebuildThrottled"),
    SlackRateLimited: Retry(
        lambda exc, _n: max(1.0, exc.retry_after), False, lambda _exc: "SlackRateLimited"
    ),
}


def retrying(
    record: SqsRecordModel,
    queue: Queue,
    metrics: Metrics,
    call: Callable[[], T],
    message: BaseModel | None = None,
) -> T | None:
    """`call()`, with the errors of SQS_RETRIES turned into retries; None when resent for later."""
    try:
        return call()
    except tuple(SQS_RETRIES) as exc:
        retry = next(r for kind, r in SQS_RETRIES.items() if isinstance(exc, kind))
        delay = math.ceil(retry.seconds(exc, int(record.attributes.ApproximateReceiveCount)))
        metrics.add_metric(retry.metric(exc), MetricUnit.Count, 1)
        logger.warning("retrying later", extra={"error": str(exc), "delay": delay, "resent": retry.resend})
        if retry.resend and message is not None:
            queue.send(message, delay=delay)
            return None
        queue.retry_later(record.receiptHandle, delay)
        raise
