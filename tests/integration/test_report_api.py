"""GET /status and GET /report through the real API handler on moto: the figures from stored
records, bad input named, an empty fleet in zeros, and the number of queries it takes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support import PROJECTS, handler

from patchprop.adapters.dynamodb import Store
from patchprop.domain.models import PatchRequest, RebuildRequest
from patchprop.domain.records import Finish, Outcome, Promotion, Rebuild, RebuildStatus
from patchprop.logic import report
from patchprop_local.lambdas import LocalContext, api_event

pytestmark = pytest.mark.integration

BASE = "docker.io/library/node:22"
APP = "docker.io/acme/app:1"
WORKER = "docker.io/acme/worker:1"
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def call(method: str, path: str, **query: Any) -> tuple[int, Any]:
    event = api_event(method, path, path, {}, None)
    params = {k: str(v) for k, v in query.items() if v is not None}
    event["queryStringParameters"] = params or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in params.items()} or None
    answer = handler("api")(event, LocalContext(function_name="api"))
    return answer["statusCode"], json.loads(answer["body"] or "null")


@pytest.fixture
def store(aws) -> Store:
    return Store(aws.refs["PatchpropTable"])


def promoted(store: Store, image: str, patch: PatchRequest, minutes: int, outcome: Outcome) -> None:
    dependent = store.get_dependent(image)
    assert dependent is not None
    request = RebuildRequest.for_dependent(dependent, patch)
    build = f"{dependent.project}:{request.rebuild_id}"
    store.record_started(Rebuild.started(request, build))
    at = patch.detected_at + timedelta(minutes=minutes)
    on_tag = at if outcome is Outcome.PROMOTED else None
    store.record_finished(
        request.rebuild_id,
        Finish(
            status=RebuildStatus.SUCCEEDED,
            build_id=build,
            at=at,
            outcome=outcome,
            promoted_by="patchprop" if on_tag else None,
            promoted_at=on_tag,
            fixed_findings={"HIGH": 1} if on_tag else None,
        ),
    )
    if on_tag:
        store.record_promotion(request.rebuild_id, Promotion(outcome=outcome, reasons=[], signed=True))


@pytest.fixture
def fleet(store: Store) -> Store:
    return seed_fleet(store)


def seed_fleet(store: Store) -> Store:
    """node:22 moved D1 -> D2 an hour ago; app was promoted on D2 after 12 minutes, worker blocked."""
    for image, owner in ((APP, "team-a"), (WORKER, "team-b")):
        status, body = call_register(image, owner)
        assert status == 201, body
    store.record_digest(BASE, None, D1)
    store.record_digest(BASE, D1, D2)
    detected = datetime.now(UTC) - timedelta(hours=1)
    pushed = detected - timedelta(seconds=4)
    patch = PatchRequest(
        base=BASE,
        digest=D2,
        previous_digest=D1,
        detected_by="webhook",
        detected_at=detected,
        pushed_at=pushed,
    )
    store.record_patch(patch, rebuilds=2)
    promoted(store, APP, patch, 12, Outcome.PROMOTED)
    promoted(store, WORKER, patch, 20, Outcome.BLOCKED)
    for image, outcome in ((APP, "promoted"), (WORKER, "blocked")):
        store.count_finished(patch.cascade_id, image, outcome, detected)
    return store


def call_register(image: str, owner: str) -> tuple[int, Any]:
    body = json.dumps({"image": image, "bases": [BASE], "project": PROJECTS[0], "owner": owner})
    event = api_event("POST", "/dependents", "/dependents", {}, body)
    answer = handler("api")(event, LocalContext(function_name="api"))
    return answer["statusCode"], json.loads(answer["body"])


def test_status_lists_the_images_behind_first(fleet: Store) -> None:
    status, body = call("GET", "/status")
    assert status == 200, body
    assert [(i["image"], i["state"]) for i in body["images"]] == [(WORKER, "behind"), (APP, "current")]
    assert (body["behind"], body["current"]) == (1, 1)
    assert body["images"][0]["bases"][0]["current"] == D2
    assert body["images"][0]["last_outcome"] == "blocked"
    _, behind = call("GET", "/status", behind="true", owner="team-b")
    assert [i["image"] for i in behind["images"]] == [WORKER]


def test_report_measures_the_patch(fleet: Store) -> None:
    status, body = call("GET", "/report", since="7d")
    assert status == 200, body
    assert [(e["base"], e["digest"], e["minutes"]) for e in body["events"]] == [(BASE, D2, 12.0)]
    assert body["time_to_patch"]["median_minutes"] == 12.0
    assert body["coverage"]["share"] == 0.5
    assert body["detection"]["webhook"]["median_seconds"] == 4.0
    assert body["outcomes"]["by_outcome"] == {"blocked": 1, "promoted": 1}
    assert body["effort"]["automated_rebuilds"] == 1 and body["effort"]["triage_avoided"] == 1
    assert body["compliance"]["with_signature"] == 1


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [({"since": "a month"}, 400, "since"), ({"owner": "nobody"}, 404, "owner")],
)
def test_bad_input_names_the_parameter(fleet: Store, query: dict[str, str], code: int, field: str) -> None:
    status, body = call("GET", "/report", **query)
    assert (status, body["field"]) == (code, field), body


def test_an_empty_fleet_reports_zeros(store: Store) -> None:
    status, body = call("GET", "/report")
    assert status == 200, body
    assert body["time_to_patch"]["events"] == 0 and body["coverage"]["images"] == 0
    assert call("GET", "/status")[1]["images"] == []


def test_the_report_reads_with_queries_one_per_image_and_base(fleet: Store) -> None:
    calls: list[str] = []
    table = fleet.table
    original_query, original_scan = table.query, table.scan

    def counting(name: str, real: Any) -> Any:
        return lambda **kwargs: (calls.append(name), real(**kwargs))[1]

    table.query = counting("query", original_query)  # type: ignore[method-assign]
    table.scan = counting("scan", original_scan)  # type: ignore[method-assign]
    report.report(store=fleet, since="7d")
    # dependents, bases, node:22's patches, one per image
    assert calls == ["query"] * 5
