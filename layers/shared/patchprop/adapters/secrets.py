"""Secrets Manager through Powertools parameters: cached, so a rotation takes effect within
SECRET_MAX_AGE. The only place that reads patchprop's secrets."""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities import parameters

from patchprop.adapters.registry import Credentials, credentials_from_json

SECRET_MAX_AGE = 300  # seconds a fetched secret is reused; rotation takes effect within this


def _secret(secret_id: str) -> str:
    raw = parameters.get_secret(secret_id, max_age=SECRET_MAX_AGE)
    return raw if isinstance(raw, str) else raw.decode()


def webhook_tokens(secret_id: str) -> tuple[str, ...]:
    """The valid webhook tokens: `current` and, during a rotation, `previous`."""
    data = json.loads(_secret(secret_id))
    return tuple(t for t in (data.get("current"), data.get("previous")) if isinstance(t, str) and t)


def slack_webhook_url(secret_id: str) -> str:
    """The Slack incoming webhook URL: the secret's text, or its `url` if it is JSON."""
    text = _secret(secret_id).strip()
    if text.startswith("{"):
        url = json.loads(text).get("url")
        return url.strip() if isinstance(url, str) else ""
    return text


def registry_credentials(secret_id: str | None) -> dict[str, Credentials]:
    """Registry credentials from Secrets Manager, or none (anonymous pulls)."""
    return credentials_from_json(_secret(secret_id)) if secret_id else {}


def clear_cache() -> None:
    """Forget fetched secrets (a new container, in tests)."""
    parameters.clear_caches()
