"""The registry sends a push event before it moves the tag: the bridge calls the webhook only once the
tag names the pushed digest, so the webhook never reads the old one and calls the push "unchanged"."""

from __future__ import annotations

from typing import Any

import pytest

from patchprop_local import registry_bridge
from patchprop_local.registry_bridge import RegistryBridge

OLD, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def _envelope(digest: str) -> dict[str, Any]:
    target = {
        "repository": "acme/base",
        "tag": "1",
        "digest": digest,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
    }
    return {"events": [{"action": "push", "target": target}]}


def test_the_webhook_is_called_once_the_tag_names_the_pushed_digest() -> None:
    # Given a registry whose tag still names the old digest for the first reads after the event
    reads: list[str] = []

    def tag_digest(repository: str, tag: str) -> str:
        reads.append(f"{repository}:{tag}")
        return OLD if len(reads) < 3 else NEW

    posted: list[tuple[str, int]] = []

    def post(path: str, body: str) -> dict[str, Any]:
        posted.append((path, len(reads)))
        return {"statusCode": 202, "body": "{}"}

    bridge = RegistryBridge("127.0.0.1:5000", "tok", post, lambda *a: None, tag_digest=tag_digest)
    # When the push of NEW is told
    bridge.deliver(_envelope(NEW))
    # Then the webhook was called once, after the tag had moved to NEW
    assert posted == [("/webhooks/dockerhub/tok", 3)]
    assert reads == ["acme/base:1"] * 3


def test_a_tag_moved_on_by_a_newer_push_still_gets_its_webhook_after_the_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a tag that never names the told digest (a newer push moved it on)
    monkeypatch.setattr(registry_bridge, "TAG_WAIT", 0.2)
    posted: list[str] = []
    bridge = RegistryBridge(
        "127.0.0.1:5000",
        "tok",
        lambda path, body: posted.append(path) or {"statusCode": 202, "body": "{}"},
        lambda *a: None,
        tag_digest=lambda repository, tag: NEW,
    )
    # When the older push is told
    bridge.deliver(_envelope(OLD))
    # Then the webhook is still called (it reads the newest digest itself)
    assert posted == ["/webhooks/dockerhub/tok"]
