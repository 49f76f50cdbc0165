"""One bad record must never poison a base: on moto, a dependent that no longer reads (an older
version wrote it, or it is corrupted) next to good ones, through the store, the API and the planner."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from test_api import PROJECTS, call, register

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.dynamodb.catalog import UNREADABLE_METRIC, metrics
from patchprop.adapters.sqs import Queue
from patchprop.domain.errors import LimitExceeded
from patchprop.domain.models import Dependent, PatchRequest
from patchprop.logic.plan import plan_rebuilds

pytestmark = pytest.mark.integration
BASE = "docker.io/acme/base:1"
GOOD = "docker.io/acme/good:1"
BROKEN = "docker.io/acme/broken:1"
D1 = "sha256:" + "1" * 64


@pytest.fixture
def store(aws: Any) -> Store:
    return Store(aws.refs["PatchpropTable"])


def corrupt(store: Store, image: str, base: str) -> None:
    """A dependent and its edge as an older writer left them: a cooldown below 0, a bad arg name."""
    body = {"image": image, "project": PROJECTS[0], "bases": [base], "cooldown_seconds": -5}
    body["build_args"] = {"not a name": "y"}
    key = {"PK": f"IMAGE#{image}"}
    store.table.put_item(Item={**key, "SK": "#IMAGE", "GSI1PK": "DEPENDENTS", "GSI1SK": image, **body})
    edge = {"SK": f"BASE#{base}", "GSI1PK": f"BASE#{base}", "GSI1SK": f"IMAGE#{image}", "kind": "edge"}
    store.table.put_item(Item={**key, **edge, **body})


def test_a_record_that_does_not_read_is_skipped_and_named_by_every_read(store: Store) -> None:
    # Given a good dependent and a broken one on the same base
    register(GOOD, BASE)
    corrupt(store, BROKEN, BASE)
    metrics.clear_metrics()
    # When the store lists them, and the dependents of the base
    listed, on_base = [], []
    every = [d.image for d in store.list_dependents(skipped=listed)]
    built_on = [d.image for d in store.dependents_of(BASE, skipped=on_base)]
    # Then the good one is read, the broken one named, and reading it alone is None
    assert (every, listed, built_on, on_base) == ([GOOD], [BROKEN], [GOOD], [BROKEN])
    assert store.get_dependent(BROKEN) is None
    # and each skip is counted
    assert metrics.metric_set[UNREADABLE_METRIC]["Value"] == [1.0, 1.0, 1.0]


def test_every_listing_and_the_delete_work_around_a_broken_record(store: Store) -> None:
    # Given a good and a broken dependent on one base
    register(GOOD, BASE)
    corrupt(store, BROKEN, BASE)
    # When every listing is read, then the broken one removed through the API
    answers = {path: call("GET", path)[0] for path in ("/dependents", "/bases", "/rebuilds", "/graph")}
    graph = call("GET", "/graph", base=BASE)
    removed = call("DELETE", "/dependents", image=BROKEN)
    # Then all answer 200, the good one is shown, and the broken one and its edge are gone
    assert set(answers.values()) == {200} and graph[0] == 200
    assert [e["image"] for e in graph[1]["edges"]] == [GOOD]
    assert removed == (200, {"removed": BROKEN})
    assert (
        store.table.query(
            KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": f"IMAGE#{BROKEN}"}
        )["Items"]
        == []
    )


def test_registering_over_a_broken_record_replaces_it_and_its_edges(store: Store) -> None:
    # Given a broken record on BASE
    corrupt(store, BROKEN, BASE)
    # When the image is registered again, on another base
    status, _ = call(
        "POST", "/dependents", {"image": BROKEN, "bases": ["acme/other:1"], "project": PROJECTS[0]}
    )
    # Then it reads again, and its stale edge on BASE is gone
    assert status == 201
    assert [d.image for d in store.dependents_of(BASE)] == []
    assert [d.image for d in store.dependents_of("docker.io/acme/other:1")] == [BROKEN]


def test_the_planner_plans_the_others_and_reports_the_broken_one(aws: Any, store: Store) -> None:
    # Given a good and a broken dependent on a base
    register(GOOD, BASE)
    corrupt(store, BROKEN, BASE)
    url = aws.refs["RebuildQueue"]
    # When the base moves
    patch = PatchRequest(base=BASE, digest=D1, detected_by="poller")
    plan = plan_rebuilds(patch, store=store, rebuild_queue=Queue(url))
    # Then the good one is rebuilt and the broken one reported as not planned
    sent = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["image"] for m in sent] == [GOOD]
    assert (plan.rebuilds, plan.unreadable) == (1, (BROKEN,))


def test_a_write_over_dynamodb_limits_is_a_400_not_a_503(store: Store) -> None:
    # Given a dependent with more bases than one transaction can write (past the API's checks)
    dependent = Dependent(image=GOOD, bases=[BASE], project=PROJECTS[0])
    too_many = dependent.model_copy(update={"bases": [f"docker.io/acme/b{i}:1" for i in range(150)]})
    # When it is written
    # Then the store says it can never be written, rather than "unavailable; retry"
    with pytest.raises(LimitExceeded):
        store.put_dependent(too_many)
