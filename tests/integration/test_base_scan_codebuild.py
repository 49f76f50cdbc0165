"""A base digest with no report gets ONE check-only scan before its cascade (issue 14), on moto.

The planner runs on the real CodeBuild adapter against moto (a stub: StartBuild records a build,
and nothing runs). StartBuild's parameters are read off botocore's own event, as moto drops the
environment overrides. The build's end is the "CodeBuild Build State Change" event that
CodeBuild would send, given to the real build-events handler.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from support import PROJECTS, drain, handler, queue_bodies

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.sqs import Queue
from patchprop.domain.base_scan import BaseScan
from patchprop.domain.models import Dependent, PatchRequest
from patchprop_local.lambdas import LocalContext, eventbridge_event
from patchprop_local.resources import CHECKOUT

pytestmark = pytest.mark.integration
BASE = "127.0.0.1:1/acme/golden:1"  # nothing listens there: no config or SBOM is read, only reports
PREVIOUS, DIGEST = ("sha256:" + c * 64 for c in "67")
REPORTS = CHECKOUT / "examples" / "chain" / "base-reports"
CARRIES, FIXED = ((REPORTS / name).read_bytes() for name in ("carries-fixes.trivy.json", "fixed.trivy.json"))


@pytest.fixture
def started(aws: Any) -> Iterator[list[dict[str, Any]]]:
    """The rebuild projects in moto's CodeBuild, and every StartBuild call's parameters."""
    codebuild = boto3.client("codebuild", region_name="us-east-1")
    image = "aws/codebuild/standard:7.0"
    for name in PROJECTS:
        codebuild.create_project(
            name=name,
            source={"type": "S3", "location": "bucket/source.zip"},
            artifacts={"type": "NO_ARTIFACTS"},
            environment={"type": "LINUX_CONTAINER", "image": image, "computeType": "BUILD_GENERAL1_SMALL"},
            serviceRole="arn:aws:iam::123456789012:role/rebuild",
        )
    calls: list[dict[str, Any]] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    events = boto3._get_default_session().events  # the session the adapters' clients come from
    events.register("provide-client-params.codebuild.StartBuild", seen, unique_id="test-base-scan")
    yield calls
    events.unregister("provide-client-params.codebuild.StartBuild", unique_id="test-base-scan")


def dependents(aws: Any, count: int) -> Store:
    store = Store(aws.refs["PatchpropTable"])
    for n in range(count):
        store.put_dependent(Dependent(image=f"127.0.0.1:1/acme/app-{n}:1", bases=[BASE], project=PROJECTS[0]))
    return store


def deliver(aws: Any, times: int = 1) -> None:
    """The patch of DIGEST (after PREVIOUS), `times` times, and the planner run on it."""
    queue = Queue(aws.refs["PatchQueue"])
    for n in range(times):
        by = "poller" if n % 2 else "webhook"
        queue.send(PatchRequest(base=BASE, digest=DIGEST, previous_digest=PREVIOUS, detected_by=by))
    drain(aws, "PatchQueue", "planner")


def forget_idempotency(aws: Any) -> None:
    """As if the planner's idempotency records expired: only the store's claim is left."""
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(aws.refs["IdempotencyTable"])
    for item in table.scan()["Items"]:
        table.delete_item(Key={"id": item["id"]})


def waiting(aws: Any, queue: str) -> int:
    sqs = boto3.client("sqs", region_name="us-east-1")
    attributes = sqs.get_queue_attributes(
        QueueUrl=aws.refs[queue], AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def builds_in_moto() -> list[str]:
    codebuild = boto3.client("codebuild", region_name="us-east-1")
    return [i for p in PROJECTS for i in codebuild.list_builds_for_project(projectName=p)["ids"]]


def put_report(digest: str = DIGEST, body: bytes = FIXED) -> str:
    """report.json where the check-only scan leaves it (buildspec/rebuild.sh, base-check mode):
    the new digest fixes what the previous one (its report attached by the publisher) carries."""
    root = os.environ["BASE_REPORTS_URI"]  # the planner's, from template.yaml
    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3", region_name="us-east-1")
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=bucket)
    key = f"{prefix}/127.0.0.1:1/acme/golden/{digest.removeprefix('sha256:')}/report.json"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def end_build(call: dict[str, Any], status: str) -> dict[str, Any]:
    """The state change CodeBuild sends when the build StartBuild was called with ends."""
    build = builds_in_moto()[0]
    variables = call["environmentVariablesOverride"]
    detail = {
        "build-status": status,
        "build-id": f"arn:aws:codebuild:us-east-1:123456789012:build/{build}",
        "project-name": call["projectName"],
        "additional-information": {"environment": {"environment-variables": variables}},
    }
    event = eventbridge_event("aws.codebuild", "CodeBuild Build State Change", detail)
    return dict(handler("build_events")(event, LocalContext(function_name="build_events")))


def test_a_20_image_cascade_delivered_3_times_starts_one_check_only_build_and_waits(aws, started):
    # Given a base with 20 dependents and no report of its new digest
    store = dependents(aws, 20)
    # When its patch is delivered 3 times, the last after the planner's idempotency expired
    deliver(aws, times=2)
    forget_idempotency(aws)
    deliver(aws)
    # Then exactly one check-only build started, pinned to the digest, and nothing is planned yet
    assert len(builds_in_moto()) == 1
    (call,) = started
    env = {v["name"]: v["value"] for v in call["environmentVariablesOverride"]}
    assert call["projectName"] == PROJECTS[0]
    assert env["PATCHPROP_MODE"] == "base-check"
    assert env["BASE_IMAGE"] == f"127.0.0.1:1/acme/golden@{DIGEST}"
    assert env["BASE_REPORTS_URI"].endswith("/base-reports") and "PATCHPROP_REBUILD_ID" not in env
    assert store.get_patch(BASE, DIGEST) is None and store.get_base_check(BASE, DIGEST) is None
    assert queue_bodies(aws, "RebuildQueue") == []
    assert store.get_base_scan(BASE, DIGEST).state == "checking"  # type: ignore[union-attr]


def test_the_scan_s_end_sends_the_patch_back_and_the_cascade_is_planned_with_its_report(aws, started):
    # Given the check-only scan of a digest started, and its report left in S3 by the build
    store = dependents(aws, 3)
    put_report(PREVIOUS, CARRIES)
    deliver(aws)
    uri = put_report()
    # When the build succeeds, and its event comes twice
    answers = [end_build(started[0], "SUCCEEDED") for _ in range(2)]
    resent = waiting(aws, "PatchQueue")
    drain(aws, "PatchQueue", "planner")
    # Then the patch went back once, marked, and the planner checked the digest with that report
    # and planned the cascade
    assert [a["state"] for a in answers] == ["done", "done"] and resent == 1
    check = store.get_base_check(BASE, DIGEST)
    assert check is not None and check.scanned and check.report_uri == uri
    patch = store.get_patch(BASE, DIGEST)
    assert patch is not None and patch.rebuilds == 3
    rebuilds = queue_bodies(aws, "RebuildQueue")
    assert len(rebuilds) == 3 and {r["base_report"] for r in rebuilds} == {uri}
    assert len(builds_in_moto()) == 1  # no second scan


def test_a_failed_scan_plans_anyway_and_says_not_scanned_with_the_reason(aws, started):
    # Given the check-only scan of a digest started
    store = dependents(aws, 2)
    deliver(aws)
    # When its build fails (no report left)
    end_build(started[0], "FAILED")
    drain(aws, "PatchQueue", "planner")
    # Then the cascade is planned, and its check says it was not scanned, and why
    check = store.get_base_check(BASE, DIGEST)
    assert check is not None and not check.scanned
    notes = " ".join(check.notes)
    assert "was not scanned" in notes and "ended FAILED" in notes
    assert len(queue_bodies(aws, "RebuildQueue")) == 2
    assert len(builds_in_moto()) == 1


def test_a_base_with_a_report_starts_no_scan(aws, started):
    # Given a digest whose publisher left its report
    store = dependents(aws, 2)
    put_report(PREVIOUS, CARRIES)
    uri = put_report()
    # When its patch is delivered
    deliver(aws)
    # Then no build starts, and the cascade is planned with that report at once
    assert started == [] and builds_in_moto() == []
    check = store.get_base_check(BASE, DIGEST)
    assert check is not None and check.report_uri == uri
    assert [r["base_report"] for r in queue_bodies(aws, "RebuildQueue")] == [uri, uri]


def test_a_claim_whose_planner_died_before_startbuild_is_started_by_the_redelivery(aws, started):
    # Given a scan claimed 2 minutes ago by a planner that died before it started the build
    store = dependents(aws, 2)
    patch = PatchRequest(base=BASE, digest=DIGEST, previous_digest=PREVIOUS, detected_by="webhook")
    claimed_at = datetime.now(UTC) - timedelta(minutes=2)
    assert store.claim_base_scan(BaseScan(base=BASE, digest=DIGEST, patch=patch, started_at=claimed_at))
    # When the patch is delivered again
    deliver(aws)
    # Then its one build starts now, and is recorded
    assert len(builds_in_moto()) == 1
    assert store.get_base_scan(BASE, DIGEST).build_id == builds_in_moto()[0]  # type: ignore[union-attr]


def test_an_owners_now_during_the_scan_is_kept_and_plans_at_the_scans_end(aws, started):
    # Given the check-only scan of a digest started; its report will show no change at all
    store = dependents(aws, 2)
    put_report(PREVIOUS, CARRIES)
    deliver(aws)
    # When an owner asks for it now (`patchprop patch BASE --now`) while the scan runs
    queue = Queue(aws.refs["PatchQueue"])
    queue.send(
        PatchRequest(base=BASE, digest=DIGEST, previous_digest=PREVIOUS, detected_by="person", force_now=True)
    )
    drain(aws, "PatchQueue", "planner")
    # Then nothing is planned yet, and no second scan starts
    assert queue_bodies(aws, "RebuildQueue") == [] and len(builds_in_moto()) == 1
    # When the scan ends, having found no fix (batched, were it not forced)
    put_report(DIGEST, CARRIES)
    end_build(started[0], "SUCCEEDED")
    drain(aws, "PatchQueue", "planner")
    # Then the owner's --now was not lost: the cascade is planned, forced
    check = store.get_base_check(BASE, DIGEST)
    assert check is not None and check.urgency == "now" and "forced" in check.urgency_reason
    assert len(queue_bodies(aws, "RebuildQueue")) == 2


def sweep(minutes_later: float) -> list[Any]:
    """The poller's sweep of check-only scans, as its tick runs it, `minutes_later` from now."""
    from patchprop import wiring
    from patchprop.config import PollerEnv, env_vars
    from patchprop.logic.base_scan import sweep_base_scans

    adapters = wiring.adapters(env_vars(PollerEnv))
    timeout = env_vars(PollerEnv).BASE_SCAN_TIMEOUT_MINUTES
    later = datetime.now(UTC) + timedelta(minutes=minutes_later)
    return sweep_base_scans(
        scans=adapters.base_scans, patches=adapters.patch_queue, timeout_minutes=timeout, now=later
    )


def test_a_scan_whose_end_never_came_is_swept_once_and_its_cascade_goes_on_not_scanned(aws, started):
    # Given a check-only scan started, whose end event is lost (or left in BuildEventsDLQ)
    store = dependents(aws, 2)
    deliver(aws)
    assert os.environ["BASE_SCAN_TIMEOUT_MINUTES"] == "180"  # template.yaml's default
    # When the poller's tick sweeps within the timeout: nothing; past it: the patch goes on
    assert sweep(minutes_later=170) == []
    assert waiting(aws, "PatchQueue") == 0
    (swept,) = sweep(minutes_later=181)
    assert sweep(minutes_later=182) == []  # swept once
    drain(aws, "PatchQueue", "planner")
    # Then the cascade is planned (not_scanned=go by default), its check saying why it was not scanned
    assert swept.base == BASE and swept.state == "failed"
    check = store.get_base_check(BASE, DIGEST)
    assert check is not None and not check.scanned
    assert "no end of its check-only scan within 180 minutes" in " ".join(check.notes)
    assert len(queue_bodies(aws, "RebuildQueue")) == 2
    # and the late end event, when it comes after all, sends nothing more
    assert end_build(started[0], "SUCCEEDED")["state"] == "failed"
    assert waiting(aws, "PatchQueue") == 0
