"""HTTP answers shared by the API handlers: JSON bodies, errors that name the field."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def json_response(
    status: HTTPStatus, body: dict[str, Any], headers: dict[str, str] | None = None
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
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        details = [{"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]} for e in exc.errors()]
        return json_response(
            HTTPStatus.BAD_REQUEST, {"error": f"{field}: {first['msg']}", "field": field, "details": details}
        )
