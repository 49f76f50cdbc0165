"""EventBridge adapter: put outcome events on a bus; an entry EventBridge refuses is sent again.

PutEvents answers per entry: an accepted entry is delivered, a refused one (FailedEntryCount > 0,
the entry's ErrorCode) is not. Only the refused entries are sent again, so none is doubled;
after ATTEMPTS the put raises and the caller's event is retried (nothing was marked sent).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from patchprop.domain.errors import PatchpropError
from patchprop.domain.outcome_events import SOURCE, OutcomeEvent

ATTEMPTS = 4
MAX_ENTRIES = 10  # PutEvents takes at most 10 entries a call


class AnnounceError(PatchpropError):
    """EventBridge did not take an outcome event (it is sent again on the next delivery)."""


class EventBus:
    """One event bus ("default", or a custom bus by name or ARN)."""

    def __init__(
        self, name: str = "default", client: Any | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.name = name or "default"
        self.client: Any = client or boto3.client("events")
        self.sleep = sleep

    def put(self, event: OutcomeEvent) -> None:
        self.put_all([event])

    def put_all(self, events: Sequence[OutcomeEvent]) -> None:
        for start in range(0, len(events), MAX_ENTRIES):
            self._put([self._entry(e) for e in events[start : start + MAX_ENTRIES]])

    def _entry(self, event: OutcomeEvent) -> dict[str, Any]:
        return {
            "Source": SOURCE,
            "DetailType": event.detail_type,
            "Detail": json.dumps(event.detail, separators=(",", ":"), default=str),
            "Resources": list(event.resources),
            "EventBusName": self.name,
        }

    def _put(self, entries: list[dict[str, Any]]) -> None:
        pending, why = entries, ""
        for attempt in range(ATTEMPTS):
            if attempt:
                self.sleep(min(0.2 * 2**attempt, 2.0))
            try:
                answer = self.client.put_events(Entries=pending)
            except ClientError as exc:
                why = exc.response.get("Error", {}).get("Code", "") or str(exc)
                continue  # nothing of this call was accepted
            except BotoCoreError as exc:
                why = type(exc).__name__
                continue
            if not answer.get("FailedEntryCount"):
                return
            results = answer.get("Entries", [])
            refused = [i for i in range(len(pending)) if not _accepted(results, i)]
            why = ", ".join(sorted({str(_error(results, i)) for i in refused}))
            pending = [pending[i] for i in refused]
            if not pending:
                return
        kinds = ", ".join(e["DetailType"] for e in pending)
        raise AnnounceError(f"EventBridge bus {self.name} refused {len(pending)} event(s) ({kinds}): {why}")


def _accepted(results: list[dict[str, Any]], index: int) -> bool:
    return (
        index < len(results) and bool(results[index].get("EventId")) and not results[index].get("ErrorCode")
    )


def _error(results: list[dict[str, Any]], index: int) -> str:
    return str(results[index].get("ErrorCode") or "no EventId") if index < len(results) else "no answer"
