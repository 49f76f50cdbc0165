"""Docker Hub webhook: authenticate the URL token, validate, resolve the tag's digest, enqueue."""

from __future__ import annotations

import logging
from http import HTTPStatus

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import WebhookEnv, env_vars
from patchprop.domain.events import DockerHubPush
from patchprop.logic.detect import Seen, check_push, token_matches
from patchprop.web import answer_errors, error_response, json_response, parse_body

MAX_BODY = 64 * 1024
# Their debug logs print the secret (botocore: response bodies) and the token (the router: path
# parameters); keep them above DEBUG whatever the root logger is set to.
for _noisy in ("botocore", "aws_lambda_powertools.event_handler"):
    logging.getLogger(_noisy).setLevel(logging.INFO)

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = answer_errors(APIGatewayRestResolver())


@app.post("/webhooks/dockerhub")  # no token: answered exactly like a wrong one
@app.post("/webhooks/dockerhub/<token>")
def dockerhub(token: str = "") -> Response:
    adapters = wiring.adapters(env_vars(WebhookEnv))
    # Authenticate before looking at the body, so strangers learn nothing from its errors.
    if not token_matches(token, adapters.webhook_tokens):
        metrics.add_metric("WebhookUnauthorized", MetricUnit.Count, 1)
        return error_response(HTTPStatus.UNAUTHORIZED, "unauthorized")
    body = app.current_event.decoded_body or ""
    if len(body.encode()) > MAX_BODY:
        return error_response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
    push = parse_body(DockerHubPush, body)
    if isinstance(push, Response):
        return push
    check = check_push(push, store=adapters.store, registry=adapters.registry, patches=adapters.patch_queue)
    metrics.add_metric(f"Base{check.seen.value.capitalize()}", MetricUnit.Count, 1)
    logger.info(
        "webhook handled", extra={"base": check.base, "seen": check.seen.value, "digest": check.digest}
    )
    answer = {"status": check.seen.value, "base": check.base, "digest": check.digest}
    return json_response(HTTPStatus.ACCEPTED, {**answer, "rebuilding": check.seen is Seen.MOVED})


@logger.inject_lambda_context(log_event=False)  # the event's path holds the token: never log it
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
