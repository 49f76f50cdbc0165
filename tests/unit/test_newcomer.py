"""A newcomer's first hour (issue 11): the first push after registering patches, every failure
says why (record, tables, alert), and registering records what it can check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fakes import FakeQueue, FakeRegistry, InMemoryStore
from support import FakeBuilds

from patchprop.domain.alerts import email
from patchprop.domain.errors import ManifestNotFound
from patchprop.domain.events import BuildFailure, BuildResult, BuildStateChange, parse_build_result
from patchprop.domain.models import Dependent, RebuildRequest
from patchprop.domain.refs import ImageRef
from patchprop.logic.baseline import record_baselines
from patchprop.logic.conclude import REBUILD_ID_VAR, record_build_event
from patchprop.logic.detect import Seen, check_base
from patchprop.logic.start import start_rebuild
from patchprop_cli.rebuilds_cmd import rebuild_table

BASE = "docker.io/acme/base:1"
APP = "docker.io/acme/app:1"
D0, D1 = ("sha256:" + c * 64 for c in "01")
PROJECT = "patchprop-rebuild"


@dataclass
class Builds(FakeBuilds):
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def build_result(self, build_id: str) -> BuildResult | None:
        return parse_build_result(self.results.get(build_id))


class MissingRegistry(FakeRegistry):
    def resolve_digest(self, ref: ImageRef) -> str:
        raise ManifestNotFound(f"no manifest for {ref}")


def test_the_first_push_after_registering_patches_the_image() -> None:
    # Given an image registered on a base the registry has at D0
    store = InMemoryStore()
    dependent = Dependent(image=APP, project=PROJECT, bases=[BASE])
    store.put_dependent(dependent)
    recorded, warnings = record_baselines(dependent, store=store, registry=FakeRegistry({BASE: D0}))
    assert (recorded, warnings) == ([BASE], [])
    # When the base moves to D1 and is checked (webhook or poll)
    patches = FakeQueue()
    base = store.get_base(BASE)
    assert base is not None
    check = check_base(
        base, store=store, registry=FakeRegistry({BASE: D1}), patches=patches, detected_by="webhook"
    )
    # Then it is a move, not a baseline: a patch from D0 to D1 is enqueued
    assert (check.seen, check.previous_digest, check.digest) == (Seen.MOVED, D0, D1)
    assert len(patches.sent) == 1


def test_registering_on_a_base_the_registry_lacks_warns_naming_it() -> None:
    # Given a base not pushed yet
    store = InMemoryStore()
    dependent = Dependent(image=APP, project=PROJECT, bases=[BASE])
    store.put_dependent(dependent)
    # When registering records baselines
    recorded, warnings = record_baselines(dependent, store=store, registry=MissingRegistry())
    # Then nothing is recorded, and the warning names the field and the base
    assert recorded == [] and len(warnings) == 1
    assert warnings[0].startswith("bases: the registry does not have docker.io/acme/base:1 yet")


def test_a_base_already_tracked_keeps_its_digest() -> None:
    # Given a base tracked at D0, When another image registers on it while the tag is at D1
    store = InMemoryStore()
    dependent = Dependent(image=APP, project=PROJECT, bases=[BASE])
    store.put_dependent(dependent)
    store.record_digest(BASE, None, D0)
    registry = FakeRegistry({BASE: D1})
    recorded, _ = record_baselines(dependent, store=store, registry=registry)
    # Then the registry is not asked and D0 stays: the move to D1 is still seen
    assert recorded == [] and registry.asked == []
    assert store.get_base(BASE).digest == D0  # type: ignore[union-attr]


def failed_event(build_id: str, rebuild_id: str) -> BuildStateChange:
    return BuildStateChange.model_validate(
        {
            "build-status": "FAILED",
            "build-id": f"arn:aws:codebuild:us-east-1:123456789012:build/{build_id}",
            "project-name": PROJECT,
            "additional-information": {
                "environment": {"environment-variables": [{"name": REBUILD_ID_VAR, "value": rebuild_id}]}
            },
        }
    )


def test_a_failed_build_records_and_tells_its_step_and_log_tail() -> None:
    # Given a started rebuild whose build failed at `RUN false`
    store = InMemoryStore()
    dependent = Dependent(image=APP, project=PROJECT, bases=[BASE])
    store.put_dependent(dependent)
    from patchprop.domain.models import PatchRequest

    patch = PatchRequest(base=BASE, digest=D1, previous_digest=D0, detected_by="webhook")
    request = RebuildRequest.for_dependent(dependent, patch, f"{BASE}@{D1}")
    builds = Builds()
    rebuild = start_rebuild(request, store=store, builds=builds, allowed_projects={PROJECT}, cap=5)
    assert rebuild is not None and rebuild.build_id
    tail = 'STEP 2/2: RUN false\nerror building at STEP "RUN false": exit status 1'
    builds.results[rebuild.build_id] = {"failure": {"step": "building", "exit": 1, "tail": tail}}
    # When its FAILED event is recorded
    recorded = record_build_event(
        failed_event(rebuild.build_id, rebuild.rebuild_id),
        store=store,
        builds=builds,
        reports=None,  # type: ignore[arg-type]
    )
    # Then the record's reason names the step and holds the log's last lines
    assert recorded is not None and recorded.reason is not None
    assert recorded.reason.startswith("building failed with exit code 1")
    assert 'error building at STEP "RUN false": exit status 1' in recorded.reason
    # And the alert's "Why:" says the same
    alert = store.alerts[rebuild.rebuild_id]
    assert 'error building at STEP "RUN false"' in email(alert)[1].split("Why:", 1)[1]
    # And the rebuilds table shows the outcome, the reason's first line, and the full reason below
    text = rebuild_table([recorded.model_dump(mode="json")])
    assert "failed" in text.splitlines()[1] and "building failed with exit code 1" in text.splitlines()[1]
    assert '  error building at STEP "RUN false": exit status 1' in text


def test_a_failure_reason_without_a_message_says_the_step() -> None:
    assert BuildFailure(step="scanning", exit=2).reason == "scanning failed with exit code 2"
    assert (
        BuildFailure(step="verifying the pin", message="not pinned").reason == "verifying the pin: not pinned"
    )
