"""The registry bridge: the local registry's push notifications delivered to the webhook as
Docker Hub pushes, so a rebuilt image that others are built on takes the path of any patched base.

Repositories configured as ECR-like (PATCHPROP_LOCAL_ECR_REPOSITORIES, names or fnmatch patterns)
are told as Amazon ECR tells them instead: an "ECR Image Action" event put on EventBridge, which
the template's rule hands to the ecr-events function."""

from __future__ import annotations

import fnmatch
import http.client
import json
import os
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

EVENTS_PATH = "/_local/registry-events"  # where the registry posts its notifications
MANIFEST_TYPES = ("manifest", "index")  # media types of a tag push; layers are blobs

Post = Callable[[str, str], dict[str, Any]]  # (path, body) -> the API Gateway proxy answer
Tell = Callable[[str, dict[str, Any]], None]
PutEvent = Callable[[dict[str, Any]], None]  # an "ECR Image Action" detail -> EventBridge
ECR_REPOSITORIES_VAR = "PATCHPROP_LOCAL_ECR_REPOSITORIES"


def ecr_env(registry: Any) -> dict[str, str]:
    """What the functions need to find ECR-like repositories in the local registry."""
    return {"ECR_REGISTRY_HOST": registry.address}


def ecr_patterns(text: str) -> tuple[str, ...]:
    """The ECR-like repositories of PATCHPROP_LOCAL_ECR_REPOSITORIES (comma separated)."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


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
        self,
        registry: str,
        token: str,
        post: Post,
        tell: Tell,
        ecr_like: Iterable[str] = (),
        put_event: PutEvent | None = None,
        tag_digest: TagDigest | None = None,
    ) -> None:
        self.registry = registry
        self.tag_digest = tag_digest or registry_tag_digest(registry)
        self.webhook_path = f"/webhooks/dockerhub/{token}"
        self.post = post
        self.tell = tell
        self.ecr_like = tuple(ecr_like)
        self.put_event = put_event

    @classmethod
    def of(
        cls, registry: str, token: str, post: Post, tell: Tell, env: dict[str, str], aws: Any
    ) -> RegistryBridge:
        """The local stack's bridge: ECR-like repositories from `env`, their events on `aws`'s EventBridge."""

        def put_event(detail: dict[str, Any]) -> None:
            entry = {"Source": "aws.ecr", "DetailType": "ECR Image Action", "Detail": json.dumps(detail)}
            answer = aws.client("events").put_events(Entries=[entry])
            if answer.get("FailedEntryCount"):
                raise RuntimeError(f"EventBridge refused the ECR push event: {answer['Entries']}")

        patterns = env.get(ECR_REPOSITORIES_VAR) or os.environ.get(ECR_REPOSITORIES_VAR, "")
        return cls(registry, token, post, tell, ecr_patterns(patterns), put_event)

    def is_ecr_like(self, repository: str) -> bool:
        return self.put_event is not None and any(fnmatch.fnmatchcase(repository, p) for p in self.ecr_like)

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
            if self.is_ecr_like(target["repository"]):
                self._tell_as_ecr(target)
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

    def _tell_as_ecr(self, target: dict[str, Any]) -> None:
        """The push as ECR announces it (EventBridge's "ECR Image Action", PUSH, SUCCESS)."""
        detail = {
            "result": "SUCCESS",
            "repository-name": target["repository"],
            "image-digest": target.get("digest"),
            "action-type": "PUSH",
            "image-tag": target["tag"],
        }
        assert self.put_event is not None
        self.put_event(detail)
        self.tell("ecr-push", {"image": f"{self.registry}/{target['repository']}:{target['tag']}", **detail})

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


def pushed_at(event: dict[str, Any]) -> dict[str, float]:
    """The push's time as Docker Hub's `pushed_at` (epoch seconds), from the notification's
    `timestamp`; nothing when it has none that reads (then the detection delay is unknown)."""
    try:
        return {"pushed_at": datetime.fromisoformat(str(event["timestamp"])).timestamp()}
    except (KeyError, ValueError):
        return {}
