"""Outcome events on EventBridge: one per verdict, matched by the README's example rule through
moto's EventBridge -> SQS, and sent again (never twice) when EventBridge refuses an entry."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from support import FakeBuilds, drain, handler, receive_all

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.eventbridge import AnnounceError, EventBus
from patchprop.adapters.sqs import Queue
from patchprop.domain.models import Dependent, PatchRequest, RebuildRequest
from patchprop.domain.outcome_events import IMAGE_PROMOTED, OutcomeEvent
from patchprop_local.lambdas import LocalContext, eventbridge_event
from patchprop_local.provision import queue_arn

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
GATE = Path(__file__).resolve().parents[1] / "data" / "scan" / "gate"
BASE = "docker.io/acme/golden:1"
IMAGE = "docker.io/acme/app:1"
CANDIDATE = "sha256:" + "e" * 64


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64


def readme_rule_pattern() -> dict[str, Any]:
    """The pattern of the README's example rule (the json block after its marker)."""
    found = re.search(r"<!-- outcome-rule-pattern -->\n```json\n(.*?)```", README.read_text(), re.S)
    assert found, "README.md: the example rule's pattern is missing"
    return dict(json.loads(found.group(1)))


def rule_queue(pattern: dict[str, Any]) -> str:
    """A queue receiving what a rule with `pattern` on the default bus matches."""
    sqs, events = (
        boto3.client("sqs", region_name="us-east-1"),
        boto3.client("events", region_name="us-east-1"),
    )
    name = f"rule-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    events.put_rule(Name=name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": queue_arn(sqs, url)}])
    return url


def promoted_rebuild(stack, builds: FakeBuilds) -> tuple[RebuildRequest, dict[str, Any]]:
    """A patch of BASE planned for IMAGE, started, and its SUCCEEDED state change (clean report)."""
    store = Store(stack.refs["PatchpropTable"])
    patch = PatchRequest(base=BASE, digest=digest(2), previous_digest=digest(1), detected_by="webhook")
    dependent = Dependent(image=IMAGE, project="patchprop-rebuild", bases=[BASE], owner="team-a")
    store.put_dependent(dependent)
    request = RebuildRequest.for_dependent(dependent, patch)
    store.record_patch(patch, rebuilds=1)
    Queue(stack.refs["RebuildQueue"]).send(request)
    drain(stack, "RebuildQueue", "rebuilder")
    (build,) = builds.started
    report = (GATE / "previous.trivy.json").as_uri()
    builds.results[build["id"]] = {
        "image": IMAGE,
        "digest": CANDIDATE,
        "report": report,
        "base_report": report,
    }
    detail = {
        "build-status": "SUCCEEDED",
        "build-id": f"arn:aws:codebuild:us-east-1:123456789012:build/{build['id']}",
        "project-name": build["project"],
        "additional-information": {
            "environment": {
                "environment-variables": [{"name": k, "value": v} for k, v in build["env"].items()]
            }
        },
    }
    return request, eventbridge_event("aws.codebuild", "CodeBuild Build State Change", detail)


def test_one_promoted_rebuild_yields_one_image_promoted_event_the_readme_rule_matches(aws, builds):
    # Given the README's rule and a catch-all rule on patchprop's events, on the default bus
    deploy = rule_queue(readme_rule_pattern())
    everything = rule_queue({"source": ["patchprop"]})
    request, event = promoted_rebuild(aws, builds)
    # When its build succeeds, and the state change is delivered three times
    for _ in range(3):
        handler("build_events")(event, LocalContext(function_name="build_events"))
    # Then the README's rule matched exactly one "Image Promoted", with the promoted digest
    (matched,) = receive_all(deploy)
    assert (matched["source"], matched["detail-type"]) == ("patchprop", IMAGE_PROMOTED)
    detail = matched["detail"]
    assert detail["promoted_digest"] == CANDIDATE
    assert detail["promoted_image"] == f"docker.io/acme/app@{CANDIDATE}"
    assert (detail["repository"], detail["tag"], detail["image"]) == ("acme/app", "1", IMAGE)
    assert (detail["base"], detail["base_digest"], detail["previous_base_digest"]) == (
        BASE,
        digest(2),
        digest(1),
    )
    assert detail["rebuild_id"] == request.rebuild_id and detail["report_url"].endswith("previous.trivy.json")
    # And the bus got that verdict once, and the patch's completion once
    kinds = sorted(e["detail-type"] for e in receive_all(everything))
    assert kinds == ["Image Promoted", "Patch Completed"]
    stored = Store(aws.refs["PatchpropTable"]).get_rebuild(request.rebuild_id)
    assert stored is not None and stored.announced == "promoted"


class Refusing:
    """An EventBridge client that refuses the last entry of each of its first `refusals` calls."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.calls: list[list[dict[str, Any]]] = []
        self.real = boto3.client("events", region_name="us-east-1")

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        if len(self.calls) <= self.refusals:
            accepted = self.real.put_events(Entries=Entries[:-1])["Entries"] if Entries[:-1] else []
            refused = {"ErrorCode": "InternalFailure", "ErrorMessage": "test"}
            return {"FailedEntryCount": 1, "Entries": [*accepted, refused]}
        return self.real.put_events(Entries=Entries)


def event(n: int) -> OutcomeEvent:
    return OutcomeEvent(IMAGE_PROMOTED, {"event_id": f"e{n}", "repository": "acme/app", "tag": "1"})


def test_refused_entries_are_sent_again_alone_never_doubled(aws):
    everything = rule_queue({"source": ["patchprop"]})
    client = Refusing(refusals=1)
    # When two events are put and EventBridge refuses the second once
    EventBus("default", client=client, sleep=lambda _: None).put_all([event(1), event(2)])
    # Then the second alone was sent again, and each arrived once
    assert [len(c) for c in client.calls] == [2, 1]
    assert sorted(e["detail"]["event_id"] for e in receive_all(everything)) == ["e1", "e2"]


def test_an_entry_refused_every_time_raises_so_the_verdict_is_retried(aws):
    client = Refusing(refusals=10)
    everything = rule_queue({"source": ["patchprop"]})
    with pytest.raises(AnnounceError, match="InternalFailure"):
        EventBus("default", client=client, sleep=lambda _: None).put_all([event(1), event(2)])
    # The first was accepted once; the second, refused four times, never doubled it
    assert [len(c) for c in client.calls] == [2, 1, 1, 1]
    assert [e["detail"]["event_id"] for e in receive_all(everything)] == ["e1"]
