"""Rebuilds that cannot start, and builds that fail: recorded, told once, never retried forever."""

from __future__ import annotations

import pytest
from support import drain, handler, receive_all, subscribe_outcomes

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.sqs import Queue
from patchprop.domain.models import Dependent, PatchRequest, RebuildRequest
from patchprop.domain.records import RebuildStatus
from patchprop.logic.conclude import REBUILD_ID_VAR
from patchprop_local.lambdas import LocalContext, eventbridge_event

pytestmark = pytest.mark.integration
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def enqueue_rebuild(stack, project: str) -> RebuildRequest:
    dependent = Dependent(image="acme/app:1", project=project, bases=["acme/base:1"], owner="team-a")
    request = RebuildRequest.for_dependent(
        dependent, PatchRequest(base="acme/base:1", digest=D2, previous_digest=D1, detected_by="poller")
    )
    Queue(stack.refs["RebuildQueue"]).send(request)
    return request


def test_project_the_stack_may_not_start_is_recorded_and_told_not_retried(aws, builds):
    # Given a rebuild naming a CodeBuild project outside RebuildProjects
    url = subscribe_outcomes(aws)
    request = enqueue_rebuild(aws, "someone-elses-project")
    # When the rebuilder takes it
    drain(aws, "RebuildQueue", "rebuilder")
    # Then no build starts, the rebuild is NOT_STARTED with the reason, one failed alert is sent
    assert builds.calls == []
    rebuild = Store(aws.refs["PatchpropTable"]).get_rebuild(request.rebuild_id)
    assert rebuild is not None and rebuild.status is RebuildStatus.NOT_STARTED
    assert (
        "someone-elses-project" in (rebuild.reason or "") and "not one this stack may start" in rebuild.reason
    )
    messages = receive_all(url)
    assert [m["MessageAttributes"]["outcome"]["Value"] for m in messages] == ["failed"]
    assert "not one this stack may start" in messages[0]["Message"]


def test_failed_build_is_recorded_and_told_once_even_if_events_repeat(aws, builds):
    url = subscribe_outcomes(aws)
    request = enqueue_rebuild(aws, "patchprop-rebuild")
    drain(aws, "RebuildQueue", "rebuilder")
    build = builds.started[0]
    detail = {
        "build-status": "FAILED",
        "build-id": f"arn:aws:codebuild:us-east-1:123456789012:build/{build['id']}",
        "project-name": "patchprop-rebuild",
        "additional-information": {
            "environment": {"environment-variables": [{"name": REBUILD_ID_VAR, "value": request.rebuild_id}]}
        },
    }
    # When FAILED arrives three times, and a late IN_PROGRESS after it
    for status in ("FAILED", "FAILED", "FAILED", "IN_PROGRESS"):
        event = eventbridge_event(
            "aws.codebuild", "CodeBuild Build State Change", {**detail, "build-status": status}
        )
        handler("build_events")(event, LocalContext())
    # Then it stays FAILED and one alert went out
    rebuild = Store(aws.refs["PatchpropTable"]).get_rebuild(request.rebuild_id)
    assert rebuild is not None and rebuild.status is RebuildStatus.FAILED and rebuild.notified
    assert [m["MessageAttributes"]["outcome"]["Value"] for m in receive_all(url)] == ["failed"]


def test_build_of_someone_else_is_ignored(aws):
    detail = {
        "build-status": "SUCCEEDED",
        "build-id": "arn:aws:codebuild:us-east-1:1:build/other:1",
        "project-name": "patchprop-rebuild",
    }
    answer = handler("build_events")(
        eventbridge_event("aws.codebuild", "CodeBuild Build State Change", detail), LocalContext()
    )
    assert answer == {"status": "ignored"}


def test_event_for_a_rebuild_not_recorded_yet_fails_so_it_is_retried(aws):
    detail = {
        "build-status": "SUCCEEDED",
        "build-id": "arn:aws:codebuild:us-east-1:1:build/p:1",
        "project-name": "patchprop-rebuild",
        "additional-information": {
            "environment": {"environment-variables": [{"name": REBUILD_ID_VAR, "value": "rb-not-yet"}]}
        },
    }
    from patchprop.domain.errors import NotFound

    with pytest.raises(NotFound, match="rb-not-yet"):
        handler("build_events")(
            eventbridge_event("aws.codebuild", "CodeBuild Build State Change", detail), LocalContext()
        )


def test_sample_events_are_accepted_by_their_handlers(aws, builds):
    # The files in events/ are what `sam local invoke -e` uses; they must parse in the handlers
    from support import sample_event

    rebuilder = handler("rebuilder")(sample_event("rebuilder_sqs.json"), LocalContext())
    assert rebuilder == {"batchItemFailures": []}
    assert len(builds.started) == 1
    planner = handler("planner")(sample_event("planner_sqs.json"), LocalContext())
    assert planner == {"batchItemFailures": []}
    for name in ("build_state_in_progress.json", "build_state_succeeded.json"):
        answer = handler("build_events")(sample_event(name), LocalContext())
        assert answer["status"] in ("IN_PROGRESS", "SUCCEEDED")
    assert handler("poller")(sample_event("poller_schedule.json"), LocalContext()) == {"bases": 0}


def test_a_patch_the_planner_cannot_plan_is_logged_with_its_base_and_retried(aws, builds, monkeypatch):
    # Given a table that does not exist (every patch's admission raises on it)
    import logging
    import sys

    from support import sample_event

    from patchprop import config

    monkeypatch.setenv("TABLE_NAME", "patchprop-no-such-table")
    config.env_vars.cache_clear()
    planner = handler("planner")
    logged: list[logging.LogRecord] = []
    collector = logging.Handler()
    collector.emit = logged.append  # type: ignore[method-assign]
    planner_logger = sys.modules["patchprop_fn_planner"].logger
    planner_logger.addHandler(collector)
    event = sample_event("planner_sqs.json")
    try:
        # When the planner gets a patch
        answer = planner(event, LocalContext())
    finally:
        planner_logger.removeHandler(collector)
    # Then the record is failed (SQS redelivers it), and the log names the patch and the error
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    errors = [r for r in logged if r.levelno == logging.ERROR and "patch not planned" in r.getMessage()]
    assert len(errors) == 1
    assert errors[0].base == "docker.io/acme/golden-python:3.13"  # type: ignore[attr-defined]
    assert errors[0].error == "StoreError"  # type: ignore[attr-defined]
    assert builds.started == []
