"""The steps of the flow against in-memory ports (tests/fakes.py): detect, plan, start, conclude."""

from __future__ import annotations

import pytest
from fakes import FakeBuilds, FakeQueue, FakeRegistry, FakeTopic, InMemoryStore

from patchprop.domain.errors import CapReached
from patchprop.domain.models import Base, Dependent, PatchRequest, RebuildRequest
from patchprop.domain.records import Finish, NodeStatus, Outcome, Rebuild, RebuildStatus
from patchprop.logic.conclude import conclude
from patchprop.logic.detect import Seen, check_base
from patchprop.logic.plan import plan_rebuilds
from patchprop.logic.start import start_rebuild

BASE = "docker.io/acme/base:1"
GOLDEN = "docker.io/acme/golden:1"
APP = "docker.io/acme/app:1"
D0, D1, D2 = ("sha256:" + c * 64 for c in "012")
PROJECT = "patchprop-rebuild"


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


@pytest.fixture
def store() -> InMemoryStore:
    """A base, a golden image on it and an app on the golden image."""
    fake = InMemoryStore()
    fake.put_dependent(Dependent(image=GOLDEN, project=PROJECT, bases=[BASE]))
    fake.put_dependent(Dependent(image=APP, project=PROJECT, bases=[GOLDEN]))
    fake.bases[BASE] = Base(ref=BASE, digest=D0)
    return fake


def planned(store: InMemoryStore) -> tuple[PatchRequest, FakeQueue]:
    patch = PatchRequest(base=BASE, digest=D1, previous_digest=D0, detected_by="webhook")
    queue = FakeQueue()
    plan_rebuilds(patch, store=store, rebuild_queue=queue)
    return patch, queue


def started(store: InMemoryStore, request: RebuildRequest) -> Rebuild:
    rebuild = start_rebuild(request, store=store, builds=FakeBuilds(), allowed_projects={PROJECT}, cap=5)
    assert rebuild is not None
    return rebuild


def finished(store: InMemoryStore, rebuild: Rebuild, status: RebuildStatus, outcome: Outcome) -> Rebuild:
    finish = Finish(status=status, build_id=rebuild.build_id or "", outcome=outcome, image_digest=digest(7))
    done = store.record_finished(rebuild.rebuild_id, finish)
    assert done is not None
    return done


def test_a_moved_base_is_enqueued_before_its_new_digest_is_recorded(store):
    # Given the registry says the base now points at D1
    registry, patches = FakeRegistry({BASE: D1}), FakeQueue()
    # When it is checked
    check = check_base(
        store.bases[BASE], store=store, registry=registry, patches=patches, detected_by="poller"
    )
    # Then one patch D0 -> D1 is enqueued and the digest recorded
    assert check.seen is Seen.MOVED
    (patch,) = patches.messages
    assert isinstance(patch, PatchRequest)
    assert (patch.previous_digest, patch.digest) == (D0, D1)
    assert store.bases[BASE].digest == D1
    # And a second check finds nothing new
    again = check_base(
        store.bases[BASE], store=store, registry=registry, patches=patches, detected_by="poller"
    )
    assert again.seen is Seen.UNCHANGED
    assert len(patches.sent) == 1


def test_planning_releases_only_the_first_level_and_a_replay_plans_nothing_new(store):
    # When the patch is planned, twice (a redelivery)
    patch, queue = planned(store)
    plan_rebuilds(patch, store=store, rebuild_queue=queue)
    # Then the golden image is sent (once per planning), the app waits for it
    assert [m.image for m in queue.messages] == [GOLDEN, GOLDEN]  # type: ignore[attr-defined]
    nodes = {n.image: n.status for n in store.cascade_nodes(patch.cascade_id)}
    assert nodes == {GOLDEN: NodeStatus.READY, APP: NodeStatus.WAITING}
    assert store.get_patch(BASE, D1).rebuilds == 2  # type: ignore[union-attr]


def test_a_promoted_rebuild_releases_the_image_built_on_it_pinned_to_its_new_digest(store):
    # Given the golden image's rebuild started and was promoted
    patch, queue = planned(store)
    (request,) = queue.messages
    golden = finished(store, started(store, request), RebuildStatus.SUCCEEDED, Outcome.PROMOTED)  # type: ignore[arg-type]
    topic, rebuilds = FakeTopic(), FakeQueue()
    # When it is concluded, twice (a replayed event)
    released = conclude(golden, store=store, topic=topic, rebuild_queue=rebuilds)
    conclude(store.rebuilds[golden.rebuild_id], store=store, topic=topic, rebuild_queue=rebuilds)
    # Then the app is enqueued once, on the golden image's new digest, and one alert is told
    assert released == [APP]
    (app,) = rebuilds.messages
    assert (app.base, app.base_digest, app.cascade) == (GOLDEN, digest(7), patch.cascade_id)  # type: ignore[attr-defined]
    assert topic.outcomes() == ["promoted"]
    assert store.in_flight == 0


def test_a_failed_rebuild_blocks_what_waits_on_it_and_the_summary_counts_it_skipped(store):
    # Given the golden image's rebuild failed
    patch, queue = planned(store)
    (request,) = queue.messages
    golden = finished(store, started(store, request), RebuildStatus.FAILED, Outcome.FAILED)  # type: ignore[arg-type]
    topic, rebuilds = FakeTopic(), FakeQueue()
    # When it is concluded
    released = conclude(golden, store=store, topic=topic, rebuild_queue=rebuilds)
    # Then nothing is released, the app is blocked and counted skipped, and the summary goes out
    assert released == []
    assert rebuilds.sent == []
    assert store.get_node(patch.cascade_id, APP).status is NodeStatus.BLOCKED  # type: ignore[union-attr]
    assert topic.outcomes() == ["failed", "summary"]
    counted = store.get_patch(BASE, D1)
    assert (counted.failed, counted.skipped, counted.summarized) == (1, 1, True)  # type: ignore[union-attr]


def test_a_project_the_stack_may_not_start_is_recorded_failed_and_told(store):
    # Given a rebuild request for a project outside the allowed ones
    _patch, queue = planned(store)
    (request,) = queue.messages
    # When the rebuilder takes it
    rebuild = start_rebuild(request, store=store, builds=FakeBuilds(), allowed_projects={"other"})  # type: ignore[arg-type]
    assert rebuild is not None
    conclude(rebuild, store=store, topic=(topic := FakeTopic()), rebuild_queue=FakeQueue())
    # Then it never started, failed, and said so
    assert (rebuild.status, rebuild.outcome) == (RebuildStatus.NOT_STARTED, Outcome.FAILED)
    assert "not one this stack may start" in (rebuild.reason or "")
    assert topic.outcomes()[0] == "failed"


def test_a_full_concurrency_cap_defers_a_cascade_rebuild_for_the_wait_given(store):
    # Given every slot of the cap taken
    _patch, queue = planned(store)
    (request,) = queue.messages
    store.in_flight = 2
    builds = FakeBuilds()
    # When the rebuild is started
    with pytest.raises(CapReached) as deferred:
        start_rebuild(request, store=store, builds=builds, allowed_projects={PROJECT}, cap=2, cap_wait=7)  # type: ignore[arg-type]
    # Then nothing was built, and it looks again after the wait given
    assert deferred.value.seconds == 7
    assert builds.calls == []
