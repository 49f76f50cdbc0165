"""Outcomes to Slack: each message re-rendered as Block Kit, one post a second at most.

The SNS message is written for email or Amazon Q; the Slack function renders the same alert as
Block Kit instead, read back by the `rebuild_id` (or, for a summary, `base` and `base_digest`)
message attribute.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from patchprop.domain.alerts import block_kit, summary_block_kit
from patchprop.logic.alerts import alert_for, patch_summary
from patchprop.ports import ChatWebhook, Store

FALLBACK_CHARS = 3000  # a plain message longer than one Slack section is cut


class Pacer:
    """At most one call per `interval` seconds: `wait()` sleeps the remainder, `done()` marks."""

    def __init__(
        self,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.sleep = sleep
        self._last: float | None = None

    def wait(self) -> None:
        if self._last is not None:
            remaining = self.interval - (self.clock() - self._last)
            if remaining > 0:
                self.sleep(remaining)

    def done(self) -> None:
        self._last = self.clock()


def slack_message(attributes: Mapping[str, str], body: str, *, store: Store) -> dict[str, Any]:
    """The Block Kit message for one outcome message; its own text when it cannot be re-rendered."""
    if attributes.get("outcome") == "summary":
        patch = store.get_patch(attributes.get("base", ""), attributes.get("base_digest", ""))
        if patch is not None:
            return summary_block_kit(patch_summary(patch))
    rebuild_id = attributes.get("rebuild_id")
    rebuild = store.get_rebuild(rebuild_id) if rebuild_id else None
    if rebuild is not None and rebuild.status.final:
        return block_kit(alert_for(rebuild, store=store))
    text = body if len(body) <= FALLBACK_CHARS else body[: FALLBACK_CHARS - 1] + "…"
    return {"text": text}


def post_outcome(
    attributes: Mapping[str, str], body: str, *, store: Store, webhook: ChatWebhook, pacer: Pacer
) -> None:
    """Post one outcome message to Slack, no sooner than a second after the last post."""
    payload = slack_message(attributes, body, store=store)
    pacer.wait()
    try:
        webhook.post(payload)
    finally:
        pacer.done()
