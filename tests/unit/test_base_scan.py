"""The planner's one check-only scan of a base digest with no report (logic/base_scan.py), on the
in-memory ports: what starts it, what does not, and a start that fails."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from fakes import FakeBuilds, FakeQueue, FakeTopic, InMemoryBaseScans, InMemoryStore
from test_base_check import BASE, CLEAN, FIXES, NEW, OLD, FakeSources, admit, contents, fleet, patch_of

from patchprop.domain.errors import BuildStartFailed, BuildThrottled
from patchprop.domain.models import RebuildRequest
from patchprop.domain.urgency import parse_base_settings
from patchprop.logic.base_scan import BaseScanner

REPORTS = "s3://reports/base-reports"


class RefusingBuilds(FakeBuilds):
    def start_build(self, project: str, env: Mapping[str, str], idempotency_token: str, **_: object) -> str:
        raise BuildStartFailed(f"CodeBuild refused to start {project}: AccessDeniedException")


@pytest.fixture
def world() -> tuple[InMemoryStore, FakeQueue, FakeTopic, FakeSources]:
    return InMemoryStore(), FakeQueue(), FakeTopic(), FakeSources()


def scanner(builds: FakeBuilds, projects: tuple[str, ...] = ("pp",)) -> BaseScanner:
    return BaseScanner(builds, InMemoryBaseScans(), REPORTS, projects)


def rebuilds(queue: FakeQueue) -> list[RebuildRequest]:
    return [m for m in queue.messages if isinstance(m, RebuildRequest)]


def test_no_report_starts_one_scan_and_plans_nothing_until_it_is_back(world) -> None:
    store, queue, _topic, sources = world
    fleet(store, 4)
    sources.by_digest = {OLD: contents(FIXES, OLD)}
    scan = scanner(FakeBuilds())
    # When the patch of a digest with no report is admitted twice
    first, again = (admit(world, patch_of(), scanner=scan) for _ in range(2))
    # Then one build started, on the dependents' project, and nothing is planned
    assert [b["project"] for b in scan.builds.started] == ["pp"]  # type: ignore[attr-defined]
    assert first.check.urgency == again.check.urgency == "checking" and rebuilds(queue) == []
    # When it comes back scanned (the report now there)
    sources.by_digest[NEW] = contents(CLEAN, NEW)
    back = admit(world, patch_of(base_scanned=True), scanner=scan)
    # Then it is checked with that report and planned
    assert back.check.scanned and back.check.urgency == "now" and len(rebuilds(queue)) == 4
    assert len(scan.builds.started) == 1  # type: ignore[attr-defined]


def test_a_refused_signature_starts_no_scan(world) -> None:
    store, _queue, _topic, sources = world
    fleet(store, 2)
    sources.bad_keys = {"file:///missing.pub"}
    settings = parse_base_settings(json.dumps({BASE: {"key": "file:///missing.pub"}}))
    scan = scanner(FakeBuilds())
    admission = admit(world, patch_of(), settings, scanner=scan)
    assert admission.check.urgency == "refused" and scan.builds.started == []  # type: ignore[attr-defined]


def test_a_throttled_start_forgets_its_claim_so_the_retry_starts_it(world) -> None:
    store, _queue, _topic, _sources = world
    fleet(store, 2)
    scan = scanner(FakeBuilds(throttle=lambda call: call == 1))
    with pytest.raises(BuildThrottled):
        admit(world, patch_of(), scanner=scan)
    assert scan.scans.get_base_scan(BASE, NEW) is None
    assert admit(world, patch_of(), scanner=scan).check.urgency == "checking"
    assert len(scan.builds.started) == 1  # type: ignore[attr-defined]


def test_a_start_refused_for_good_plans_now_and_says_why_it_was_not_scanned(world) -> None:
    store, queue, _topic, _sources = world
    fleet(store, 2)
    admission = admit(world, patch_of(), scanner=scanner(RefusingBuilds()))
    assert admission.check.urgency == "now" and not admission.check.scanned and len(rebuilds(queue)) == 2
    assert any("could not start" in n and "AccessDenied" in n for n in admission.check.notes)


def test_no_dependent_on_a_startable_project_plans_now_and_says_so(world) -> None:
    store, queue, _topic, _sources = world
    fleet(store, 2)
    scan = scanner(FakeBuilds(), projects=("other",))
    admission = admit(world, patch_of(), scanner=scan)
    assert admission.check.urgency == "now" and len(rebuilds(queue)) == 2 and scan.builds.started == []  # type: ignore[attr-defined]
    assert any("no dependent's project" in n for n in admission.check.notes)
