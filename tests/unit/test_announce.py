"""Outcome events (domain/outcome_events.py, logic/announce.py): which detail-type a verdict is,
what its detail says, and that each verdict is put on the bus once (in-memory ports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from fakes import FakeTopic, InMemoryStore

from patchprop.domain.alerts import Alert
from patchprop.domain.models import CascadeId, PatchRequest
from patchprop.domain.outcome_events import (
    IMAGE_BLOCKED,
    IMAGE_PROMOTED,
    PATCH_COMPLETED,
    REBUILD_FAILED,
    OutcomeEvent,
    detail_type_of,
    rebuild_event,
)
from patchprop.domain.records import Outcome, Rebuild, RebuildStatus
from patchprop.logic.alerts import count_on_patch, notify_once
from patchprop.logic.announce import announce_rebuild

OLD, NEW, BUILT = ("sha256:" + c * 64 for c in "abe")
BASE = "docker.io/acme/golden:1"
AT = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class FakeBus:
    put_events: list[OutcomeEvent] = field(default_factory=list)
    fail: bool = False

    def put(self, event: OutcomeEvent) -> None:
        if self.fail:
            raise RuntimeError("EventBridge refused (test)")
        self.put_events.append(event)


def finished_rebuild(store: InMemoryStore, outcome: Outcome, on_tag: bool) -> Rebuild:
    rebuild = Rebuild(
        rebuild_id="rb-1",
        image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:2",
        base=BASE,
        base_digest=NEW,
        previous_digest=OLD,
        project="p",
        status=RebuildStatus.SUCCEEDED,
        build_id="p:1",
        outcome=outcome,
        image_digest=BUILT,
        promoted_by="patchprop" if on_tag else None,
        promoted_at=AT if on_tag else None,
        detected_at=AT,
    )
    store.rebuilds[rebuild.rebuild_id] = rebuild
    return rebuild


@pytest.mark.parametrize(
    ("outcome", "on_tag", "kind"),
    [
        (Outcome.PROMOTED, True, IMAGE_PROMOTED),
        (Outcome.SUCCEEDED, True, IMAGE_PROMOTED),  # not scanned, on its tag
        (Outcome.PROMOTED, False, IMAGE_BLOCKED),  # the tag did not move: nothing to deploy
        (Outcome.HELD, False, IMAGE_BLOCKED),
        (Outcome.BLOCKED, False, IMAGE_BLOCKED),
        (Outcome.FAILED, False, REBUILD_FAILED),
        (Outcome.STOPPED, False, REBUILD_FAILED),
    ],
)
def test_detail_type_says_whether_there_is_a_digest_to_deploy(outcome, on_tag, kind):
    assert detail_type_of(outcome, on_tag) == kind


def test_a_promoted_event_names_the_repository_tag_and_digest_to_deploy():
    rebuild = finished_rebuild(InMemoryStore(), Outcome.PROMOTED, on_tag=True)
    event = rebuild_event(
        rebuild, Alert.from_rebuild(rebuild).model_copy(update={"outcome": Outcome.PROMOTED})
    )
    assert event.detail_type == IMAGE_PROMOTED and event.resources == [rebuild.image]
    d = event.detail
    assert (d["registry"], d["repository"], d["tag"]) == (
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        "team/app",
        "2",
    )
    assert d["promoted_image"] == f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app@{BUILT}"
    assert (d["base_digest"], d["previous_base_digest"], d["event_id"]) == (NEW, OLD, "rb-1:promoted")


def test_a_blocked_event_has_no_digest_to_deploy():
    rebuild = finished_rebuild(InMemoryStore(), Outcome.BLOCKED, on_tag=False)
    event = rebuild_event(
        rebuild, Alert.from_rebuild(rebuild).model_copy(update={"outcome": Outcome.BLOCKED})
    )
    assert event.detail_type == IMAGE_BLOCKED
    assert event.detail["promoted_digest"] is None and event.detail["digest"] == BUILT


def test_each_verdict_goes_once_and_a_changed_verdict_goes_again():
    store, bus, topic = InMemoryStore(), FakeBus(), FakeTopic()
    blocked = finished_rebuild(store, Outcome.BLOCKED, on_tag=False)
    # When the blocked verdict is told twice (a replayed event)
    assert notify_once(blocked, store=store, topic=topic, bus=bus)
    assert not notify_once(store.rebuilds["rb-1"], store=store, topic=topic, bus=bus)
    assert [e.detail_type for e in bus.put_events] == [IMAGE_BLOCKED]
    # When a person promotes it: a new verdict, a new event
    promoted = store.rebuilds["rb-1"].model_copy(update={"promoted_at": AT, "outcome": Outcome.PROMOTED})
    alert = Alert.from_rebuild(promoted).model_copy(update={"outcome": Outcome.PROMOTED})
    assert announce_rebuild(promoted, alert, store=store, bus=bus)
    assert [e.detail_type for e in bus.put_events] == [IMAGE_BLOCKED, IMAGE_PROMOTED]
    assert len(topic.published) == 1


def test_a_bus_failure_after_the_sns_message_sends_only_the_event_on_the_retry():
    store, bus, topic = InMemoryStore(), FakeBus(fail=True), FakeTopic()
    rebuild = finished_rebuild(store, Outcome.PROMOTED, on_tag=True)
    with pytest.raises(RuntimeError):
        notify_once(rebuild, store=store, topic=topic, bus=bus)
    bus.fail = False
    notify_once(store.rebuilds["rb-1"], store=store, topic=topic, bus=bus)
    assert len(topic.published) == 1 and [e.detail_type for e in bus.put_events] == [IMAGE_PROMOTED]
    assert store.rebuilds["rb-1"].announced is Outcome.PROMOTED


def test_the_patch_completes_on_the_bus_once_after_its_summary():
    store, bus, topic = InMemoryStore(), FakeBus(), FakeTopic()
    patch = PatchRequest(base=BASE, digest=NEW, previous_digest=OLD, detected_by="webhook")
    store.record_patch(patch, rebuilds=1)
    cascade = CascadeId.of(BASE, NEW)
    for _ in range(2):  # a replay counts nothing and sends nothing
        count_on_patch(cascade, "rb-1", "promoted", AT, store=store, topic=topic, bus=bus)
    assert [e.detail_type for e in bus.put_events] == [PATCH_COMPLETED]
    assert bus.put_events[0].detail["promoted"] == 1 and len(topic.published) == 1
