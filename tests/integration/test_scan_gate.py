"""Scan, gate and tell in the pipeline: a finished build's result and reports, the gate's verdict
on the rebuild, its alert, and one summary per patch.

CodeBuild is FakeBuilds; what a build leaves behind (its PATCHPROP_RESULT) is set per build and
points at report files under tests/data/scan/gate (file:// URIs, as in a local run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import FakeBuilds, drain, handler, receive_all, subscribe_outcomes

from patchprop import config
from patchprop.adapters.dynamodb import Store
from patchprop.adapters.sqs import Queue
from patchprop.domain.models import Dependent, PatchRequest, RebuildRequest
from patchprop.domain.records import Rebuild, RebuildStatus
from patchprop_local.lambdas import LocalContext, eventbridge_event

pytestmark = pytest.mark.integration

GATE = Path(__file__).resolve().parents[1] / "data" / "scan" / "gate"
ACCEPTANCE_REASON = (
    "1 new HIGH finding from the image's own packages: CVE-2026-1234 in libfoo 1.2 (fixed in 1.3)"
)
BASE = "docker.io/acme/golden:1"


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64


def report(name: str) -> str:
    return (GATE / name).as_uri()


def told(url: str) -> list[dict[str, Any]]:
    """Messages published since the last call: {"subject", "body", "attributes"}."""
    return [
        {
            "subject": body.get("Subject"),
            "body": body["Message"],
            "attributes": {k: v["Value"] for k, v in body.get("MessageAttributes", {}).items()},
        }
        for body in receive_all(url)
    ]


def start(
    stack,
    *images: str,
    n: int,
    project: str = "patchprop-rebuild",
    policy: str | None = None,
    record: bool = True,
) -> list[RebuildRequest]:
    """A patch of BASE to digest(n), planned for `images` (recorded, unless `record` is false)
    and started by the rebuilder."""
    store = Store(stack.refs["PatchpropTable"])
    patch = PatchRequest(base=BASE, digest=digest(n), previous_digest=digest(n - 1), detected_by="webhook")
    requests = []
    for image in images:
        dependent = Dependent(image=image, project=project, bases=[BASE], owner="team-a", policy=policy)
        store.put_dependent(dependent)
        requests.append(RebuildRequest.for_dependent(dependent, patch))
    if record:
        store.record_patch(patch, rebuilds=len(requests))
    Queue(stack.refs["RebuildQueue"]).send_batch(requests)
    drain(stack, "RebuildQueue", "rebuilder")
    return requests


def finish(builds: FakeBuilds, request: RebuildRequest, status: str = "SUCCEEDED", **result: Any) -> None:
    """CodeBuild's state change for the request's build; `result` is what the build left behind."""
    (build,) = [b for b in builds.started if b["env"]["PATCHPROP_REBUILD_ID"] == request.rebuild_id]
    if result:
        builds.results[build["id"]] = {"image": request.image, "digest": digest(0xE), **result}
    detail = {
        "build-status": status,
        "build-id": f"arn:aws:codebuild:us-east-1:123456789012:build/{build['id']}",  # events carry the ARN
        "project-name": build["project"],
        "additional-information": {
            "environment": {
                "environment-variables": [{"name": k, "value": v} for k, v in build["env"].items()]
            },
            "logs": {"deep-link": f"https://logs.example/{build['id']}"},
        },
    }
    event = eventbridge_event("aws.codebuild", "CodeBuild Build State Change", detail)
    handler("build_events")(event, LocalContext(function_name="build_events"))


def stored(stack, request: RebuildRequest) -> Rebuild:
    rebuild = Store(stack.refs["PatchpropTable"]).get_rebuild(request.rebuild_id)
    assert rebuild is not None
    return rebuild


@pytest.fixture
def no_scan_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUIRE_SCAN", "false")
    config.env_vars.cache_clear()


def test_a_rebuild_that_brings_a_new_high_of_its_own_is_blocked_against_the_last_promoted(aws, builds):
    # Given an image whose last rebuild was promoted on a report with 3 CVEs that came with its base
    url = subscribe_outcomes(aws)
    (first,) = start(aws, "acme/app:1", n=1)
    finish(builds, first, report=report("previous.trivy.json"), base_report=report("previous.trivy.json"))
    assert stored(aws, first).outcome == "promoted"
    told(url)
    # When the base moves again, and the rebuild's scan has those 3 fixed and a HIGH of its own
    (second,) = start(aws, "acme/app:1", n=2)
    finish(builds, second, report=report("rebuilt.trivy.json"), base_report=report("base.trivy.json"))
    # Then it is blocked, and the rebuild records why, on which report, at which digest
    rebuild = stored(aws, second)
    assert (rebuild.status, rebuild.outcome) == (RebuildStatus.SUCCEEDED, "blocked")
    assert rebuild.reasons[0] == ACCEPTANCE_REASON
    assert rebuild.report_uri == report("rebuilt.trivy.json") and rebuild.image_digest == digest(0xE)
    # And the alert says so: fixed 3, 1 new HIGH, routable by outcome, severity and rebuild id
    (alert,) = [m for m in told(url) if m["attributes"]["outcome"] != "summary"]
    assert alert["subject"] == "patchprop: docker.io/acme/app:1 blocked - fixed 3, 1 new HIGH"
    assert ACCEPTANCE_REASON in alert["body"]
    assert alert["attributes"] == {
        "outcome": "blocked",
        "severity": "HIGH",
        "severity_rank": "3",
        "image": "docker.io/acme/app:1",
        "base": BASE,
        "owner": "team-a",
        "rebuild_id": second.rebuild_id,
        "method": "rebuilt",
    }


def test_the_image_policy_decides_and_a_clean_rebuild_is_promoted(aws, builds):
    # Given an image whose policy blocks only on CRITICAL, and one with the default policy
    url = subscribe_outcomes(aws)
    (lenient,) = start(aws, "acme/lenient:1", n=3, policy="fail_on=critical")
    (strict,) = start(aws, "acme/strict:1", n=4)
    # When both rebuilds bring the same new HIGH (no previous scan, no base report)
    finish(builds, lenient, report=report("rebuilt.trivy.json"))
    finish(builds, strict, report=report("rebuilt.trivy.json"))
    # Then the lenient one is promoted and the default one blocked
    assert stored(aws, lenient).outcome == "promoted"
    assert stored(aws, strict).outcome == "blocked"
    outcomes = {
        m["attributes"]["image"]: m["attributes"]["outcome"]
        for m in told(url)
        if m["attributes"]["outcome"] != "summary"
    }
    assert outcomes == {"docker.io/acme/lenient:1": "promoted", "docker.io/acme/strict:1": "blocked"}


def test_without_a_scan_report_a_required_scan_fails_the_rebuild(aws, builds):
    # Given REQUIRE_SCAN=true (the template's default), and a build that did not scan
    url = subscribe_outcomes(aws)
    (request,) = start(aws, "acme/unscanned:1", n=5)
    # When it succeeds with a result that has no report
    finish(builds, request, scanned=False)
    # Then the rebuild failed, saying there is no scan report, and nothing claims it was scanned
    rebuild = stored(aws, request)
    assert (rebuild.status, rebuild.outcome) == (RebuildStatus.SUCCEEDED, "failed")
    assert rebuild.reasons[0].startswith("no scan report: the build did not scan the image")
    assert rebuild.image_digest == digest(0xE)  # the cascade still learns what was pushed
    (alert,) = [m for m in told(url) if m["attributes"]["outcome"] != "summary"]
    assert alert["attributes"]["outcome"] == "failed"
    assert "no scan report" in alert["body"]


def test_without_any_result_a_required_scan_fails_too(aws, builds):
    (request,) = start(aws, "acme/silent:1", n=6)
    finish(builds, request)  # the build exported no PATCHPROP_RESULT
    rebuild = stored(aws, request)
    assert rebuild.outcome == "failed"
    assert rebuild.reasons == ["no scan report: the build left no result (PATCHPROP_RESULT)"]


def test_a_result_that_is_not_one_fails_the_rebuild_naming_its_bad_field(aws, builds):
    # Given a build whose exported result has a digest that is not one
    (request,) = start(aws, "acme/garbled:1", n=7)
    finish(builds, request, digest="sha256:nothex", report=report("rebuilt.trivy.json"))
    # Then the rebuild failed, and the reason names the field (never promoted on a bad result)
    rebuild = stored(aws, request)
    assert rebuild.outcome == "failed"
    (reason,) = rebuild.reasons
    assert reason.startswith("no scan report: the build's result cannot be read (digest"), reason


def test_without_a_scan_report_and_no_scan_required_it_succeeded_not_scanned(aws, builds, no_scan_required):
    # Given REQUIRE_SCAN=false
    url = subscribe_outcomes(aws)
    (request,) = start(aws, "acme/unscanned:2", n=7)
    # When the build succeeds without scanning
    finish(builds, request, scanned=False)
    # Then it is told as succeeded (not scanned), with why
    assert stored(aws, request).outcome == "succeeded"
    (alert,) = [m for m in told(url) if m["attributes"]["outcome"] != "summary"]
    assert alert["attributes"]["outcome"] == "succeeded"
    assert "succeeded (not scanned)" in alert["body"]
    assert "Not scanned: the build did not scan the image" in alert["body"]


def test_an_unreadable_report_fails_the_rebuild_whatever_require_scan_says(aws, builds, no_scan_required):
    # Given a build that says it scanned, but whose report is not there
    (request,) = start(aws, "acme/lost:1", n=8)
    missing = (GATE / "no-such-report.json").as_uri()
    # When it succeeds
    finish(builds, request, report=missing)
    # Then it failed, naming the report
    rebuild = stored(aws, request)
    assert rebuild.outcome == "failed"
    assert missing in rebuild.reasons[0] and "cannot be read" in rebuild.reasons[0]


def test_one_summary_per_patch_after_its_last_rebuild(aws, builds):
    # Given a patch of 3 images: one in a project the stack may not start (it fails at once)
    url = subscribe_outcomes(aws)
    patch = PatchRequest(base=BASE, digest=digest(9), previous_digest=digest(8), detected_by="webhook")
    Store(aws.refs["PatchpropTable"]).record_patch(patch, rebuilds=3)
    promoted, blocked = start(aws, "acme/one:1", "acme/two:1", n=9, record=False)
    (refused,) = start(aws, "acme/three:1", n=9, project="someone-elses", record=False)
    assert stored(aws, refused).status is RebuildStatus.NOT_STARTED
    assert [m["attributes"]["outcome"] for m in told(url)] == ["failed"]
    # When the first build finishes: no summary yet
    previous = report("previous.trivy.json")
    finish(builds, promoted, report=previous, base_report=previous)
    assert [m["attributes"]["outcome"] for m in told(url)] == ["promoted"]
    # When the last finishes, and its event is delivered twice more
    for _ in range(3):
        finish(builds, blocked, report=report("rebuilt.trivy.json"))
    # Then one summary: 2 of 3 rebuilt, 1 promoted, 1 blocked, 1 failed, with the time it took
    messages = told(url)
    assert [m["attributes"]["outcome"] for m in messages] == ["blocked", "summary"]
    summary = messages[1]
    assert summary["attributes"] == {"outcome": "summary", "base": BASE, "base_digest": digest(9)}
    assert summary["subject"] == f"patchprop: {BASE} patched - 2/3 rebuilt, 1 blocked, 1 failed"
    assert "2 of 3 images rebuilt (1 promoted, 1 blocked, 1 failed) in " in summary["body"]
    assert "Push to last rebuild: " in summary["body"]


def test_an_image_that_will_not_be_rebuilt_counts_toward_the_summary_as_skipped(aws, builds):
    # Given a patch of 2 images, one of which will never be rebuilt (its parent failed, say)
    from patchprop.adapters.sns import Topic
    from patchprop.logic.alerts import count_on_patch

    url = subscribe_outcomes(aws)
    patch = PatchRequest(base=BASE, digest=digest(10), previous_digest=digest(9), detected_by="poller")
    store = Store(aws.refs["PatchpropTable"])
    store.record_patch(patch, rebuilds=2)
    (rebuilt,) = start(aws, "acme/rebuilt:1", n=10, record=False)
    previous = report("previous.trivy.json")
    finish(builds, rebuilt, report=previous, base_report=previous)
    # When the other is counted as skipped, twice (a replay)
    topic = Topic(aws.refs["OutcomeTopic"])
    sent = [
        count_on_patch(
            patch.cascade_id, "skip#acme/other", "skipped", patch.detected_at, store=store, topic=topic
        )
        for _ in range(2)
    ]
    # Then the summary goes out once, with it
    assert sent == [True, False]
    (summary,) = [m for m in told(url) if m["attributes"]["outcome"] == "summary"]
    assert "1 of 2 images rebuilt (1 promoted, 1 skipped)" in summary["body"]
