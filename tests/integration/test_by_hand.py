"""Promote and roll back by hand through the API's real handler: moto for the table, topic and
queue, the real local registry for the tag, read back with skopeo."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
from support import PROJECTS, handler, receive_all, sample_event, subscribe_outcomes

from patchprop.adapters.dynamodb import Store
from patchprop.domain.models import Dependent, PatchRequest, RebuildRequest
from patchprop.domain.records import Finish, Outcome, Rebuild, RebuildStatus
from patchprop_local import oci
from patchprop_local.lambdas import LocalContext, api_event
from patchprop_local.registry_server import LocalRegistry

pytestmark = pytest.mark.integration
BASE_DIGEST = "sha256:" + "b" * 64
ADMIN = "arn:aws:iam::123456789012:user/platform-admin"


def call(
    method: str, path: str, body: Any, resource: str, params: dict[str, str] | None = None, **query: str
) -> tuple[int, Any]:
    event = api_event(
        method, path, resource, params or {}, json.dumps(body), query={k: [v] for k, v in query.items()}
    )
    answer = handler("api")(event, LocalContext(function_name="api"))
    return answer["statusCode"], json.loads(answer["body"] or "null")


def promote(rebuild_id: str, reason: str) -> tuple[int, Any]:
    path = f"/rebuilds/{rebuild_id}/promote"
    return call(
        "POST", path, {"reason": reason}, "/rebuilds/{rebuild_id}/promote", {"rebuild_id": rebuild_id}
    )


def rollback(image: str, to: str | None = None) -> tuple[int, Any]:
    return call("POST", "/dependents/rollback", {"to": to}, "/dependents/rollback", image=image)


def on_tag(image: str) -> str:
    """What a consumer sees on the tag, asked with skopeo."""
    raw = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{image}"],
        capture_output=True,
        check=True,
    ).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@pytest.fixture
def held(aws, local_registry: LocalRegistry) -> dict[str, Any]:
    """golden:1 on its old digest, and a finished rebuild the gate blocked, its candidate by digest."""
    address = local_registry.address
    repo = f"h{datetime.now(UTC).strftime('%H%M%S%f')}/golden"
    old = oci.push_image(address, repo, "1", {"etc/golden": b"old"})
    new = oci.push_image(address, repo, "candidate-scratch", {"etc/golden": b"new"})
    image = f"{address}/{repo}:1"
    store = Store(aws.refs["PatchpropTable"])
    base = f"{address}/h/base:1"
    store.put_dependent(Dependent(image=image, bases=[base], project=PROJECTS[0]))
    dependent = store.get_dependent(image)
    assert dependent is not None
    request = RebuildRequest.for_dependent(
        dependent, PatchRequest(base=base, digest=BASE_DIGEST, detected_by="poller")
    )
    build_id = f"{PROJECTS[0]}:{request.rebuild_id}"
    store.record_started(Rebuild.started(request, build_id, tag_digest=old))
    store.record_finished(
        request.rebuild_id,
        Finish(
            status=RebuildStatus.SUCCEEDED,
            build_id=build_id,
            outcome=Outcome.BLOCKED,
            reasons=["new CRITICAL CVE-2026-0001 in openssl"],
            image_digest=new,
        ),
    )
    return {"image": image, "old": old, "new": new, "rebuild_id": request.rebuild_id, "store": store}


def test_promote_moves_the_tag_records_who_when_why_and_tells_it(aws, held) -> None:
    # Given a blocked rebuild whose candidate is reachable by digest only, and the tag on the old digest
    outcomes = subscribe_outcomes(aws)
    assert on_tag(held["image"]) == held["old"]
    # When a person promotes it with a reason
    status, answer = promote(held["rebuild_id"], "CVE-2026-0001 is not reachable here")
    # Then the tag is on the candidate, as a standard client sees it
    assert status == 200, answer
    assert on_tag(held["image"]) == held["new"] == answer["digest"]
    # And the rebuild records who (no IAM caller locally: "local"), when and why
    rebuild = held["store"].get_rebuild(held["rebuild_id"])
    assert rebuild.on_tag and rebuild.promoted_by == "local" == answer["promoted_by"]
    assert rebuild.promotion_reason == "CVE-2026-0001 is not reachable here"
    assert rebuild.outcome is Outcome.PROMOTED
    # And it was told, naming the person and the reason
    told = [
        json.loads(m["Message"]) if m["Message"].startswith("{") else m["Message"]
        for m in receive_all(outcomes)
    ]
    assert any("Promoted by hand by local" in str(m) and "not reachable here" in str(m) for m in told), told


def test_promote_refusals_name_the_problem_and_change_nothing(aws, held) -> None:
    # Given the held rebuild (tag on the old digest)
    # When an unknown rebuild, a missing reason, and then a second promotion are asked for
    unknown = promote("rb-" + "0" * 32, "because")
    no_reason = promote(held["rebuild_id"], "")
    # Then: 404 naming the rebuild, 400 naming the field, the tag unmoved
    assert unknown[0] == 404 and "rb-" + "0" * 32 in unknown[1]["error"]
    assert no_reason[0] == 400 and no_reason[1]["field"] == "reason"
    assert on_tag(held["image"]) == held["old"]
    # And once promoted, promoting again is a 409 that says so
    assert promote(held["rebuild_id"], "ok")[0] == 200
    again = promote(held["rebuild_id"], "ok")
    assert again[0] == 409 and "promoted already" in again[1]["error"]


def test_promote_of_a_running_rebuild_is_refused(aws, held, local_registry: LocalRegistry) -> None:
    # Given a rebuild still running
    store = held["store"]
    dependent = store.get_dependent(held["image"])
    request = RebuildRequest.for_dependent(
        dependent, PatchRequest(base=dependent.bases[0], digest="sha256:" + "c" * 64, detected_by="poller")
    )
    store.record_started(
        Rebuild.started(request, f"{PROJECTS[0]}:{request.rebuild_id}", tag_digest=held["old"])
    )
    # When it is promoted
    status, answer = promote(request.rebuild_id, "hurry")
    # Then 409 says it is still running, and the tag did not move
    assert status == 409 and "still" in answer["error"], answer
    assert on_tag(held["image"]) == held["old"]


def test_rollback_moves_the_tag_back_and_the_rolled_back_rebuild_is_no_longer_on_it(aws, held) -> None:
    # Given the held rebuild promoted by hand
    assert promote(held["rebuild_id"], "accepted risk")[0] == 200
    # When the image is rolled back
    status, answer = rollback(held["image"])
    # Then the tag is on the digest it had before, as skopeo sees it
    assert status == 200, answer
    assert (answer["from_digest"], answer["to_digest"]) == (held["new"], held["old"])
    assert on_tag(held["image"]) == held["old"]
    # And the rebuild is no longer the one on the tag
    assert not held["store"].get_rebuild(held["rebuild_id"]).on_tag
    # And a second rollback finds no earlier promoted digest: 409, nothing changed
    again = rollback(held["image"])
    assert again[0] == 409 and "not a digest patchprop promoted" in again[1]["error"], again
    assert on_tag(held["image"]) == held["old"]


def test_rollback_refusals(aws, held) -> None:
    # Given an image never promoted by patchprop, and one not registered
    # When each is rolled back
    never = rollback(held["image"])
    unknown = rollback("docker.io/acme/nothing:1")
    bad_to = rollback(held["image"], to="not-a-digest")
    # Then 409 / 404 / 400 name the problem and the tag did not move
    assert never[0] == 409 and "nothing to roll back" in never[1]["error"], never
    assert unknown[0] == 404 and "acme/nothing" in unknown[1]["error"], unknown
    assert bad_to[0] == 400 and bad_to[1]["field"] == "to", bad_to
    assert on_tag(held["image"]) == held["old"]


def test_sample_events_of_the_by_hand_routes_are_handled(aws) -> None:
    # Given events/api_promote_rebuild.json and events/api_rollback_dependent.json
    # When the API handles them on an empty table
    promoted = handler("api")(sample_event("api_promote_rebuild.json"), LocalContext(function_name="api"))
    rolled = handler("api")(sample_event("api_rollback_dependent.json"), LocalContext(function_name="api"))
    # Then each reaches its route and names what is missing
    assert promoted["statusCode"] == 404 and "no rebuild rb-" in promoted["body"]
    assert rolled["statusCode"] == 404 and "payments-api" in rolled["body"]


def test_the_iam_caller_is_recorded_as_who_promoted(aws, held) -> None:
    # Given a request signed by an IAM user (API Gateway puts the caller in the request context)
    rid = held["rebuild_id"]
    event = api_event(
        "POST", f"/rebuilds/{rid}/promote", "/rebuilds/{rebuild_id}/promote", {"rebuild_id": rid},
        json.dumps({"reason": "approved"}),
    )  # fmt: skip
    event["requestContext"]["identity"]["userArn"] = ADMIN
    # When it is handled
    answer = handler("api")(event, LocalContext(function_name="api"))
    # Then the IAM principal is who promoted it
    assert answer["statusCode"] == 200, answer["body"]
    assert held["store"].get_rebuild(rid).promoted_by == ADMIN
