"""Environment variables and secrets, validated once per container and cached."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import TypeVar

from aws_lambda_powertools.utilities import parameters
from pydantic import BaseModel, ConfigDict

from patchprop.adapters.registry import Credentials, credentials_from_json

SECRET_MAX_AGE = 300  # seconds a fetched secret is reused; rotation takes effect within this
M = TypeVar("M", bound=BaseModel)


class EnvVars(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


@lru_cache
def env_vars(model: type[M]) -> M:
    """The handler's environment, validated against its model (cached per container)."""
    return model.model_validate(dict(os.environ))


def webhook_tokens(secret_id: str) -> tuple[str, ...]:
    """The valid webhook tokens: `current` and, during a rotation, `previous`."""
    raw = parameters.get_secret(secret_id, max_age=SECRET_MAX_AGE)
    data = json.loads(raw if isinstance(raw, str) else raw.decode())
    return tuple(t for t in (data.get("current"), data.get("previous")) if isinstance(t, str) and t)


def slack_webhook_url(secret_id: str) -> str:
    """The Slack incoming webhook URL: the secret's text, or its `url` if it is JSON."""
    raw = parameters.get_secret(secret_id, max_age=SECRET_MAX_AGE)
    text = (raw if isinstance(raw, str) else raw.decode()).strip()
    if text.startswith("{"):
        url = json.loads(text).get("url")
        return url.strip() if isinstance(url, str) else ""
    return text


def registry_credentials(secret_id: str | None) -> dict[str, Credentials]:
    """Registry credentials from Secrets Manager, or none (anonymous pulls)."""
    if not secret_id:
        return {}
    raw = parameters.get_secret(secret_id, max_age=SECRET_MAX_AGE)
    return credentials_from_json(raw if isinstance(raw, str) else raw.decode())
