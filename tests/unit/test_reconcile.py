"""The cap never leaks: the counter is reconciled against the builds really running."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber
from fakes import FakeBuilds, InMemoryStore

from patchprop.adapters.codebuild import CodeBuild
from patchprop.logic.reconcile import reconcile_slots

PROJECTS = {"patchprop-rebuild"}


def _start(builds: FakeBuilds, store: InMemoryStore, rebuild: str) -> str:
    assert store.claim_build_slot(2)
    return builds.start_build("patchprop-rebuild", {"PATCHPROP_REBUILD_ID": rebuild}, rebuild)


def test_a_slot_claimed_by_a_rebuilder_killed_before_its_start_is_released_in_one_cycle() -> None:
    # Given a cap of 2, one build running, and a rebuilder killed between its claim and StartBuild
    store, builds = InMemoryStore(), FakeBuilds()
    _start(builds, store, "r1")
    assert store.claim_build_slot(2)  # ... and then it died
    assert not store.claim_build_slot(2)  # the cap looks full
    # When the reconciler runs once
    done = reconcile_slots(slots=store, builds=builds, projects=PROJECTS)
    # Then the leaked slot is released and counted, and a waiting rebuild can claim it
    assert (done.in_use, done.running, done.released) == (2, 1, 1)
    assert store.claim_build_slot(2)


def test_slots_of_builds_really_running_are_kept() -> None:
    store, builds = InMemoryStore(), FakeBuilds()
    _start(builds, store, "r1")
    _start(builds, store, "r2")
    done = reconcile_slots(slots=store, builds=builds, projects=PROJECTS)
    assert done.released == 0 and store.build_slots_in_use() == 2


def test_a_counter_that_changed_meanwhile_is_left_for_the_next_cycle() -> None:
    # Given a leaked slot, and a claim landing between the reconciler's read and its write
    store = InMemoryStore()
    assert store.claim_build_slot(3)

    class Racing(FakeBuilds):
        def running_builds(self, projects):  # type: ignore[no-untyped-def]
            assert store.claim_build_slot(3)
            return 0

    done = reconcile_slots(slots=store, builds=Racing(), projects=PROJECTS)
    # Then nothing is overwritten: both claims still count
    assert done.released == 0 and store.build_slots_in_use() == 2


def test_an_empty_counter_asks_codebuild_nothing() -> None:
    store = InMemoryStore()

    class Unreachable(FakeBuilds):
        def running_builds(self, projects):  # type: ignore[no-untyped-def]
            raise AssertionError("CodeBuild asked")

    assert reconcile_slots(slots=store, builds=Unreachable(), projects=PROJECTS).released == 0


def _build(build_id: str, status: str, ours: bool = True) -> dict:
    env = [{"name": "PATCHPROP_REBUILD_ID", "value": "r", "type": "PLAINTEXT"}] if ours else []
    environment = {"type": "LINUX_CONTAINER", "image": "i", "computeType": "BUILD_GENERAL1_SMALL"}
    return {
        "id": build_id,
        "buildStatus": status,
        "environment": {**environment, "environmentVariables": env},
    }


def test_codebuild_counts_its_running_patchprop_builds_across_pages() -> None:
    # Given a project with two pages of builds: ours running, ours done, someone else's running
    client = boto3.client("codebuild", region_name="us-east-1")
    stub = Stubber(client)
    page1 = {"projectName": "patchprop-rebuild", "sortOrder": "DESCENDING"}
    stub.add_response("list_builds_for_project", {"ids": ["p:1", "p:2"], "nextToken": "t"}, page1)
    stub.add_response(
        "batch_get_builds",
        {"builds": [_build("p:1", "IN_PROGRESS"), _build("p:2", "IN_PROGRESS", ours=False)]},
        {"ids": ["p:1", "p:2"]},
    )
    stub.add_response("list_builds_for_project", {"ids": ["p:3", "p:4"]}, {**page1, "nextToken": "t"})
    stub.add_response(
        "batch_get_builds",
        {"builds": [_build("p:3", "SUCCEEDED"), _build("p:4", "IN_PROGRESS")]},
        {"ids": ["p:3", "p:4"]},
    )
    # When the running builds are counted
    with stub:
        running = CodeBuild(client).running_builds(PROJECTS)
        stub.assert_no_pending_responses()
    # Then only patchprop's builds in progress count
    assert running == 2


# ---- on a long wait on a full cap -----------------------------------------------------------


def _waiting_request(waits: int):  # type: ignore[no-untyped-def]
    from patchprop.domain.models import RebuildRequest, utcnow

    return RebuildRequest(
        rebuild_id=f"r-wait-{waits}",
        image="docker.io/acme/app:1",
        base="docker.io/acme/base:1",
        base_digest="sha256:" + "1" * 64,
        project="patchprop-rebuild",
        detected_at=utcnow(),
        cascade="docker.io/acme/base:1@sha256:" + "1" * 64,
        waits=waits,
    )


def test_a_rebuild_waiting_long_on_a_cap_full_of_leaked_slots_reconciles_and_starts() -> None:
    import pytest

    from patchprop.domain.errors import CapReached
    from patchprop.logic.reconcile import CAP_WAIT_RECONCILE_AFTER
    from patchprop.logic.start import start_rebuild

    # Given a cap of 2 whose both slots leaked (two rebuilders killed after their claim), none running
    store, builds = InMemoryStore(), FakeBuilds()
    assert store.claim_build_slot(2) and store.claim_build_slot(2)
    released: list[int] = []

    def start(waits: int):  # type: ignore[no-untyped-def]
        return start_rebuild(
            _waiting_request(waits),
            store=store,
            builds=builds,
            allowed_projects=PROJECTS,
            cap=2,
            on_released=released.append,
        )

    # When a rebuild has waited fewer times than CAP_WAIT_RECONCILE_AFTER, it only waits again
    for waits in range(CAP_WAIT_RECONCILE_AFTER - 1):
        with pytest.raises(CapReached):
            start(waits)
    assert builds.calls == [] and released == [] and store.build_slots_in_use() == 2
    # When it has waited that long, the counter is reconciled: the leaked slots go, it starts
    rebuild = start(CAP_WAIT_RECONCILE_AFTER - 1)
    assert rebuild is not None and rebuild.build_id
    assert released == [2] and len(builds.calls) == 1
    assert store.build_slots_in_use() == 1  # its own slot


def test_a_long_wait_on_a_cap_really_full_keeps_waiting() -> None:
    import pytest

    from patchprop.domain.errors import CapReached
    from patchprop.logic.reconcile import CAP_WAIT_RECONCILE_AFTER
    from patchprop.logic.start import start_rebuild

    # Given a cap of 2 with both builds really running
    store, builds = InMemoryStore(), FakeBuilds()
    _start(builds, store, "r1")
    _start(builds, store, "r2")
    released: list[int] = []
    # When a rebuild that waited long looks again, it is told to wait, and nothing is released
    with pytest.raises(CapReached):
        start_rebuild(
            _waiting_request(CAP_WAIT_RECONCILE_AFTER),
            store=store,
            builds=builds,
            allowed_projects=PROJECTS,
            cap=2,
            on_released=released.append,
        )
    assert released == [] and store.build_slots_in_use() == 2 and len(builds.calls) == 2
