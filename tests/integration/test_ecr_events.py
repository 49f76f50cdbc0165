"""ECR push events: "ECR Image Action" through moto's EventBridge with the template's own rule
into the ecr-events handler, on the webhook's "base moved" path.

ECR_REGISTRY_HOST points the ECR repositories at the local registry (as `patchprop local` does),
so the tag's digest is resolved for real.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from support import handler, queue_bodies

from patchprop import config
from patchprop.adapters.dynamodb import Store
from patchprop.domain.models import Dependent
from patchprop_local.lambdas import LocalContext
from patchprop_local.oci import push_image
from patchprop_local.provision import queue_arn

pytestmark = pytest.mark.integration
ACCOUNT = "123456789012"


@pytest.fixture
def ecr_rule(aws, local_registry, monkeypatch: pytest.MonkeyPatch) -> str:
    """The template's ImagePush rule in moto's EventBridge, delivering to a queue; its URL."""
    monkeypatch.setenv("ECR_REGISTRY_HOST", local_registry.address)
    config.env_vars.cache_clear()
    (pattern,) = [p["Pattern"] for fn, p in aws.events("EventBridgeRule") if fn == "EcrEventsFunction"]
    sqs, events = boto3.client("sqs"), boto3.client("events")
    url = sqs.create_queue(QueueName=f"ecr-rule-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    events.put_rule(Name="ecr-push", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="ecr-push", Targets=[{"Id": "q", "Arn": queue_arn(sqs, url)}])
    return url


def push_event(repository: str, tag: str | None, digest: str) -> None:
    detail: dict[str, Any] = {
        "result": "SUCCESS",
        "repository-name": repository,
        "image-digest": digest,
        "action-type": "PUSH",
        **({"image-tag": tag} if tag else {}),
    }
    entry = {"Source": "aws.ecr", "DetailType": "ECR Image Action", "Detail": json.dumps(detail)}
    boto3.client("events").put_events(Entries=[entry])


def delivered(url: str) -> list[dict[str, Any]]:
    """Hand what the rule matched to the handler, as EventBridge would; the answers."""
    answers = []
    for event in queue_bodies_of(url):
        event.setdefault("account", ACCOUNT)
        answers.append(handler("ecr_events")(event, LocalContext(function_name="ecr_events")))
    return answers


def queue_bodies_of(url: str) -> list[dict[str, Any]]:
    sqs, found = boto3.client("sqs"), []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        found += [json.loads(m["Body"]) for m in got]
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return found


def tracked_golden(aws, registry: str) -> tuple[str, str, str]:
    """A golden image in an ECR-shaped repository, tracked at its first digest; (repo, ref, digest)."""
    repo = f"acme/golden-{uuid.uuid4().hex[:6]}"
    first = push_image(registry, repo, "1", {"os": b"v1"})
    ref = f"{registry}/{repo}:1"
    store = Store(aws.refs["PatchpropTable"])
    store.put_dependent(Dependent(image="acme/app:1", project="patchprop-rebuild", bases=[ref]))
    store.record_digest(ref, None, first)
    return repo, ref, first


def test_a_push_by_someone_else_moves_the_base_once_whatever_the_duplicates(aws, local_registry, ecr_rule):
    repo, ref, first = tracked_golden(aws, local_registry.address)
    # When someone else re-publishes the tag and ECR announces it (twice: a duplicate)
    second = push_image(local_registry.address, repo, "1", {"os": b"v2"})
    push_event(repo, "1", second)
    push_event(repo, "1", second)
    answers = delivered(ecr_rule)
    # Then one patch first -> second is enqueued, and the duplicate finds it unchanged
    assert [a["status"] for a in answers] == ["moved", "unchanged"]
    (patch,) = queue_bodies(aws, "PatchQueue")
    assert (patch["base"], patch["previous_digest"], patch["digest"]) == (ref, first, second)
    # ... detected by the ECR event (its own row in the report), pushed at the event's time
    assert patch["detected_by"] == "ecr"
    pushed, detected = (datetime.fromisoformat(patch[k]) for k in ("pushed_at", "detected_at"))
    assert detected - timedelta(minutes=1) < pushed <= detected
    assert Store(aws.refs["PatchpropTable"]).get_base(ref).digest == second


def test_untracked_repositories_and_untagged_pushes_write_and_enqueue_nothing(aws, local_registry, ecr_rule):
    push_event("acme/nobody-builds-on-it", "1", "sha256:" + "2" * 64)
    push_event("acme/also-untracked", None, "sha256:" + "3" * 64)  # a platform manifest, no tag
    answers = delivered(ecr_rule)
    assert [a["status"] for a in answers] == ["untracked", "untracked"]
    assert queue_bodies(aws, "PatchQueue") == []
    assert list(Store(aws.refs["PatchpropTable"]).list_bases()) == []


def test_a_tag_patchprop_promoted_itself_is_not_a_new_patch(aws, local_registry, ecr_rule):
    repo, ref, first = tracked_golden(aws, local_registry.address)
    ours = push_image(local_registry.address, repo, "1", {"os": b"rebuilt"})
    # Given patchprop's cascade recorded the digest it promoted (logic/conclude.py) ...
    Store(aws.refs["PatchpropTable"]).record_digest(ref, first, ours)
    # When ECR announces that push
    push_event(repo, "1", ours)
    # Then nothing is patched again
    assert [a["status"] for a in delivered(ecr_rule)] == ["unchanged"]
    assert queue_bodies(aws, "PatchQueue") == []


def test_the_rule_takes_only_successful_pushes_of_this_account(aws, ecr_rule):
    events = boto3.client("events")
    failed = {"result": "FAILURE", "repository-name": "acme/x", "action-type": "PUSH", "image-tag": "1"}
    deleted = {"result": "SUCCESS", "repository-name": "acme/x", "action-type": "DELETE", "image-tag": "1"}
    for detail in (failed, deleted):
        entry = {"Source": "aws.ecr", "DetailType": "ECR Image Action", "Detail": json.dumps(detail)}
        events.put_events(Entries=[entry])
    assert queue_bodies_of(ecr_rule) == []
    (pattern,) = [p["Pattern"] for fn, p in aws.events("EventBridgeRule") if fn == "EcrEventsFunction"]
    assert pattern["account"] == [ACCOUNT]  # the stack's account (moto's events are all in it)


def test_the_sample_event_is_accepted(aws):
    from support import sample_event

    answer = handler("ecr_events")(sample_event("ecr_image_push.json"), LocalContext())
    assert answer["status"] == "untracked"
