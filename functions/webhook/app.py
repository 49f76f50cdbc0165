"""Docker Hub webhook: authenticate the URL token, validate, resolve the tag's digest, enqueue."""

from __future__ import annotations

import logging
from http import HTTPStatus

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import EnvVars, env_vars, webhook_tokens
from patchprop.domain.errors import InvalidReference, ManifestNotFound, RegistryError, RegistryRateLimited
from patchprop.domain.events import DockerHubPush
from patchprop.logic.detect import Seen, check_push, token_matches
from patchprop.web import error_response, json_response, parse_body

MAX_BODY = 64 * 1024
# Their debug logs print the secret (botocore: response bodies) and the token (the router: path
# parameters); keep them above DEBUG whatever the root logger is set to.
for _noisy in ("botocore", "aws_lambda_powertools.event_handler"):
    logging.getLogger(_noisy).setLevel(logging.INFO)

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver()


class Env(EnvVars):
    TABLE_NAME: str
    PATCH_QUEUE_URL: str
    WEBHOOK_SECRET_ID: str
    REGISTRY_CREDENTIALS_SECRET_ID: str = ""


@app.post("/webhooks/dockerhub")  # no token: answered exactly like a wrong one
@app.post("/webhooks/dockerhub/<token>")
def dockerhub(token: str = "") -> Response:
    env = env_vars(Env)
    # Authenticate before looking at the body, so strangers learn nothing from its errors.
    if not token_matches(token, webhook_tokens(env.WEBHOOK_SECRET_ID)):
        metrics.add_metric("WebhookUnauthorized", MetricUnit.Count, 1)
        return error_response(HTTPStatus.UNAUTHORIZED, "unauthorized")
    body = app.current_event.decoded_body or ""
    if len(body.encode()) > MAX_BODY:
        return error_response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
    parsed = parse_body(DockerHubPush, body)
    if isinstance(parsed, Response):
        return parsed
    try:
        check = check_push(
            parsed,
            store=wiring.store(env.TABLE_NAME),
            registry=wiring.registry(env.REGISTRY_CREDENTIALS_SECRET_ID),
            patches=wiring.queue(env.PATCH_QUEUE_URL),
        )
    except InvalidReference as exc:
        return error_response(HTTPStatus.BAD_REQUEST, str(exc), field="repository.repo_name")
    except ManifestNotFound as exc:
        logger.warning("pushed tag not found in the registry", extra={"error": str(exc)})
        return json_response(HTTPStatus.ACCEPTED, {"status": "ignored", "reason": "tag not found"})
    except RegistryRateLimited as exc:
        # Not accepted, so Docker Hub's delivery history shows it; the poller catches up too.
        logger.warning("registry rate-limited the digest lookup", extra={"error": str(exc)})
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "registry rate-limited; retry later",
            headers={"Retry-After": str(int(exc.retry_after) or 1)},
        )
    except RegistryError as exc:
        logger.warning("registry unavailable for the digest lookup", extra={"error": str(exc)})
        return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "registry unavailable; retry later")
    metrics.add_metric(f"Base{check.seen.value.capitalize()}", MetricUnit.Count, 1)
    logger.info(
        "webhook handled", extra={"base": check.base, "seen": check.seen.value, "digest": check.digest}
    )
    status = HTTPStatus.ACCEPTED
    return json_response(
        status,
        {
            "status": check.seen.value,
            "base": check.base,
            "digest": check.digest,
            "rebuilding": check.seen is Seen.MOVED,
        },
    )


@logger.inject_lambda_context(log_event=False)  # the event's path holds the token: never log it
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
