"""The patch path against moto and a real registry: webhook / poll → plan → rebuild → outcome.

CodeBuild is the in-memory FakeBuilds (moto's CodeBuild ignores environment overrides, so it
cannot show what a build was pinned to); everything else is the real handlers on moto.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest
import requests
from support import FakeBuilds, drain, handler, receive_all, subscribe_outcomes

from patchprop import config, retry, wiring
from patchprop.adapters.dynamodb import Store
from patchprop.adapters.registry import RegistryClient
from patchprop.domain.models import Dependent
from patchprop_local.lambdas import LocalContext, api_event, eventbridge_event, response_json
from patchprop_local.oci import push_image

pytestmark = pytest.mark.integration


@pytest.fixture
def base(local_registry, aws) -> dict[str, Any]:
    """A base image in the real registry with three dependents registered and its digest known."""
    repo = f"acme/golden-{uuid.uuid4().hex[:8]}"
    ref = f"{local_registry.address}/{repo}:1"
    first = push_image(local_registry.address, repo, "1", {"etc/os-release": b"VERSION=1\n"})
    store = Store(aws.refs["PatchpropTable"])
    for name, project in [
        ("app-a", "patchprop-rebuild"),
        ("app-b", "patchprop-rebuild"),
        ("app-c", "team-b-rebuild"),
    ]:
        store.put_dependent(
            Dependent(image=f"acme/{name}:1", project=project, bases=[ref], owner="team-" + name[-1])
        )
    poll()  # learns the current digest as the baseline
    assert store.get_base(ref).digest == first  # type: ignore[union-attr]
    return {"ref": ref, "repo": repo, "first": first, "store": store}


def republish(local_registry, base: dict[str, Any], version: str) -> str:
    return push_image(
        local_registry.address, base["repo"], "1", {"etc/os-release": f"VERSION={version}\n".encode()}
    )


def webhook_token(stack) -> str:
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=stack.refs["WebhookSecret"])
    return json.loads(secret["SecretString"])["current"]


def deliver_webhook(stack, repo_name: str, tag: str, token: str | None = None, body: Any = None) -> dict:
    token = webhook_token(stack) if token is None else token
    payload = (
        body
        if body is not None
        else json.dumps(
            {
                "callback_url": "https://registry.hub.docker.com/u/x/hook/1/",
                "push_data": {"tag": tag, "pushed_at": 1764254400, "pusher": "ci", "images": []},
                "repository": {"repo_name": repo_name, "name": repo_name.rsplit("/", 1)[-1]},
            }
        )
    )
    event = api_event(
        "POST", f"/webhooks/dockerhub/{token}", "/webhooks/dockerhub/{token}", {"token": token}, payload
    )
    return handler("webhook")(event, LocalContext(function_name="webhook"))


def poll() -> dict:
    return handler("poller")({"source": "aws.scheduler", "detail": {}}, LocalContext(function_name="poller"))


def run_pipeline(stack) -> None:
    drain(stack, "PatchQueue", "planner")
    drain(stack, "RebuildQueue", "rebuilder")


def finish_builds(builds: FakeBuilds, status: str = "SUCCEEDED", times: int = 1) -> None:
    """Send the "CodeBuild Build State Change" events CodeBuild would, `times` times each."""
    for build in builds.started:
        detail = {
            "build-status": status,
            "build-id": build["id"],
            "project-name": build["project"],
            "additional-information": {
                "environment": {
                    "environment-variables": [
                        {"name": k, "value": v, "type": "PLAINTEXT"} for k, v in build["env"].items()
                    ]
                },
                "logs": {"deep-link": f"https://logs.example/{build['id']}"},
            },
        }
        for _ in range(times):
            event = eventbridge_event("aws.codebuild", "CodeBuild Build State Change", detail)
            handler("build_events")(event, LocalContext(function_name="build_events"))


def test_one_push_delivered_five_times_starts_exactly_three_builds(aws, builds, local_registry, base):
    # Given a base with 3 dependents, re-published with a new digest
    new = republish(local_registry, base, "2")
    # When Docker Hub delivers the push webhook 5 times
    answers = [deliver_webhook(aws, f"{local_registry.address}/{base['repo']}", "1") for _ in range(5)]
    run_pipeline(aws)
    # Then every delivery is accepted, and exactly 3 builds start, each pinned to the registry's digest
    assert [a["statusCode"] for a in answers] == [202] * 5
    assert response_json(answers[0])["status"] == "moved"
    assert len(builds.started) == 3
    pinned = f"{local_registry.address}/{base['repo']}@{new}"
    assert {b["env"]["BASE_IMAGE"] for b in builds.started} == {pinned}
    assert sorted(b["env"]["TARGET_IMAGE"] for b in builds.started) == [
        "docker.io/acme/app-a:1",
        "docker.io/acme/app-b:1",
        "docker.io/acme/app-c:1",
    ]
    assert base["store"].get_base(base["ref"]).digest == new


def test_poller_finds_a_new_push_with_one_head_per_base_and_takes_the_same_path(
    aws, builds, local_registry, base, monkeypatch
):
    # Given a second tracked base, and the first base re-published in the registry
    other_repo = f"acme/other-{uuid.uuid4().hex[:6]}"
    push_image(local_registry.address, other_repo, "7", {"a": b"1"})
    other = f"{local_registry.address}/{other_repo}:7"
    base["store"].put_dependent(
        Dependent(image="acme/other-app:1", project="patchprop-rebuild", bases=[other])
    )
    poll()  # baseline for the second base
    new = republish(local_registry, base, "3")
    calls: list[tuple[str, str]] = []

    class Counting(requests.Session):
        def request(self, method, url, *args, **kwargs):  # type: ignore[override]
            calls.append((method, url))
            return super().request(method, url, *args, **kwargs)

    monkeypatch.setattr(
        wiring.Adapters, "registry", property(lambda _self: RegistryClient(session=Counting()))
    )
    # When the scheduled poll runs
    result = poll()
    run_pipeline(aws)
    # Then it made one HEAD per tracked base, found the move, and started the 3 rebuilds on it
    assert sorted(calls) == sorted(
        [
            ("HEAD", url)
            for url in (
                f"http://{local_registry.address}/v2/{base['repo']}/manifests/1",
                f"http://{local_registry.address}/v2/{other_repo}/manifests/7",
            )
        ]
    )
    assert (result["bases"], result["moved"], result["unchanged"]) == (2, 1, 1)
    assert len(builds.started) == 3
    assert {b["env"]["BASE_IMAGE_DIGEST"] for b in builds.started} == {new}


def test_every_finished_build_yields_exactly_one_sns_message(aws, builds, local_registry, base, monkeypatch):
    # Given 3 rebuilds started after a push, no scan required, and a queue subscribed to the topic
    monkeypatch.setenv("REQUIRE_SCAN", "false")
    config.env_vars.cache_clear()
    url = subscribe_outcomes(aws)
    new = republish(local_registry, base, "4")
    deliver_webhook(aws, f"{local_registry.address}/{base['repo']}", "1")
    run_pipeline(aws)
    # When CodeBuild reports IN_PROGRESS then SUCCEEDED, each event delivered twice (replays)
    finish_builds(builds, "IN_PROGRESS", times=2)
    finish_builds(builds, "SUCCEEDED", times=2)
    # Then exactly one message per build (not scanned: "succeeded"), with the attributes filter
    # policies match on, and one summary of the patch
    # (and one "base moved" message of the base check, before the rebuilds)
    everything = receive_all(url)
    summaries = [m for m in everything if m["MessageAttributes"]["outcome"]["Value"] == "summary"]
    moved = [m for m in everything if m["MessageAttributes"]["outcome"]["Value"] == "base-moved"]
    messages = [m for m in everything if m not in summaries and m not in moved]
    assert len(messages) == 3 and len(summaries) == 1 and len(moved) == 1
    attributes = sorted(
        (
            m["MessageAttributes"]["image"]["Value"],
            m["MessageAttributes"]["outcome"]["Value"],
            m["MessageAttributes"]["base"]["Value"],
            m["MessageAttributes"]["owner"]["Value"],
        )
        for m in messages
    )
    assert attributes == [(f"docker.io/acme/app-{x}:1", "succeeded", base["ref"], f"team-{x}") for x in "abc"]
    assert all(new in m["Message"] and base["first"] in m["Message"] for m in messages)
    stored = [base["store"].get_rebuild(b["env"]["PATCHPROP_REBUILD_ID"]) for b in builds.started]
    assert {(r.status.value, r.notified) for r in stored} == {("SUCCEEDED", True)}  # type: ignore[union-attr]
    assert all(r.log_url and r.build_id for r in stored)  # type: ignore[union-attr]


def test_throttled_on_half_of_its_calls_every_rebuild_still_starts_exactly_once(
    aws, builds, local_registry, base, monkeypatch
):
    # Given CodeBuild throttling every other StartBuild call, and retries made visible at once
    builds.throttle = lambda n: n % 2 == 1
    monkeypatch.setattr(retry, "backoff", lambda _count: 0)
    republish(local_registry, base, "5")
    # When the push is delivered and the queues drained (redeliveries included)
    deliver_webhook(aws, f"{local_registry.address}/{base['repo']}", "1")
    run_pipeline(aws)
    # Then throttled calls happened, yet each of the 3 rebuilds started exactly once
    assert len(builds.calls) > len(builds.started)
    ids = [b["env"]["PATCHPROP_REBUILD_ID"] for b in builds.started]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert {c["token"] for c in builds.calls} == set(ids)  # the token is the stable rebuild id
    assert _queue_is_empty(aws, "RebuildQueue") and _queue_is_empty(aws, "RebuildDLQ")


def test_redelivered_rebuild_message_after_start_does_not_build_again(aws, builds, local_registry, base):
    # Given a patch already planned and built
    republish(local_registry, base, "6")
    deliver_webhook(aws, f"{local_registry.address}/{base['repo']}", "1")
    drain(aws, "PatchQueue", "planner")
    sqs = boto3.client("sqs")
    bodies = [
        m["Body"]
        for m in sqs.receive_message(
            QueueUrl=aws.refs["RebuildQueue"], MaxNumberOfMessages=10, VisibilityTimeout=0
        )["Messages"]
    ]
    drain(aws, "RebuildQueue", "rebuilder")
    assert len(builds.started) == 3
    # When every rebuild message is delivered again, and the patch message replayed
    for body in bodies:
        sqs.send_message(QueueUrl=aws.refs["RebuildQueue"], MessageBody=body)
    drain(aws, "RebuildQueue", "rebuilder")
    # Then no new build starts
    assert len(builds.started) == 3


def _queue_is_empty(stack, queue: str) -> bool:
    attrs = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.refs[queue],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    )


def test_webhooks_racing_past_the_digest_check_still_plan_once(aws, builds, local_registry, base):
    # Given 5 deliveries that all read the old digest before any recorded the new one
    new = republish(local_registry, base, "7")
    from patchprop.adapters.sqs import Queue
    from patchprop.domain.models import PatchRequest

    patches = Queue(aws.refs["PatchQueue"])
    for _ in range(5):
        patches.send(
            PatchRequest(base=base["ref"], digest=new, previous_digest=base["first"], detected_by="webhook")
        )
    # When the planner and rebuilder drain their queues
    run_pipeline(aws)
    # Then one plan, three builds
    assert len(builds.started) == 3


def test_replanning_a_patch_after_its_idempotency_record_expired_starts_nothing_new(
    aws, builds, local_registry, base
):
    # Given a patch planned and built
    new = republish(local_registry, base, "8")
    deliver_webhook(aws, f"{local_registry.address}/{base['repo']}", "1")
    run_pipeline(aws)
    assert len(builds.started) == 3
    # When the planner's idempotency records are gone (expired) and the same patch arrives again
    dynamodb = boto3.resource("dynamodb")
    table = dynamodb.Table(aws.refs["IdempotencyTable"])
    for item in table.scan()["Items"]:
        table.delete_item(Key={"id": item["id"]})
    from patchprop.adapters.sqs import Queue
    from patchprop.domain.models import PatchRequest

    Queue(aws.refs["PatchQueue"]).send(
        PatchRequest(base=base["ref"], digest=new, previous_digest=base["first"], detected_by="poller")
    )
    run_pipeline(aws)
    # Then the rebuild ids repeat and no second build starts
    assert len(builds.started) == 3
