"""Rolling back an image others are built on: through the real API handler on moto, the real
local registry for the tag, then the planner and rebuilder: its dependents are patched onto the
digest the tag went back to, once per move, and the rollback is an event on EventBridge."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from support import FakeBuilds, drain, receive_all
from test_by_hand import promote, rollback
from test_outcome_events import rule_queue

from patchprop.adapters.dynamodb import Store
from patchprop.domain.models import Dependent, PatchRequest, RebuildRequest, rebuild_id_for
from patchprop.domain.records import Finish, Outcome, Rebuild, RebuildStatus
from patchprop_local import oci
from patchprop_local.registry_server import LocalRegistry

pytestmark = pytest.mark.integration
PROJECT = "patchprop-rebuild"


@pytest.fixture
def golden(aws, builds: FakeBuilds, local_registry: LocalRegistry) -> dict[str, Any]:
    """golden:1, which app:1 is built on, promoted by hand from its old digest to a new one; app
    was rebuilt by patchprop on golden's old digest before (a patch of golden to it, planned)."""
    address = local_registry.address
    repo = f"r{datetime.now(UTC).strftime('%H%M%S%f')}/golden"
    old = oci.push_image(address, repo, "1", {"etc/golden": b"old"})
    new = oci.push_image(address, repo, "candidate-scratch", {"etc/golden": b"new"})
    image, app = f"{address}/{repo}:1", f"{address}/{repo}-app:1"
    store = Store(aws.refs["PatchpropTable"])
    root = f"{address}/r/base:1"
    store.put_dependent(Dependent(image=image, bases=[root], project=PROJECT))
    store.put_dependent(Dependent(image=app, bases=[image], project=PROJECT))
    store.record_digest(image, None, old)
    moved_to_old = PatchRequest(base=image, digest=old, detected_by="poller")  # planned, rebuilt once
    store.record_patch(moved_to_old, rebuilds=1)
    earlier = RebuildRequest.for_dependent(store.get_dependent(app), moved_to_old)
    store.record_started(Rebuild.started(earlier, f"{PROJECT}:{earlier.rebuild_id}", tag_digest=None))
    request = RebuildRequest.for_dependent(
        store.get_dependent(image), PatchRequest(base=root, digest="sha256:" + "3" * 64, detected_by="poller")
    )
    build_id = f"{PROJECT}:{request.rebuild_id}"
    store.record_started(Rebuild.started(request, build_id, tag_digest=old))
    store.record_finished(
        request.rebuild_id,
        Finish(
            status=RebuildStatus.SUCCEEDED,
            build_id=build_id,
            outcome=Outcome.BLOCKED,
            reasons=["x"],
            image_digest=new,
        ),
    )
    assert promote(request.rebuild_id, "accepted")[0] == 200
    return {
        "image": image,
        "app": app,
        "old": old,
        "new": new,
        "rebuild_id": request.rebuild_id,
        "store": store,
    }


def sent_patches(aws) -> list[PatchRequest]:
    return [PatchRequest.model_validate(m) for m in receive_all(aws.refs["PatchQueue"])]


def test_a_rollback_patches_the_images_built_on_it_onto_the_digest_it_went_back_to(
    aws, builds: FakeBuilds, golden: dict[str, Any]
) -> None:
    # Given a rule on patchprop's rollback events
    events = rule_queue({"source": ["patchprop"], "detail-type": ["Image Rolled Back"]})
    # When golden is rolled back
    status, answer = rollback(golden["image"])
    # Then the answer names the patch of its dependents onto the old digest
    assert status == 200, answer
    assert answer["to_digest"] == golden["old"]
    assert answer["dependents_patch"] == f"{golden['image']}@{golden['old']}"
    # And the planner plans it, forced now, and app is rebuilt on golden's old digest, though it
    # was built on that digest by patchprop once before
    drain(aws, "PatchQueue", "planner")
    drain(aws, "RebuildQueue", "rebuilder")
    (build,) = builds.started
    assert build["env"]["TARGET_IMAGE"] == golden["app"]
    assert build["env"]["PATCHPROP_REBUILD_ID"] != rebuild_id_for(
        golden["app"], golden["image"], golden["old"]
    )
    patch = golden["store"].get_patch(golden["image"], golden["old"])
    assert patch is not None and patch.rebuilds == 1 and patch.rollback_of == golden["rebuild_id"]
    assert patch.base_check is not None
    assert patch.base_check.urgency_reason == f"a rollback undid rebuild {golden['rebuild_id']}"
    # And the rollback is one event, naming what the tag holds now and the patch it started
    (event,) = receive_all(events)
    detail = event["detail"]
    assert (detail["from_digest"], detail["digest"]) == (golden["new"], golden["old"])
    assert detail["promoted_image"] == golden["image"].rsplit(":", 1)[0] + "@" + golden["old"]
    assert detail["rolled_back_rebuild_id"] == golden["rebuild_id"]
    assert detail["dependents_patch"] == answer["dependents_patch"]


def test_a_repeated_rollback_of_the_same_move_starts_no_second_patch(
    aws, builds: FakeBuilds, golden: dict[str, Any]
) -> None:
    # Given golden rolled back once (its dependents' patch sent)
    events = rule_queue({"source": ["patchprop"], "detail-type": ["Image Rolled Back"]})
    assert rollback(golden["image"])[0] == 200
    assert [p.rollback_of for p in sent_patches(aws)] == [golden["rebuild_id"]]
    # When the same rebuild is promoted again and the same move rolled back again
    assert promote(golden["rebuild_id"], "again")[0] == 200
    status, answer = rollback(golden["image"])
    # Then the tag is back, told as a second event, and no second patch is sent
    assert status == 200 and answer["to_digest"] == golden["old"], answer
    assert answer["dependents_patch"] is None
    assert sent_patches(aws) == []
    assert len(receive_all(events)) == 2


def test_a_rollback_of_an_image_nothing_is_built_on_sends_no_patch(aws, golden: dict[str, Any]) -> None:
    # Given golden's only dependent removed
    golden["store"].remove_dependent(golden["app"])
    # When golden is rolled back
    status, answer = rollback(golden["image"])
    # Then the tag moved back and no patch was sent
    assert status == 200 and answer["dependents_patch"] is None, answer
    assert sent_patches(aws) == []
