"""HTTP answers for the webhook and the management API: JSON bodies, errors that name the field,
and the one table mapping patchprop's errors to HTTP answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import BaseModel, ValidationError

from patchprop.domain.errors import (
    InvalidQuery,
    InvalidReference,
    LimitExceeded,
    ManifestNotFound,
    NotFound,
    NotPromotable,
    RegistryError,
    RegistryRateLimited,
    StoreError,
)
from patchprop.domain.validation import problems
from patchprop.logic.catalog import CycleError, InvalidChanges, ProjectNotAllowed

M = TypeVar("M", bound=BaseModel)
logger = Logger(child=True)


def json_response(
    status: HTTPStatus, body: Mapping[str, Any], headers: dict[str, str] | None = None
) -> Response:
    return Response(
        status_code=int(status), content_type="application/json", body=json.dumps(body), headers=headers or {}
    )


def error_response(
    status: HTTPStatus, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return json_response(status, body, headers)


def invalid(errors: ValidationError | Iterable[Mapping[str, Any]]) -> Response:
    """400 naming the first bad field, with every problem under `details`."""
    details = problems(errors) or [{"field": "body", "error": "invalid request"}]
    first = details[0]
    body = {"error": f"{first['field']}: {first['error']}", "field": first["field"], "details": details}
    return json_response(HTTPStatus.BAD_REQUEST, body)


def parse_body(model: type[M], body: str) -> M | Response:
    """The body as `model`, or a 400 naming the first bad field."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        return error_response(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}")
    if not isinstance(data, dict):
        return error_response(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return invalid(exc)


def _rate_limited(exc: Exception) -> Response:
    # Not accepted, so Docker Hub's delivery history shows it; the poller catches up too.
    logger.warning("registry rate-limited the digest lookup", extra={"error": str(exc)})
    seconds = int(getattr(exc, "retry_after", 1)) or 1
    return error_response(
        HTTPStatus.SERVICE_UNAVAILABLE,
        "registry rate-limited; retry later",
        headers={"Retry-After": str(seconds)},
    )


def _registry_down(exc: Exception) -> Response:
    logger.warning("registry unavailable for the digest lookup", extra={"error": str(exc)})
    return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "registry unavailable; retry later")


def _tag_not_found(exc: Exception) -> Response:
    logger.warning("pushed tag not found in the registry", extra={"error": str(exc)})
    return json_response(HTTPStatus.ACCEPTED, {"status": "ignored", "reason": "tag not found"})


def _store_down(exc: Exception) -> Response:
    logger.exception("table unavailable")
    return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "table unavailable; retry later")


def _said(status: HTTPStatus, field: str | None = None) -> Callable[[Exception], Response]:
    return lambda exc: error_response(status, str(exc), field=getattr(exc, "field", None) or field)


# The most specific class first matters not: Powertools picks the handler along the exception's MRO.
HTTP_ERRORS: dict[type[Exception], Callable[[Exception], Response]] = {
    RequestValidationError: lambda exc: invalid(exc.errors()),  # type: ignore[attr-defined]
    InvalidChanges: lambda exc: invalid(exc.errors),  # type: ignore[attr-defined]
    InvalidReference: _said(HTTPStatus.BAD_REQUEST),
    InvalidQuery: _said(HTTPStatus.BAD_REQUEST),
    NotFound: _said(HTTPStatus.NOT_FOUND),
    NotPromotable: _said(HTTPStatus.CONFLICT),
    # Not 503: a client that retries on 503 would retry what can never pass.
    LimitExceeded: _said(HTTPStatus.BAD_REQUEST, field="body"),
    CycleError: _said(HTTPStatus.CONFLICT, field="bases"),
    ProjectNotAllowed: _said(HTTPStatus.FORBIDDEN, field="project"),
    ManifestNotFound: _tag_not_found,
    RegistryRateLimited: _rate_limited,
    RegistryError: _registry_down,
    StoreError: _store_down,
}


def answer_errors(app: APIGatewayRestResolver) -> APIGatewayRestResolver:
    """Register HTTP_ERRORS on a resolver."""
    for kind, answer in HTTP_ERRORS.items():
        app.exception_handler(kind)(answer)
    return app


def refuse_unknown_input(app: APIGatewayRestResolver, next_middleware: Callable[..., Response]) -> Response:
    """The management API's middleware: a 400 naming it for a query parameter the route does not
    take (a typo such as `?imgae=` would otherwise be ignored and answer for every image), and
    for a JSON body that is not an object where the route takes one (`[1]` would read as `{}`)."""
    route = app.context.get("_route")
    if route is None:
        return next_middleware(app)
    known = {param.alias for param in route.dependant.query_params}
    unknown = sorted(set(app.current_event.query_string_parameters or {}) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        return error_response(
            HTTPStatus.BAD_REQUEST,
            f"unknown query parameter {unknown[0]!r} (this route takes: {takes})",
            unknown[0],
        )
    body = app.current_event.body
    if route.dependant.body_params and body and body.strip() and not body.lstrip().startswith("{"):
        return error_response(HTTPStatus.BAD_REQUEST, "body must be a JSON object", field="body")
    return next_middleware(app)


# ---- the management API's OpenAPI response shapes and its JSON answers ----------------------


class FieldError(BaseModel):
    field: str
    error: str


class ErrorBody(BaseModel):
    error: str
    field: str | None = None
    details: list[FieldError] | None = None


def error_responses(*codes: HTTPStatus) -> dict[int, OpenAPIResponse]:
    return {
        int(code): {"description": code.phrase, "content": {"application/json": {"model": ErrorBody}}}
        for code in codes
    }


def ok_response(
    model: type[BaseModel], description: str, code: HTTPStatus = HTTPStatus.OK
) -> dict[int, OpenAPIResponse]:
    return {int(code): {"description": description, "content": {"application/json": {"model": model}}}}


def json_answer(status: HTTPStatus, model: M) -> Response[M]:
    return Response(status_code=int(status), content_type="application/json", body=model)


def caller(app: APIGatewayRestResolver | Router) -> str:
    """Who called: the IAM principal API Gateway authenticated (AWS_IAM), "local" without one."""
    identity = APIGatewayProxyEvent(app.current_event.raw_event).request_context.identity
    return identity.user_arn or identity.caller or identity.user or "local"
