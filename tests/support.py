"""Test helpers shared by unit, integration and e2e tests (importable as `support`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from patchprop.domain.errors import BuildThrottled
from patchprop.domain.events import BuildResult, parse_build_result
from patchprop_local.lambdas import deliver_sqs, load_handler
from patchprop_local.provision import subscribe_queue
from patchprop_local.resources import CHECKOUT as ROOT
from patchprop_local.template import Stack

EVENTS = ROOT / "events"
PROJECTS = ["patchprop-rebuild", "team-b-rebuild"]


@dataclass
class FakeBuilds:
    """An in-memory CodeBuild for tests: records each start, can refuse some with throttling."""

    throttle: Any = None  # callable(call_number) -> bool
    calls: list[dict[str, Any]] = field(default_factory=list)
    started: list[dict[str, Any]] = field(default_factory=list)
    # What each build leaves behind (the script's result), by build id; set by a test.
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)  # ids of builds ended without a result

    def start_build(
        self,
        project: str,
        env: Mapping[str, str],
        idempotency_token: str,
        source_version: str | None = None,
        source_location: str | None = None,
    ) -> str:
        self.calls.append({"project": project, "env": dict(env), "token": idempotency_token})
        if self.throttle and self.throttle(len(self.calls)):
            raise BuildThrottled("ThrottlingException (test)")
        build_id = f"{project}:{len(self.started) + 1:08d}"
        self.started.append(
            {"id": build_id, "project": project, "env": dict(env), "token": idempotency_token}
        )
        return build_id

    def build_result(self, build_id: str) -> BuildResult | None:
        return parse_build_result(self.results.get(build_id))

    def running_builds(self, projects: Collection[str]) -> int:
        """Started and not finished (no result set, not in `finished`)."""
        done = set(self.results) | self.finished
        return sum(1 for b in self.started if b["project"] in projects and b["id"] not in done)


def handler(name: str) -> Any:
    return load_handler(ROOT / "functions" / name)


def sample_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def drain(stack: Stack, queue: str, function: str, rounds: int = 50) -> int:
    """Deliver `queue` to `function` as its SQS event source would, until it is empty."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    delivered = 0
    for _ in range(rounds):
        got = deliver_sqs(sqs, stack.refs[queue], stack.attrs[queue]["Arn"], handler(function))
        if got.received == 0:
            break
        delivered += got.received
    return delivered


def queue_bodies(stack: Stack, queue: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=stack.refs[queue], MaxNumberOfMessages=10, VisibilityTimeout=30)
        if not got.get("Messages"):
            return bodies
        bodies += [json.loads(m["Body"]) for m in got["Messages"]]


def subscribe_outcomes(stack: Stack, filter_policy: dict[str, Any] | None = None) -> str:
    """A new queue subscribed to the outcome topic; its URL."""
    url, _arn = subscribe_queue(
        boto3.client("sqs", region_name="us-east-1"),
        boto3.client("sns", region_name="us-east-1"),
        stack.refs["OutcomeTopic"],
        f"outcomes-{uuid.uuid4().hex[:8]}",
        filter_policy,
    )
    return url


def receive_all(url: str) -> list[dict[str, Any]]:
    """Every SNS envelope waiting on the queue, taken off it."""
    sqs, found = boto3.client("sqs", region_name="us-east-1"), []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        found += [json.loads(m["Body"]) for m in got]
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return found
