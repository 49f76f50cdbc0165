"""The registry bridge: the local registry's push notifications delivered to the webhook as
Docker Hub pushes, so a rebuilt image that others are built on takes the path of any patched base."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

EVENTS_PATH = "/_local/registry-events"  # where the registry posts its notifications
MANIFEST_TYPES = ("manifest", "index")  # media types of a tag push; layers are blobs

Post = Callable[[str, str], dict[str, Any]]  # (path, body) -> the API Gateway proxy answer
Tell = Callable[[str, dict[str, Any]], None]


class RegistryBridge:
    """Turns each tag push of `registry` (host:port) into a webhook call through `post`."""

    def __init__(self, registry: str, token: str, post: Post, tell: Tell) -> None:
        self.registry = registry
        self.webhook_path = f"/webhooks/dockerhub/{token}"
        self.post = post
        self.tell = tell

    def deliver(self, envelope: dict[str, Any]) -> None:
        """A notification envelope (`{"events": [...]}`) as the registry posts it; ValueError
        when it is not one (the gateway answers 400)."""
        events = envelope.get("events", [])
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise ValueError("events must be a list of objects")
        for event in events:
            target = event.get("target", {})
            if not isinstance(target, dict):
                raise ValueError("events[].target must be an object")
            if event.get("action") != "push" or not target.get("tag"):
                continue
            if not isinstance(target.get("repository"), str) or not isinstance(target["tag"], str):
                raise ValueError("a push's target must name its repository and tag as strings")
            if not any(kind in str(target.get("mediaType", "")) for kind in MANIFEST_TYPES):
                continue
            repository = f"{self.registry}/{target['repository']}"
            body = {
                "push_data": {"tag": target["tag"], "pusher": "local-registry", **pushed_at(event)},
                "repository": {"repo_name": repository},
            }
            answer = self.post(self.webhook_path, json.dumps(body))
            self.tell(
                "push",
                {
                    "image": f"{repository}:{target['tag']}",
                    "digest": target.get("digest"),
                    "status": answer["statusCode"],
                    "answer": json.loads(answer.get("body") or "{}"),
                },
            )


def pushed_at(event: dict[str, Any]) -> dict[str, float]:
    """The push's time as Docker Hub's `pushed_at` (epoch seconds), from the notification's
    `timestamp`; nothing when it has none that reads (then the detection delay is unknown)."""
    try:
        return {"pushed_at": datetime.fromisoformat(str(event["timestamp"])).timestamp()}
    except (KeyError, ValueError):
        return {}
