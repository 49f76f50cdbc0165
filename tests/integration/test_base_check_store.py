"""The base checks and holds on DynamoDB (moto): written once, and a hold survives a restart
(a new Store on the same table) and is released once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fakes import FakeQueue

from patchprop.adapters.dynamodb import Store
from patchprop.domain.base_check import BaseJudgement
from patchprop.domain.models import PatchRequest, utcnow
from patchprop.domain.records import Hold
from patchprop.logic.base_check import release_due

BASE = "docker.io/library/python:3.13"
OLD, NEW, NEWER = ("sha256:" + c * 64 for c in "abc")


def hold_of(digest: str, due: Any) -> Hold:
    patch = PatchRequest(base=BASE, digest=digest, previous_digest=OLD, detected_by="poller", admitted=True)
    return Hold(patch=patch, release_at=due, urgency="batch", reason="no fix at or above HIGH")


def test_a_base_check_is_written_once_and_recorded_on_its_patch(aws: Any) -> None:
    # Given a check of a new digest, recorded, then a second (a redelivery's) with another verdict
    store = Store(aws.refs["PatchpropTable"])
    first = BaseJudgement(base=BASE, digest=NEW, previous_digest=OLD, urgency="batch", scanned=True)
    assert store.put_base_check(first) == first
    # When another is put, then one forced over it
    kept = store.put_base_check(first.model_copy(update={"urgency": "now"}))
    forced = store.put_base_check(first.model_copy(update={"urgency": "now"}), replace=True)
    # Then the first stays until replaced on purpose, and a patch carries its check
    assert kept.urgency == "batch" and forced.urgency == "now"
    assert store.get_base_check(BASE, NEW) == forced
    store.record_patch(PatchRequest(base=BASE, digest=NEW, detected_by="poller"), 0, base_check=forced)
    patch = store.get_patch(BASE, NEW)
    assert patch is not None and patch.base_check == forced
    # and the "base moved" message is claimed once per urgency
    assert store.claim_base_told(BASE, NEW, "now") and not store.claim_base_told(BASE, NEW, "now")
    store.release_base_told(BASE, NEW, "now")
    assert store.claim_base_told(BASE, NEW, "now")


def test_a_hold_survives_a_restart_and_is_released_once(aws: Any) -> None:
    # Given a held digest replaced by a newer one (the latest wins), due in an hour
    due = utcnow() + timedelta(hours=1)
    Store(aws.refs["PatchpropTable"]).put_hold(hold_of(NEW, due))
    Store(aws.refs["PatchpropTable"]).put_hold(hold_of(NEWER, due))
    # When the stack restarts (a new store on the same table) and ticks before, then after, twice
    restarted = Store(aws.refs["PatchpropTable"])
    patches = FakeQueue()
    early = release_due(store=restarted, patches=patches, now=utcnow())
    late = release_due(store=restarted, patches=patches, now=due + timedelta(seconds=1))
    again = release_due(
        store=Store(aws.refs["PatchpropTable"]), patches=patches, now=due + timedelta(hours=1)
    )
    # Then the latest digest is released once, nothing before its time, nothing twice
    assert early == [] and again == []
    assert late == [f"{BASE}@{NEWER}"]
    assert [m.digest for m in patches.messages] == [NEWER]  # type: ignore[attr-defined]
    assert restarted.get_hold(BASE) is None
    # and dropping a hold that holds another digest does nothing
    restarted.put_hold(hold_of(NEW, due))
    assert not restarted.drop_hold(BASE, NEWER) and restarted.get_hold(BASE) is not None
