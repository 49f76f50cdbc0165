"""Slack incoming webhook adapter. The webhook URL is a secret: it is never logged or raised."""

from __future__ import annotations

from typing import Any

import requests

from patchprop.domain.errors import PatchpropError

TIMEOUT = 10.0  # seconds; a Lambda that waits longer only delays every later message
DEFAULT_RETRY_AFTER = 30.0


class SlackError(PatchpropError):
    """Slack did not take the message; retrying may help."""


class SlackRateLimited(SlackError):
    """Slack answered 429: try again after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Slack rate limited the webhook; retry after {retry_after:g}s")
        self.retry_after = retry_after


def retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (Slack sends whole seconds); a default if unreadable."""
    try:
        seconds = float(value) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER
    return seconds if 0 <= seconds <= 12 * 3600 else DEFAULT_RETRY_AFTER


class SlackWebhook:
    """One Slack incoming webhook."""

    def __init__(self, url: str, session: requests.Session | None = None, timeout: float = TIMEOUT) -> None:
        if not url.startswith("https://"):
            raise SlackError("the Slack webhook URL must be an https:// URL")
        self._url = url
        self.session = session or requests.Session()
        self.timeout = timeout

    def __repr__(self) -> str:
        return "SlackWebhook(<url withheld>)"

    def post(self, payload: dict[str, Any]) -> None:
        """Post one message; SlackRateLimited on 429, SlackError on any other failure."""
        try:
            answer = self.session.post(self._url, json=payload, timeout=self.timeout)
        except requests.RequestException as exc:
            # requests' messages name the URL: only the kind of failure goes on.
            raise SlackError(f"Slack could not be reached ({type(exc).__name__})") from None
        if answer.status_code == 429:
            raise SlackRateLimited(retry_after(answer.headers.get("Retry-After")))
        if answer.status_code >= 400:
            raise SlackError(f"Slack answered {answer.status_code}: {answer.text[:200]}")
