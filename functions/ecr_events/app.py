"""ECR push events (EventBridge "ECR Image Action"): a tracked base pushed is checked now.

Errors (the registry, the store) fail the invocation: Lambda retries it, then the DLQ.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import EcrEventsEnv, env_vars
from patchprop.domain.ecr_events import EcrImageAction
from patchprop.logic.ecr_push import check_ecr_push

logger = Logger()
tracer = Tracer()
metrics = Metrics()


class EcrImageActionEvent(EventBridgeModel):
    detail: EcrImageAction


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=EcrImageActionEvent)
def handler(event: EcrImageActionEvent, context: LambdaContext) -> dict:
    env = env_vars(EcrEventsEnv)
    adapters = wiring.adapters(env)
    check = check_ecr_push(
        event.detail,
        account=event.account,
        region=event.region,
        store=adapters.store,
        registry=adapters.registry,
        patches=adapters.patch_queue,
        registry_host=env.ECR_REGISTRY_HOST,
        pushed_at=event.time,
    )
    metrics.add_metric(f"EcrPush{check.seen.value.capitalize()}", MetricUnit.Count, 1)
    answer = {"status": check.seen.value, "base": check.base, "digest": check.digest}
    logger.info("ecr push", extra=answer)
    return answer
