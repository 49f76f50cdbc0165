"""What the report needs is recorded where the records are written: the push time a webhook
carries, the findings a judged rebuild fixed, blocked and left open."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fakes import FakeQueue, FakeRegistry, InMemoryStore

from patchprop.domain.events import DockerHubPush
from patchprop.domain.findings import Finding, Severity
from patchprop.domain.fleet import finding_counts
from patchprop.domain.gate import GateResult
from patchprop.domain.models import Base, PatchRequest
from patchprop.logic.detect import check_push
from patchprop_local.registry_bridge import RegistryBridge

BASE = "docker.io/library/node:22"
D0, D1 = "sha256:" + "0" * 64, "sha256:" + "1" * 64


def test_a_webhooks_push_time_goes_on_the_patch() -> None:
    store = InMemoryStore()
    store.bases[BASE] = Base(ref=BASE, digest=D0)
    push = DockerHubPush.model_validate(
        {"push_data": {"tag": "22", "pushed_at": 1_796_000_000}, "repository": {"repo_name": "library/node"}}
    )
    patches = FakeQueue()
    check_push(push, store=store, registry=FakeRegistry({BASE: D1}), patches=patches)
    (patch,) = patches.messages
    assert isinstance(patch, PatchRequest)
    assert patch.pushed_at == datetime.fromtimestamp(1_796_000_000, UTC)


def test_the_local_registrys_notification_time_is_the_pushed_at() -> None:
    posted: list[dict] = []
    bridge = RegistryBridge(
        "127.0.0.1:5000",
        "t",
        lambda _path, body: (posted.append(json.loads(body)), {"statusCode": 202, "body": "{}"})[1],
        lambda *_: None,
    )
    target = {
        "repository": "acme/base",
        "tag": "1",
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
    }
    event = {"action": "push", "target": target, "timestamp": "2026-12-02T06:25:54.123456789Z"}
    bridge.deliver({"events": [event, {**event, "timestamp": "not a time"}]})
    assert posted[0]["push_data"]["pushed_at"] == datetime(2026, 12, 2, 6, 25, 54, 123456, UTC).timestamp()
    assert "pushed_at" not in posted[1]["push_data"]


def finding(cve: str, severity: Severity) -> Finding:
    return Finding(id=cve, package="openssl", version="1", severity=severity)


def test_a_judged_rebuild_records_its_finding_counts_and_an_unjudged_one_none() -> None:
    result = GateResult(
        outcome="blocked",
        reasons=[],
        fixed=[finding("CVE-1", Severity.HIGH), finding("CVE-2", Severity.HIGH)],
        still_present=[finding("CVE-3", Severity.LOW)],
        new_own=[finding("CVE-4", Severity.CRITICAL)],
        blocking=[finding("CVE-4", Severity.CRITICAL)],
    )
    counts = finding_counts(result)
    assert counts["fixed_findings"]["HIGH"] == 2 and sum(counts["fixed_findings"].values()) == 2
    assert counts["blocking_findings"]["CRITICAL"] == 1
    assert counts["open_findings"]["CRITICAL"] == 1 and counts["open_findings"]["LOW"] == 1
    assert finding_counts(GateResult.failed("no report")) == {} and finding_counts(None) == {}
