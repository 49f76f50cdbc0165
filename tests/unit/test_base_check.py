"""The base check, once per (base, digest) before fan-out, and the urgency it decides.

Scan reports are real-shaped Trivy JSON (tests/data/scan/gate): the previous digest of the base
carries CRITICAL and HIGH findings (`previous.trivy.json`), the new one none (`base.trivy.json`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from fakes import FakeQueue, FakeTopic, InMemoryStore

from patchprop.domain.base_check import BaseContents, ImageFacts, SignatureError
from patchprop.domain.events import BuildResult
from patchprop.domain.findings import ScanReportError
from patchprop.domain.models import Base, Dependent, PatchRequest, RebuildRequest, utcnow
from patchprop.domain.provenance import Provenance
from patchprop.domain.records import Rebuild, RebuildStatus
from patchprop.domain.refs import ImageRef
from patchprop.domain.scan import parse_report
from patchprop.domain.urgency import BaseSettings, parse_base_settings
from patchprop.logic.base_check import admit_patch, release_due
from patchprop.logic.start import build_env
from patchprop.logic.verdict import judge

DATA = Path(__file__).parents[1] / "data" / "scan"
FIXES = (DATA / "gate" / "previous.trivy.json").read_bytes()  # what the old digest carries
CLEAN = (DATA / "gate" / "base.trivy.json").read_bytes()
REBUILT = (DATA / "gate" / "rebuilt.trivy.json").read_bytes()
BASE = "docker.io/library/python:3.13"
OTHER = "docker.io/library/node:22"
OLD, NEW, NEWER = ("sha256:" + c * 64 for c in "abc")
PACKAGES = {"openssl (deb)": "3.0.14", "libexpat1 (deb)": "2.5.0-1"}
FACTS = ImageFacts(user="root", entrypoint=["python3"], architectures=["amd64", "arm64"])


@dataclass
class FakeSources:
    """The BaseSources port: contents by digest, every read counted."""

    by_digest: dict[str, BaseContents] = field(default_factory=dict)
    reads: Counter[str] = field(default_factory=Counter)
    verified: list[str] = field(default_factory=list)
    bad_keys: set[str] = field(default_factory=set)
    kev_ids: frozenset[str] = frozenset()
    provenances: dict[str, Provenance] = field(default_factory=dict)

    def verify(self, image: ImageRef, key: str) -> None:
        self.verified.append(image.pinned)
        if key in self.bad_keys:
            raise SignatureError(f"the key {key!r} cannot be read")

    def contents(self, image: ImageRef) -> BaseContents:
        self.reads[image.digest or ""] += 1
        return self.by_digest.get(image.digest or "", BaseContents(notes=["no report"]))

    def kev(self) -> frozenset[str]:
        return self.kev_ids

    def provenance(self, image: ImageRef) -> Provenance:
        return self.provenances.get(image.digest or "", Provenance(state="none"))


def contents(report: bytes | None, digest: str, packages: dict[str, str] | None = None) -> BaseContents:
    return BaseContents(
        packages=dict(PACKAGES if packages is None else packages),
        facts=FACTS,
        report=parse_report(report) if report else None,
        report_uri=f"s3://reports/base/{digest}/report.json" if report else None,
    )


def fleet(store: InMemoryStore, n: int, base: str = BASE, owner: str = "team") -> list[str]:
    images = [f"docker.io/acme/app{i}:1" for i in range(n)]
    store.bases[base] = Base(ref=base, digest=NEW, previous_digest=OLD)
    for i, image in enumerate(images):
        store.put_dependent(Dependent(image=image, bases=[base], project="pp", owner=f"{owner}-{i % 3}"))
    return images


def patch_of(base: str = BASE, digest: str = NEW, previous: str = OLD, **extra: object) -> PatchRequest:
    return PatchRequest(base=base, digest=digest, previous_digest=previous, detected_by="poller", **extra)  # type: ignore[arg-type]


@pytest.fixture
def world() -> tuple[InMemoryStore, FakeQueue, FakeTopic, FakeSources]:
    return InMemoryStore(), FakeQueue(), FakeTopic(), FakeSources()


def admit(world: tuple, patch: PatchRequest, settings: dict[str, BaseSettings] | None = None, **kw: object):
    store, queue, topic, sources = world
    return admit_patch(
        patch, store=store, rebuild_queue=queue, topic=topic, sources=sources, settings=settings or {}, **kw
    )


def test_a_20_image_cascade_scans_its_base_once_and_every_gate_reads_that_report(world) -> None:
    # Given 20 images on a base whose new digest fixes a CRITICAL finding the old one had
    store, queue, topic, sources = world
    images = fleet(store, 20)
    sources.by_digest = {NEW: contents(CLEAN, NEW), OLD: contents(FIXES, OLD)}
    # When the patch is admitted (and redelivered twice)
    for _ in range(3):
        admission = admit(world, patch_of())
    # Then the new digest was read once, the previous at most once, and all 20 rebuilds were planned
    assert sources.reads == Counter({NEW: 1, OLD: 1})
    assert admission.check.urgency == "now"
    requests = [m for m in queue.messages if isinstance(m, RebuildRequest)]
    assert {r.image for r in requests} == set(images)
    base_report = f"s3://reports/base/{NEW}/report.json"
    assert {r.base_report for r in requests} == {base_report}
    # and each build is told the base's report, so the build does not scan the base again
    assert {build_env(r)["PATCHPROP_BASE_REPORT"] for r in requests} == {base_report}
    # and the gate of every rebuild reads that one report as "came with the base"
    reads: Counter[str] = Counter()

    class CountingReports:
        def read_report(self, uri: str) -> bytes:
            reads[uri] += 1
            return CLEAN if uri == base_report else REBUILT

    for request in requests[:20]:
        rebuild = Rebuild.started(request, "pp:1")
        result = BuildResult(
            image=request.image, digest=NEW, base=request.pinned_base, report="s3://r/x.json"
        )
        judge(rebuild, result, store=store, reports=CountingReports(), require_scan=True)
    assert reads[base_report] == 20
    # and one "base moved" message went out, before the rebuilds, saying why it is urgent
    (moved,) = [m for m in topic.published if m.attributes["outcome"] == "base-moved"]
    assert moved.attributes["urgency"] == "now"
    assert "fixes CVE-2024-45490 (CRITICAL) in libexpat1" in moved.subject
    assert "20 images will rebuild now" in moved.body
    assert moved.attributes["owner"] == ("team-0", "team-1", "team-2")  # for each owner's filter policy
    # and the check is recorded on the patch
    recorded = store.get_patch(BASE, NEW)
    assert recorded is not None and recorded.base_check is not None
    assert recorded.base_check.report_uri == base_report
    assert {f.id for f in recorded.base_check.diff.fixed} == {
        "CVE-2024-45490",
        "CVE-2024-45491",
        "CVE-2024-37371",
    }


def test_a_republish_with_no_package_change_is_skipped_and_rebuilt_with_now(world) -> None:
    # Given a new digest whose packages, findings and config are the old one's
    store, queue, topic, sources = world
    fleet(store, 5)
    sources.by_digest = {NEW: contents(FIXES, NEW), OLD: contents(FIXES, OLD)}
    # When it is admitted
    admission = admit(world, patch_of())
    # Then nothing is rebuilt, and the message says so and why
    assert admission.check.urgency == "skip"
    assert queue.messages == []
    assert "no fixes; nothing changed but metadata, so nothing rebuilds" in topic.published[0].subject
    # When the owner forces it (`patchprop patch BASE --now`)
    forced = admit(world, patch_of(force_now=True))
    # Then it rebuilds now, without checking the base again
    assert forced.check.urgency == "now" and forced.plan is not None and forced.plan.rebuilds == 5
    assert len([m for m in queue.messages if isinstance(m, RebuildRequest)]) == 5
    assert sources.reads[NEW] == 1
    assert "forced by hand" in topic.published[-1].subject


def test_a_change_with_no_fix_is_batched_until_the_window_ends_and_released_once(world) -> None:
    # Given a new digest with a changed package but no fix, under a 24 h window
    store, queue, topic, sources = world
    fleet(store, 3)
    sources.by_digest = {
        NEW: contents(FIXES, NEW, {**PACKAGES, "openssl (deb)": "3.0.15"}),
        OLD: contents(FIXES, OLD),
        NEWER: contents(FIXES, NEWER, {**PACKAGES, "openssl (deb)": "3.0.16"}),
    }
    now = utcnow()
    # When it is admitted, then a newer digest comes an hour later
    first = admit(world, patch_of(), now=now)
    second = admit(world, patch_of(digest=NEWER, previous=NEW), now=now + timedelta(hours=1))
    # Then nothing is rebuilt yet; one hold for the base, the latest digest, due when the first was
    assert first.check.urgency == second.check.urgency == "batch"
    assert queue.messages == []
    hold = store.get_hold(BASE)
    assert hold is not None and hold.patch.digest == NEWER
    assert hold.release_at == first.check.release_at == now + timedelta(hours=24)
    assert (
        "batched until" in topic.published[0].subject
        and "no fix at or above HIGH" in topic.published[0].subject
    )
    # When the poller ticks before, then after the window (twice: a tick after a restart)
    patches = FakeQueue()
    assert release_due(store=store, patches=patches, now=now + timedelta(hours=2)) == []
    released = release_due(store=store, patches=patches, now=now + timedelta(hours=25))
    again = release_due(store=store, patches=patches, now=now + timedelta(hours=26))
    # Then the latest digest is sent to the planner once, admitted, and planned without a new check
    assert released == [f"{BASE}@{NEWER}"] and again == []
    (sent,) = patches.messages
    assert isinstance(sent, PatchRequest) and sent.admitted and sent.digest == NEWER
    planned = admit(world, sent)
    assert planned.plan is not None and planned.plan.rebuilds == 3
    assert sources.reads[NEWER] == 1


def test_a_release_lost_between_send_and_drop_is_sent_again_and_planned_once(world) -> None:
    # Given a due hold whose first release crashed after sending (the hold is still there)
    store, queue, _topic, sources = world
    fleet(store, 2)
    sources.by_digest = {NEW: contents(FIXES, NEW, {"x": "2"}), OLD: contents(FIXES, OLD, {"x": "1"})}
    now = utcnow()
    admit(world, patch_of(), now=now)
    hold = store.get_hold(BASE)
    assert hold is not None
    # When the planner gets it twice (the crashed tick's send, then the next tick's)
    patches = FakeQueue()
    patches.send(hold.patch)
    release_due(store=store, patches=patches, now=now + timedelta(days=2))
    for sent in patches.messages:
        admit(world, sent)  # type: ignore[arg-type]
    # Then its cascade is planned once: each image is sent once per rebuild id
    ids = [m.rebuild_id for m in queue.messages if isinstance(m, RebuildRequest)]
    assert len(set(ids)) == 2


def test_a_fix_in_the_kev_list_is_urgent_below_the_severity(world) -> None:
    # Given a policy that is urgent only from CRITICAL, and a KEV list naming the HIGH finding fixed
    store, _queue, _topic, sources = world
    fleet(store, 1)
    sources.by_digest = {NEW: contents(CLEAN, NEW), OLD: contents(FIXES, OLD)}
    sources.kev_ids = frozenset({"CVE-2024-37371"})
    settings = parse_base_settings('{"*": {"severity": "critical"}}')
    # When it is admitted
    admission = admit(world, patch_of(), settings)
    # Then it rebuilds now, saying the KEV entry
    assert admission.check.urgency == "now"
    assert "in KEV: CVE-2024-37371" in admission.check.urgency_reason


def test_a_signature_that_fails_starts_nothing_and_alerts_every_owner(world) -> None:
    # Given two bases, one with a key that cannot be read
    store, queue, topic, sources = world
    fleet(store, 6)
    fleet(store, 2, base=OTHER, owner="web")
    sources.by_digest = {NEW: contents(CLEAN, NEW), OLD: contents(FIXES, OLD)}
    sources.bad_keys = {"file:///missing.pub"}
    settings = parse_base_settings(json.dumps({BASE: {"key": "file:///missing.pub"}}))
    # When both move
    refused = admit(world, patch_of(), settings)
    other = admit(world, patch_of(base=OTHER), settings)
    # Then the first fails closed: nothing planned, one alert per owner of its dependents
    assert refused.check.urgency == "refused" and refused.check.signature == "failed"
    assert "cannot be read" in refused.check.signature_reason
    assert sources.reads[NEW] == 1  # only the other base was read
    refusals = [m for m in topic.published if m.attributes["outcome"] == "base-refused"]
    assert sorted(m.attributes["owner"] for m in refusals) == ["team-0", "team-1", "team-2"]
    assert "nothing rebuilds on it" in refusals[0].subject
    rebuilt = {m.image for m in queue.messages if isinstance(m, RebuildRequest)}
    # and the other base goes on
    assert other.check.urgency == "now" and len(rebuilt) == 2
    # and a redelivery alerts nobody again
    admit(world, patch_of(), settings)
    assert len([m for m in topic.published if m.attributes["outcome"] == "base-refused"]) == 3


def test_a_base_not_scanned_goes_on_by_default_and_says_the_comparison_is_weaker(world) -> None:
    store, _queue, topic, sources = world
    fleet(store, 2)
    # Given no report of either digest
    admission = admit(world, patch_of())
    # Then it rebuilds (not_scanned=go), and the check says why the gates are weaker
    assert admission.check.urgency == "now" and not admission.check.scanned
    assert any("weaker" in note for note in admission.check.notes)
    assert "weaker" in topic.published[0].body
    # Given a policy that batches unscanned bases
    store2 = InMemoryStore()
    fleet(store2, 2)
    held = admit(
        (store2, FakeQueue(), FakeTopic(), sources),
        patch_of(),
        parse_base_settings('{"*": {"not_scanned": "batch"}}'),
    )
    assert held.check.urgency == "batch"


def test_a_soak_holds_a_fix_and_a_newer_digest_replaces_it(world) -> None:
    store, queue, _topic, sources = world
    fleet(store, 2)
    sources.by_digest = {
        NEW: contents(CLEAN, NEW),
        OLD: contents(FIXES, OLD),
        NEWER: contents(CLEAN, NEWER, {"x": "1"}),
    }
    settings = parse_base_settings('{"*": {"soak_hours": 2}}')
    now = utcnow()
    first = admit(world, patch_of(), settings, now=now)
    assert first.check.urgency == "soak" and queue.messages == []
    second = admit(world, patch_of(digest=NEWER, previous=NEW), settings, now=now + timedelta(hours=1))
    hold = store.get_hold(BASE)
    assert hold is not None and hold.patch.digest == NEWER
    assert second.check.release_at == now + timedelta(hours=3)


def test_settings_that_do_not_read_name_the_base_when_strict() -> None:
    # At deploy and start time, the first bad entry is an error naming the entry and the field
    with pytest.raises(ValueError, match=r"python:3\.13.*severity"):
        parse_base_settings('{"docker.io/library/python:3.13": {"severity": "urgent"}}', strict=True)
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_base_settings("{", strict=True)
    with pytest.raises(ValueError, match=r"\['\*'\] key: s3: is not a key reference"):
        parse_base_settings('{"*": {"key": "s3://keys/cosign.pub"}}', strict=True)
    with pytest.raises(ValueError, match=r"key: ssm: names nothing"):
        parse_base_settings('{"*": {"key": "ssm:"}}', strict=True)
    with pytest.raises(ValueError, match=r"problem: not a setting"):
        parse_base_settings('{"*": {"problem": ""}}', strict=True)


def test_a_malformed_entry_fails_only_its_own_base(world) -> None:
    # Given BASE_CHECKS with a typo in one base's entry and a good one for another
    store, queue, topic, sources = world
    fleet(store, 3)
    fleet(store, 2, base=OTHER, owner="web")
    sources.by_digest = {NEW: contents(CLEAN, NEW), OLD: contents(FIXES, OLD)}
    settings = parse_base_settings(json.dumps({BASE: {"severty": "critical"}, OTHER: {"severity": "low"}}))
    # When both move
    bad = admit(world, patch_of(), settings)
    other = admit(world, patch_of(base=OTHER), settings)
    # Then the bad entry's base fails closed, reading nothing, saying the entry and the field
    assert bad.check.urgency == "refused" and bad.plan is None
    assert f"BASE_CHECKS[{BASE!r}] severty" in bad.check.urgency_reason
    assert sources.verified == [] and sources.reads[NEW] == 1  # only the other base was read
    refusals = [m for m in topic.published if m.attributes["outcome"] == "base-refused"]
    assert refusals and all("severty" in m.body for m in refusals)
    assert store.get_patch(BASE, NEW) is not None  # recorded with its check, nothing rebuilt
    # and the other base goes on with its own settings
    assert other.check.urgency == "now"
    rebuilt = {m.image for m in queue.messages if isinstance(m, RebuildRequest)}
    assert len(rebuilt) == 2
    # and once the entry is fixed, the digest is judged (the refusal was not kept as its check)
    assert store.get_base_check(BASE, NEW) is None
    fixed = admit(world, patch_of(force_now=True), parse_base_settings(json.dumps({BASE: {}})))
    assert fixed.check.urgency == "now" and fixed.plan is not None


def test_a_document_that_does_not_read_fails_every_base_closed(world) -> None:
    store, _queue, _topic, sources = world
    fleet(store, 1)
    admission = admit(world, patch_of(), parse_base_settings("{not json"))
    assert admission.check.urgency == "refused"
    assert "BASE_CHECKS is not valid JSON" in admission.check.urgency_reason
    assert sources.reads == Counter()


def test_a_vex_statement_removes_the_finding_before_the_diff() -> None:
    from patchprop.domain.base_check import read_vex, without_vex

    report = parse_report(FIXES)
    statement = {"vulnerability": {"name": "CVE-2024-37371"}, "status": "not_affected"}
    vex = json.dumps({"@context": "https://openvex.dev/ns/v0.2.0", "statements": [statement]}).encode()
    kept = without_vex(report, read_vex(vex))
    assert {f.id for f in kept.findings} == {"CVE-2024-45490", "CVE-2024-45491"}
    with pytest.raises(ScanReportError):
        read_vex(b"{")


def test_a_build_that_finished_keeps_its_report_for_the_children(world) -> None:
    # Given a golden image's rebuild on the base, finished with its own report
    from patchprop.domain.records import Finish
    from patchprop.logic.conclude import advance_cascade

    store, queue, _topic, sources = world
    store.bases[BASE] = Base(ref=BASE, digest=NEW, previous_digest=OLD)
    golden, app = "docker.io/acme/golden:1", "docker.io/acme/app:1"
    store.put_dependent(Dependent(image=golden, bases=[BASE], project="pp"))
    store.put_dependent(Dependent(image=app, bases=[golden], project="pp"))
    store.bases[golden] = Base(ref=golden, digest=OLD)
    sources.by_digest = {NEW: contents(CLEAN, NEW), OLD: contents(FIXES, OLD)}
    admit(world, patch_of())
    (first,) = [m for m in queue.messages if isinstance(m, RebuildRequest)]
    store.set_node_status(
        first.cascade,
        golden,
        __import__("patchprop").domain.records.NodeStatus.RUNNING,
        expect=[__import__("patchprop").domain.records.NodeStatus.READY],
    )  # type: ignore[arg-type]
    store.record_started(Rebuild.started(first, "pp:1"))
    finished = store.record_finished(
        first.rebuild_id,
        Finish(
            status=RebuildStatus.SUCCEEDED,
            build_id="pp:1",
            report_uri="s3://r/golden.json",
            image_digest=NEWER,
        ),
    )
    # When its cascade advances
    released, _ = advance_cascade(finished, store=store, rebuild_queue=queue)  # type: ignore[arg-type]
    # Then the app's rebuild reads the golden image's report as its base's: no scan of golden again
    assert released == [app]
    child = [m for m in queue.messages if isinstance(m, RebuildRequest) and m.image == app]
    assert child[0].base_report == "s3://r/golden.json"


def test_patch_now_sends_the_current_digest_forced_and_refuses_an_unknown_base(world) -> None:
    from patchprop.domain.errors import NotFound, NotPromotable
    from patchprop.logic.base_check import patch_now

    store, queue, _topic, sources = world
    fleet(store, 2)
    sources.by_digest = {NEW: contents(FIXES, NEW), OLD: contents(FIXES, OLD)}
    assert admit(world, patch_of()).check.urgency == "skip"
    # When an owner says `patchprop patch BASE --now`
    patches = FakeQueue()
    sent = patch_now(BASE, store=store, patches=patches)
    # Then the base's current digest goes to the planner, forced, and rebuilds
    assert sent.force_now and sent.digest == NEW and sent.detected_by == "person"
    assert admit(world, sent).check.urgency == "now"
    assert len([m for m in queue.messages if isinstance(m, RebuildRequest)]) == 2
    # and an unknown base, or one with no digest yet, is refused naming the field
    with pytest.raises(NotFound) as unknown:
        patch_now("docker.io/library/nope:1", store=store, patches=patches)
    store.bases[OTHER] = Base(ref=OTHER)
    with pytest.raises(NotPromotable) as early:
        patch_now(OTHER, store=store, patches=patches)
    assert unknown.value.field == early.value.field == "base"
    assert len(patches.messages) == 1


def test_a_fix_no_dependent_carries_is_no_hurry(world) -> None:
    from patchprop.domain.records import Finish, Outcome

    # Given dependents whose last reports on their tags do not have the base's fixed findings
    store, queue, _topic, sources = world
    images = fleet(store, 2)
    sources.by_digest = {NEW: contents(CLEAN, NEW, {"x": "2"}), OLD: contents(FIXES, OLD, {"x": "1"})}
    for n, image in enumerate(images):
        request = RebuildRequest.for_dependent(store.dependents[image], patch_of(digest=OLD, previous=NEW))
        store.record_started(Rebuild.started(request, f"pp:{n}"))
        store.record_finished(
            request.rebuild_id,
            Finish(
                status=RebuildStatus.SUCCEEDED, build_id=f"pp:{n}", outcome=Outcome.PROMOTED,
                report_uri=f"s3://r/{n}.json", promoted_at=utcnow(),
            ),
        )  # fmt: skip

    class OwnReports:
        def read_report(self, uri: str) -> bytes:
            return REBUILT  # their own finding only (the base's were removed in their Dockerfiles)

    # When the base moves with fixes of findings none of them has
    admission = admit(world, patch_of(), reports=OwnReports())
    # Then it is batched, not rebuilt now
    assert admission.check.urgency == "batch" and queue.messages == []
    # and the same move, for dependents that do carry them, rebuilds now
    carrying = InMemoryStore(rebuilds=store.rebuilds, dependents=store.dependents, bases=dict(store.bases))
    now = admit((carrying, FakeQueue(), FakeTopic(), sources), patch_of(), reports=FakeReportsOf(FIXES))
    assert now.check.urgency == "now"


class FakeReportsOf:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read_report(self, uri: str) -> bytes:
        return self.data
