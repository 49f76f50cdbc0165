"""Rescans of promoted images: own findings against the base's, the day's budget, oldest first,
one rebuild per (image, digest, finding set), and the alert's reason."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fakes import FakeQueue, FakeReports, FakeTopic, InMemoryStore

from patchprop.domain.alerts import Alert
from patchprop.domain.findings import Finding, ScanReport, Severity
from patchprop.domain.models import Base, Dependent, PatchRequest, RebuildRequest
from patchprop.domain.records import Rebuild, RebuildStatus
from patchprop.domain.refs import ImageRef
from patchprop.domain.rescan import RescanState, own_fixable, own_fixes_reason, rescan_rebuild_id
from patchprop.domain.scan import parse_report
from patchprop.domain.scan.ecr import EcrScan
from patchprop.logic.alerts import tell_finished
from patchprop.logic.rescan import STARTED, RescanParts, rescan_due

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
BASE = "docker.io/library/debian:12"
BASE_DIGEST = "sha256:" + "b" * 64
BASE_REPORT = "s3://reports/base-reports/debian.json"
SCAN_DATA = Path(__file__).parent.parent / "data" / "scan"


def finding(cve: str, package: str, fixed: str | None = "2.0") -> Finding:
    return Finding(
        id=cve, package=package, installed_version="1.0", fixed_version=fixed, severity=Severity.HIGH
    )


def enhanced(*findings: Finding) -> dict[str, Any]:
    """One page of ECR enhanced-scanning findings, as DescribeImageScanFindings writes them."""
    return {
        "imageScanStatus": {"status": "COMPLETE"},
        "imageScanFindings": {
            "enhancedFindings": [
                {
                    "title": f.id,
                    "severity": f.severity.value,
                    "packageVulnerabilityDetails": {
                        "vulnerabilityId": f.id,
                        "vulnerablePackages": [
                            {
                                "name": f.package,
                                "version": f.installed_version,
                                "fixedInVersion": f.fixed_version,
                            }
                        ],
                    },
                }
                for f in findings
            ]
        },
    }


def trivy_base(*findings: Finding) -> bytes:
    vulns = [
        {"VulnerabilityID": f.id, "PkgName": f.package, "InstalledVersion": "1.0", "Severity": "HIGH"}
        for f in findings
    ]
    return json.dumps(
        {"SchemaVersion": 2, "Results": [{"Target": "base", "Vulnerabilities": vulns}]}
    ).encode()


@dataclass
class FakeRescans:
    states: dict[str, RescanState] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)

    def get_rescan(self, image: str) -> RescanState | None:
        return self.states.get(image)

    def claim_rescan(self, image: str, day: str, budget: int) -> bool:
        state = self.states.get(image)
        if self.used.get(day, 0) >= budget or (state is not None and state.day == day):
            return False
        self.used[day] = self.used.get(day, 0) + 1
        self.states[image] = (state or RescanState(image=image)).model_copy(update={"day": day})
        return True

    def put_rescan(self, state: RescanState) -> None:
        self.states[state.image] = state

    def rescans_spent(self, day: str) -> int:
        return self.used.get(day, 0)


@dataclass
class FakeScans:
    pages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def scan(self, image: ImageRef, digest: str) -> EcrScan:
        self.asked.append(f"{image.name}@{digest}")
        pages = self.pages.get(digest)
        return EcrScan("COMPLETE", "", pages) if pages is not None else EcrScan("PENDING", "not yet")


@dataclass
class World:
    store: InMemoryStore = field(default_factory=InMemoryStore)
    rescans: FakeRescans = field(default_factory=FakeRescans)
    scans: FakeScans = field(default_factory=FakeScans)
    reports: FakeReports = field(default_factory=FakeReports)
    queue: FakeQueue = field(default_factory=FakeQueue)

    @property
    def parts(self) -> RescanParts:
        return RescanParts(self.store, self.rescans, self.scans, self.reports, self.queue)

    def promoted(self, name: str, n: int, *own: Finding) -> str:
        """A registered image whose rebuild on BASE_DIGEST is on its tag; ECR lists `own` for it."""
        image = f"{REGISTRY}/acme/{name}:1"
        self.store.put_dependent(
            Dependent(image=image, project="patchprop-rebuild", bases=[BASE], policy="fail_on=critical")
        )
        self.store.bases[BASE] = Base(ref=BASE, digest=BASE_DIGEST)
        digest = "sha256:" + f"{n:x}" * 64
        at = datetime(2026, 1, 1, tzinfo=UTC)
        self.store.rebuilds[f"rb-{name}"] = Rebuild(
            rebuild_id=f"rb-{name}",
            image=image,
            base=BASE,
            base_digest=BASE_DIGEST,
            project="patchprop-rebuild",
            detected_at=at,
            base_report=BASE_REPORT,
            status=RebuildStatus.SUCCEEDED,
            image_digest=digest,
            promoted_at=at,
        )
        self.scans.pages[digest] = [enhanced(*own)]
        return image

    def tick(self, per_day: int = 10, now: datetime | None = None, **kw: Any) -> list:
        return rescan_due(self.parts, per_day=per_day, scan_source="ecr", now=now, **kw)

    def started(self) -> list[RebuildRequest]:
        return [m for m in self.queue.messages if isinstance(m, RebuildRequest)]


FROM_BASE = finding("CVE-2026-0001", "libssl3")
OWN = finding("CVE-2026-0002", "requests", "2.32.4")


def test_only_fixable_findings_the_base_does_not_list_are_the_images_own():
    base = ScanReport.of("trivy", "trivy", [FROM_BASE])
    report = ScanReport.of("ecr", "ecr", [FROM_BASE, OWN, finding("CVE-2026-0003", "urllib3", None)])
    assert [f.key for f in own_fixable(report, base)] == [OWN.key]


def test_the_base_split_on_real_trivy_reports():
    # The same golden as image and base: nothing is the image's own; against an empty base,
    # every finding with a fix is.
    report = parse_report((SCAN_DATA / "trivy-image.json").read_bytes())
    assert own_fixable(report, report) == []
    fixable = [f for f in report.findings if f.fixed_version]
    assert fixable and len(own_fixable(report, ScanReport.of("trivy", "trivy", []))) == len(fixable)


def test_own_fixes_start_one_rebuild_of_the_image_alone_with_the_reason():
    world = World()
    world.reports.reports[BASE_REPORT] = trivy_base(FROM_BASE)
    image = world.promoted("app", 1, FROM_BASE, OWN)
    (done,) = world.tick()
    assert done.outcome == STARTED
    (request,) = world.started()
    assert request.image == image and request.cascade is None and request.patch_by == "rebuild"
    assert request.base_digest == BASE_DIGEST and request.base_report == BASE_REPORT
    assert request.trigger == "own packages have fixes: CVE-2026-0002 in requests 1.0 (fixed in 2.32.4)"
    assert "libssl3" not in (request.trigger or "")
    assert request.policy == "fail_on=critical"  # the same gate


def test_no_own_fixes_records_the_rescan_and_starts_nothing():
    world = World()
    world.reports.reports[BASE_REPORT] = trivy_base(FROM_BASE)
    image = world.promoted("app", 1, FROM_BASE)
    (done,) = world.tick()
    assert done.outcome.startswith("no fixable own findings") and not world.started()
    state = world.rescans.states[image]
    assert state.at is not None and state.digest == "sha256:" + "1" * 64


def test_without_the_bases_findings_nothing_is_started():
    world = World()  # the base's report cannot be read: own and base not told apart
    world.promoted("app", 1, OWN)
    world.store.rebuilds["rb-app"] = world.store.rebuilds["rb-app"].model_copy(update={"base_report": None})
    (done,) = world.tick()
    assert "not told apart" in done.outcome and not world.started()


def test_a_second_tick_the_same_day_does_nothing_and_the_next_day_the_same_findings_start_nothing():
    world = World()
    world.reports.reports[BASE_REPORT] = trivy_base()
    world.promoted("app", 1, OWN)
    day = datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert len(world.tick(now=day)) == 1
    assert world.tick(now=day) == []  # a redelivered tick
    (again,) = world.tick(now=day + timedelta(days=1))
    assert "before" in again.outcome and len(world.started()) == 1


def test_a_new_finding_set_is_a_new_rebuild():
    world = World()
    world.reports.reports[BASE_REPORT] = trivy_base()
    world.promoted("app", 1, OWN)
    day = datetime(2026, 3, 1, tzinfo=UTC)
    world.tick(now=day)
    world.scans.pages["sha256:" + "1" * 64] = [enhanced(OWN, finding("CVE-2026-0009", "flask", "3.1"))]
    world.tick(now=day + timedelta(days=1))
    first, second = world.started()
    assert first.rebuild_id != second.rebuild_id
    assert second.rebuild_id == rescan_rebuild_id(
        second.image,
        "sha256:" + "1" * 64,
        own_fixable(
            ScanReport.of("ecr", "ecr", [OWN, finding("CVE-2026-0009", "flask", "3.1")]),
            ScanReport.of("t", "trivy", []),
        ),
    )


def test_the_budget_takes_the_oldest_rescanned_first_and_holds_across_ticks():
    world = World()
    world.reports.reports[BASE_REPORT] = trivy_base()
    images = [world.promoted(name, n, OWN) for n, name in enumerate(["a", "b", "c"], start=1)]
    old = datetime(2026, 2, 1, tzinfo=UTC)
    world.rescans.states[images[0]] = RescanState(
        image=images[0], day="2026-02-01", at=old + timedelta(hours=2)
    )
    world.rescans.states[images[1]] = RescanState(image=images[1], day="2026-02-01", at=old)
    day = datetime(2026, 3, 1, tzinfo=UTC)
    first = world.tick(per_day=2, now=day)
    assert [r.image for r in first] == [images[2], images[1]]  # never rescanned, then the oldest
    assert world.tick(per_day=2, now=day) == []  # the day's budget is spent (stored, not in memory)
    listing = world.store.list_dependents

    def refused(*_: Any) -> Any:
        raise AssertionError("a spent budget lists no image")

    world.store.list_dependents = refused  # type: ignore[method-assign]
    assert world.tick(per_day=2, now=day) == []
    world.store.list_dependents = listing  # type: ignore[method-assign]
    # The next day, the one not rescanned since February goes first.
    assert next(r.image for r in world.tick(per_day=2, now=day + timedelta(days=1))) == images[0]


def test_off_by_default_and_not_for_images_never_promoted_or_not_auto_rebuilt():
    world = World()
    world.reports.reports[BASE_REPORT] = trivy_base()
    image = world.promoted("app", 1, OWN)
    assert world.tick(per_day=0) == [] and not world.scans.asked
    world.store.rebuilds["rb-app"] = world.store.rebuilds["rb-app"].model_copy(update={"promoted_at": None})
    assert world.tick() == []
    world.store.dependents[image] = world.store.dependents[image].model_copy(update={"auto_rebuild": False})
    assert world.tick() == [] and not world.rescans.used


def test_a_moved_base_is_left_to_its_patch():
    world = World()
    world.reports.reports[BASE_REPORT] = trivy_base()
    world.promoted("app", 1, OWN)
    world.store.bases[BASE] = Base(ref=BASE, digest="sha256:" + "c" * 64)
    (done,) = world.tick()
    assert "moved since" in done.outcome and not world.started()


def test_the_alert_of_a_rescans_rebuild_says_why_first():
    reason = own_fixes_reason([OWN])
    rebuild = Rebuild(
        rebuild_id="rb-own-x",
        image="docker.io/acme/app:1",
        base=BASE,
        base_digest=BASE_DIGEST,
        project="patchprop-rebuild",
        detected_at=datetime(2026, 1, 1, tzinfo=UTC),
        trigger=reason,
        status=RebuildStatus.FAILED,
        reason="step 3 failed",
    )
    alert = Alert.from_rebuild(rebuild)
    assert alert.reasons[0] == f"Rebuilt because {reason}." and "step 3 failed" in alert.reasons


def test_the_reason_names_five_findings_and_counts_the_rest():
    many = [finding(f"CVE-2026-{n:04}", f"pkg{n}") for n in range(8)]
    assert own_fixes_reason(many).endswith("; and 3 more")


def test_a_rescans_rebuild_is_told_but_not_counted_on_its_bases_patch():
    store, topic = InMemoryStore(), FakeTopic()
    store.record_patch(PatchRequest(base=BASE, digest=BASE_DIGEST, detected_by="poller"), 1)
    rebuild = Rebuild(
        rebuild_id="rb-own-y",
        image="docker.io/acme/app:1",
        base=BASE,
        base_digest=BASE_DIGEST,
        project="patchprop-rebuild",
        detected_at=datetime(2026, 1, 1, tzinfo=UTC),
        trigger=own_fixes_reason([OWN]),
        status=RebuildStatus.FAILED,
    )
    store.rebuilds[rebuild.rebuild_id] = rebuild
    tell_finished(rebuild, store=store, topic=topic)
    patch = store.get_patch(BASE, BASE_DIGEST)
    assert len(topic.published) == 1 and patch is not None and patch.finished == 0


def test_a_scan_only_builds_token_and_report_are_the_days_and_the_digests() -> None:
    from patchprop.domain.rescan import rescan_env, rescan_report_uri, rescan_token

    digest = "sha256:" + "a" * 64
    # The same (image, digest, day) gives the same StartBuild token; another day another one
    assert rescan_token("r/acme/app:1", digest, "2026-12-02") == rescan_token(
        "r/acme/app:1", digest, "2026-12-02"
    )
    assert rescan_token("r/acme/app:1", digest, "2026-12-02") != rescan_token(
        "r/acme/app:1", digest, "2026-12-03"
    )
    assert rescan_token("r/acme/app:1", digest, "2026-12-02") != rescan_token(
        "r/acme/web:1", digest, "2026-12-02"
    )
    # Its report goes under the rescans root, per digest and day, never under base-reports/
    uri = rescan_report_uri("s3://b/rescans/", "r/acme/app", digest, "2026-12-02")
    assert uri == f"s3://b/rescans/r/acme/app/{'a' * 64}/2026-12-02/report.json"
    env = rescan_env("r/acme/app:1", f"r/acme/app@{digest}", digest, uri)
    assert env["PATCHPROP_MODE"] == "rescan" and env["RESCAN_REPORT_URI"] == uri
    assert "BASE_IMAGE" not in env  # nothing is built


def test_with_trivy_the_tick_starts_one_scan_a_day_and_each_rescan_by_hand_a_new_one():
    from support import FakeBuilds

    from patchprop.logic.rescan import rescan_by_hand

    # Given ScanSource=trivy: a builder for the scan-only builds, and a promoted image
    world, builds = World(), FakeBuilds()
    parts = RescanParts(
        world.store, world.rescans, world.scans, world.reports, world.queue,
        builds=builds, reports_uri="s3://b/rescans", projects=("patchprop-rebuild",),
    )  # fmt: skip
    image = world.promoted("app", 1, OWN)
    noon = datetime(2026, 12, 2, 12, tzinfo=UTC)
    # When the tick runs twice that day, and the image is rescanned by hand twice, a minute apart
    ticked = rescan_due(parts, per_day=5, scan_source="trivy", now=noon)
    assert rescan_due(parts, per_day=5, scan_source="trivy", now=noon) == []
    for minutes in (1, 2):
        rescan_by_hand(
            parts, per_day=5, scan_source="trivy", image=image, now=noon + timedelta(minutes=minutes)
        )
    # Then each started a scan-only build, with its own token and report (the day's one for the tick)
    assert [r.outcome for r in ticked] == ["scan started"]
    tokens = [b["token"] for b in builds.started]
    assert len(builds.started) == 3 and len(set(tokens)) == 3
    reports = [b["env"]["RESCAN_REPORT_URI"] for b in builds.started]
    assert reports[0].endswith("/2026-12-02/report.json") and reports[1].endswith(
        "/2026-12-02T120100Z/report.json"
    )
    # and the rescan waits for the last one
    state = world.rescans.get_rescan(image)
    assert (
        state is not None and state.build_id == builds.started[-1]["id"] and state.outcome == "scan started"
    )
    assert world.started() == []  # nothing is rebuilt before a scan's end is judged
