"""The registry bridge: the local registry's push notifications delivered to the webhook as
Docker Hub pushes, so a rebuilt image that others are built on takes the path of any patched base."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from typing import Any

EVENTS_PATH = "/_local/registry-events"  # where the registry posts its notifications
MANIFEST_TYPES = ("manifest", "index")  # media types of a tag push; layers are blobs

Post = Callable[[str, str], dict[str, Any]]  # (path, body) -> the API Gateway proxy answer
Tell = Callable[[str, dict[str, Any]], None]
TagDigest = Callable[[str, str], str | None]  # (repository, tag) -> the digest the tag names now
TAG_WAIT = 10.0  # seconds a push's tag may take to name the pushed digest
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def registry_tag_digest(registry: str) -> TagDigest:
    """HEAD of the tag on the local registry (plain HTTP): its Docker-Content-Digest, None if unknown."""
    host, _, port = registry.rpartition(":")

    def tag_digest(repository: str, tag: str) -> str | None:
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            conn.request("HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": ACCEPT})
            answer = conn.getresponse()
            answer.read()
            return answer.getheader("Docker-Content-Digest") if answer.status == 200 else None
        except OSError:
            return None
        finally:
            conn.close()

    return tag_digest


class RegistryBridge:
    """Turns each tag push of `registry` (host:port) into a webhook call through `post`."""

    def __init__(
        self, registry: str, token: str, post: Post, tell: Tell, tag_digest: TagDigest | None = None
    ) -> None:
        self.registry = registry
        self.tag_digest = tag_digest or registry_tag_digest(registry)
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
            self._await_tag(target["repository"], target["tag"], target.get("digest"))
            repository = f"{self.registry}/{target['repository']}"
            body = {
                "push_data": {"tag": target["tag"], "pusher": "local-registry"},
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

    def _await_tag(self, repository: str, tag: str, digest: Any) -> None:
        """Until the tag names the pushed digest (or TAG_WAIT passes: a newer push moved it on).

        distribution sends the push event when the manifest is stored, before it moves the tag: a
        webhook that resolved the tag at once could read the old digest ("unchanged") and the push
        was missed; on a loaded machine it did (a cascade that never started).
        """
        deadline = time.monotonic() + TAG_WAIT
        while isinstance(digest, str) and self.tag_digest(repository, tag) != digest:
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)  # the registry's tag write, microseconds to milliseconds behind
