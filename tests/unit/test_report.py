"""The patch report and the fleet status on a hand-made history whose every figure is known.

The history (B1 moves twice, B2 is a FIPS base that never moved):
  P1  B1 D0 -> D1, webhook, pushed 30 s before it was detected at T1 (20 days ago):
      app-a promoted +10 min (fixed 2 HIGH, signed, SBOM, evidence),
      app-b promoted +25 min (fixed 1 CRITICAL, rebased, SBOM, not signed),
      app-d promoted +40 min (an old record: no finding counts, no method, no SBOM).
  P2  B1 D1 -> D2, poller (no push time), detected at T2 (5 days ago):
      app-a promoted +20 min (rebuilt, nothing fixed), app-b blocked (1 CRITICAL, 1 HIGH new), app-d failed.
  app-c is on B2 and was never rebuilt.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from patchprop.domain.base_check import BaseJudgement
from patchprop.domain.fleet import State, fleet_status
from patchprop.domain.history import build_report
from patchprop.domain.models import Base, Dependent
from patchprop.domain.records import Outcome, Patch, Rebuild, RebuildStatus
from patchprop.domain.report import parse_since

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
T1 = NOW - timedelta(days=20)
T2 = NOW - timedelta(days=5)
B1, B2 = "registry.test/base:1", "registry.test/base-fips:1"
D0, D1, D2, F1 = (f"sha256:{c * 64}" for c in "0129")
MIN = timedelta(minutes=1)


class WithMethod(Rebuild):
    """A rebuild as issue 13 stores it (with `method`); the report reads it with getattr."""

    method: str | None = None


def image(name: str) -> str:
    return f"registry.test/{name}:1"


def rebuild(
    name: str, digest: str, at: datetime, outcome: Outcome, done: timedelta, **extra: object
) -> Rebuild:
    promoted = outcome is Outcome.PROMOTED
    fields: dict = {
        "rebuild_id": f"rb-{name}-{digest[7]}",
        "image": image(name),
        "base": B1,
        "base_digest": digest,
        "project": "p1",
        "detected_at": at,
        "status": RebuildStatus.SUCCEEDED if outcome is not Outcome.FAILED else RebuildStatus.FAILED,
        "outcome": outcome,
        "started_at": at + MIN,
        "finished_at": at + done,
        "promoted_at": at + done if promoted else None,
        "promoted_by": "patchprop" if promoted else None,
        **extra,
    }
    return (WithMethod if "method" in extra else Rebuild).model_validate(fields)


DEPENDENTS = [
    Dependent(image=image("app-a"), project="p1", bases=[B1], owner="team-a"),
    Dependent(image=image("app-b"), project="p1", bases=[B1], owner="team-b"),
    Dependent(image=image("app-c"), project="p1", bases=[B2], owner="team-a"),
    Dependent(image=image("app-d"), project="p1", bases=[B1], owner="team-b"),
]
BASES = [
    Base(ref=B1, digest=D2, previous_digest=D1, changed_at=T2),
    Base(ref=B2, digest=F1),
]
PATCHES = [
    Patch(base=B1, digest=D1, previous_digest=D0, detected_by="webhook", detected_at=T1,
          pushed_at=T1 - timedelta(seconds=30), rebuilds=3, finished=3, promoted=3),
    Patch(base=B1, digest=D2, previous_digest=D1, detected_by="poller", detected_at=T2,
          rebuilds=3, finished=3, promoted=1, blocked=1, failed=1),
]  # fmt: skip
A1 = rebuild("app-a", D1, T1, Outcome.PROMOTED, 10 * MIN, fixed_findings={"HIGH": 2}, signed=True,
             sbom_uri="s3://b/a1.json", evidence=["sha256:" + "a" * 64], method="rebuilt")  # fmt: skip
B1R = rebuild("app-b", D1, T1, Outcome.PROMOTED, 25 * MIN, fixed_findings={"CRITICAL": 1}, signed=False,
              sbom_uri="s3://b/b1.json", method="rebased")  # fmt: skip
D1R = rebuild("app-d", D1, T1, Outcome.PROMOTED, 40 * MIN)
A2 = rebuild("app-a", D2, T2, Outcome.PROMOTED, 20 * MIN, fixed_findings={}, signed=True,
             sbom_uri="s3://b/a2.json", evidence=["sha256:" + "b" * 64], method="rebuilt",
             open_findings={"CRITICAL": 0, "HIGH": 1})  # fmt: skip
B2R = rebuild("app-b", D2, T2, Outcome.BLOCKED, 15 * MIN, blocking_findings={"CRITICAL": 1, "HIGH": 1},
              method="rebuilt")  # fmt: skip
D2R = rebuild("app-d", D2, T2, Outcome.FAILED, 5 * MIN, method="rebuilt")
REBUILDS = {
    image("app-a"): [A1, A2],
    image("app-b"): [B1R, B2R],
    image("app-d"): [D1R, D2R],
}


def report(**kwargs: object):  # type: ignore[no-untyped-def]
    args: dict = {
        "dependents": DEPENDENTS,
        "bases": BASES,
        "patches": PATCHES,
        "rebuilds_by_image": REBUILDS,
        "since": NOW - timedelta(days=30),
        "now": NOW,
        **kwargs,
    }
    return build_report(**args)


def test_time_to_patch_is_detected_to_the_last_image_promoted() -> None:
    got = report()
    assert [e.minutes for e in got.events] == [40.0, 20.0]
    assert got.time_to_patch.model_dump() == {
        "events": 2, "landed": 2, "open": 0, "not_landed": 0, "unknown": 0,
        "median_minutes": 30.0, "p90_minutes": 40.0, "max_minutes": 40.0,
    }  # fmt: skip
    assert [(e.digest, e.minutes) for e in got.slowest] == [(D1, 40.0), (D2, 20.0)]
    assert [s.image for s in got.slowest[0].timeline] == [image("app-a"), image("app-b"), image("app-d")]


def test_coverage_now_overall_and_by_owner() -> None:
    got = report().coverage
    assert (got.images, got.current, got.behind, got.unknown, got.share) == (4, 2, 2, 0, 0.5)
    assert got.by_owner == {
        "team-a": {"images": 2, "current": 2, "share": 1.0},
        "team-b": {"images": 2, "current": 0, "share": 0.0},
    }


def test_detection_delay_by_source_with_unknown_push_times() -> None:
    got = report().detection
    assert got["webhook"].model_dump() == {
        "patches": 1, "known": 1, "unknown": 0, "median_seconds": 30.0, "max_seconds": 30.0
    }  # fmt: skip
    assert got["poller"].model_dump() == {
        "patches": 1, "known": 0, "unknown": 1, "median_seconds": None, "max_seconds": None
    }  # fmt: skip


def test_an_ecr_push_event_has_its_own_detection_row() -> None:
    # A patch the ECR push event found (pushed at the event's time), next to the webhook's and poller's.
    ecr = Patch(base=B1, digest=F1, previous_digest=D2, detected_by="ecr", detected_at=T2 + MIN,
                pushed_at=T2 + MIN - timedelta(seconds=2))  # fmt: skip
    got = report(patches=[*PATCHES, ecr]).detection
    assert sorted(got) == ["ecr", "poller", "webhook"]
    assert got["ecr"].model_dump() == {
        "patches": 1, "known": 1, "unknown": 0, "median_seconds": 2.0, "max_seconds": 2.0
    }  # fmt: skip
    assert got["webhook"].patches == 1


def test_outcomes_methods_and_findings() -> None:
    got = report().outcomes
    assert got.rebuilds == 6
    assert got.by_outcome == {"blocked": 1, "failed": 1, "promoted": 4}
    # app-d's P1 rebuild is an old record: no method (unknown, never "rebuilt").
    assert got.by_method == {"rebased": 1, "rebuilt": 4, "unknown": 1}
    assert got.fixed_by_severity["CRITICAL"] == 1 and got.fixed_by_severity["HIGH"] == 2
    assert sum(got.fixed_by_severity.values()) == 3
    assert got.fixed_unknown == 1  # not counted as zero fixed
    assert got.kept_off_by_severity["CRITICAL"] == 1 and got.kept_off_by_severity["HIGH"] == 1


def test_effort_saved_and_triage_avoided() -> None:
    got = report().effort
    assert (got.automated_rebuilds, got.hours_saved, got.triage_avoided) == (4, 4.0, 3)
    assert report(minutes_per_patch=45).effort.hours_saved == 3.0


def test_compliance_over_the_images_on_their_tags() -> None:
    got = report().compliance
    assert got.promoted_images == 3  # a (P2), b (P1: its P2 was blocked), d (P1)
    assert (got.with_sbom, got.with_signature, got.signature_unknown) == (2, 1, 1)
    assert (got.base_verified, got.base_verified_unknown, got.with_provenance) == (0, 3, 1)
    assert got.fips_bases == [B2] and got.fips_images == [image("app-c")]


def checked(patch: Patch, signature: str) -> Patch:
    """The patch with its base check's signature verdict (issue 14 records it on the patch)."""
    check = BaseJudgement(base=patch.base, digest=patch.digest, signature=signature)  # type: ignore[arg-type]
    return patch.model_copy(update={"base_check": check})


def test_compliance_takes_the_base_signature_from_the_patchs_base_check() -> None:
    # P1 (app-b and app-d on its digest) verified, P2 (app-a) with no key configured.
    patches = [checked(PATCHES[0], "verified"), checked(PATCHES[1], "not_configured")]
    got = report(patches=patches).compliance
    assert (got.base_verified, got.base_not_configured, got.base_refused, got.base_verified_unknown) == (
        2, 1, 0, 0,
    )  # fmt: skip


def test_a_refused_base_counts_refused_and_a_patch_never_checked_stays_unknown() -> None:
    got = report(patches=[checked(PATCHES[0], "failed"), PATCHES[1]]).compliance
    assert (got.base_verified, got.base_not_configured, got.base_refused, got.base_verified_unknown) == (
        0, 0, 2, 1,
    )  # fmt: skip


def test_a_check_of_another_digest_says_nothing_of_a_rebuild() -> None:
    # A cascade child is built on its parent image, whose new digest no base check judged.
    child = rebuild("app-e", D1, T1, Outcome.PROMOTED, 30 * MIN).model_copy(update={"base": image("app-a")})
    dependents = [*DEPENDENTS, Dependent(image=image("app-e"), project="p1", bases=[image("app-a")])]
    got = report(
        dependents=dependents,
        patches=[checked(PATCHES[0], "verified"), PATCHES[1]],
        rebuilds_by_image={**REBUILDS, image("app-e"): [child]},
    ).compliance
    assert (got.promoted_images, got.base_verified, got.base_verified_unknown) == (4, 2, 2)


def test_weeks_outcomes_times_and_coverage_over_time() -> None:
    weeks = {w.week: w for w in report().weeks}
    assert list(weeks) == ["2026-10-26", "2026-11-02", "2026-11-09", "2026-11-16", "2026-11-23", "2026-11-30"]
    assert weeks["2026-11-09"].outcomes == {"promoted": 3}
    assert weeks["2026-11-23"].outcomes == {"blocked": 1, "failed": 1, "promoted": 1}
    assert weeks["2026-11-09"].patch_minutes == [40.0] and weeks["2026-11-23"].patch_minutes == [20.0]
    assert [w.coverage for w in weeks.values()] == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]


def test_status_worst_first_with_behind_since() -> None:
    statuses = fleet_status(DEPENDENTS, BASES, REBUILDS, PATCHES, NOW)
    assert [(s.image, s.state) for s in statuses] == [
        (image("app-b"), State.BEHIND),
        (image("app-d"), State.BEHIND),
        (image("app-a"), State.CURRENT),
        (image("app-c"), State.CURRENT),
    ]
    behind = statuses[0]
    assert behind.behind_since == T2 and behind.behind_seconds == 5 * 24 * 3600
    assert (behind.bases[0].built_on, behind.bases[0].current) == (D1, D2)
    assert (behind.last_outcome, behind.last_method) == ("blocked", "rebuilt")
    current = statuses[2]
    assert current.open_findings == {"CRITICAL": 0, "HIGH": 1} and statuses[3].fips


def test_an_open_patch_is_not_timed() -> None:
    running = rebuild("app-a", D2, T2, Outcome.PROMOTED, 20 * MIN).model_copy(
        update={"status": RebuildStatus.IN_PROGRESS, "outcome": None, "promoted_at": None}
    )
    patches = [PATCHES[0], PATCHES[1].model_copy(update={"finished": 2})]
    got = report(patches=patches, rebuilds_by_image={**REBUILDS, image("app-a"): [A1, running]})
    assert [e.state for e in got.events] == ["landed", "open"]
    assert got.time_to_patch.median_minutes == 40.0


def test_one_owner() -> None:
    got = report(owner="team-a")
    assert [e.minutes for e in got.events] == [10.0, 20.0]
    assert (got.coverage.images, got.coverage.share) == (2, 1.0)


def test_an_empty_fleet_reports_zeros() -> None:
    got = build_report(
        dependents=[], bases=[], patches=[], rebuilds_by_image={}, since=NOW - timedelta(days=7), now=NOW
    )
    assert got.time_to_patch.events == 0 and got.time_to_patch.median_minutes is None
    assert (got.coverage.images, got.coverage.share) == (0, 0.0)
    assert got.outcomes.rebuilds == 0 and got.effort.hours_saved == 0.0
    assert all(w.coverage == 0.0 for w in got.weeks)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", NOW - timedelta(days=30)), ("12h", NOW - timedelta(hours=12)), ("2w", NOW - timedelta(weeks=2)),
     ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC))],
)  # fmt: skip
def test_since_reads_durations_and_dates(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


def test_since_that_does_not_read_says_what_would() -> None:
    with pytest.raises(ValueError, match=r"'thirty' is not a duration \(30d, 12h, 2w\)"):
        parse_since("thirty", NOW)


def test_an_image_on_an_image_that_is_behind_is_behind_through_it() -> None:
    golden = image("golden")
    dependents = [*DEPENDENTS, Dependent(image=image("app-e"), project="p1", bases=[golden])]
    dependents.append(Dependent(image=golden, project="p1", bases=[B1]))
    bases = [*BASES, Base(ref=golden, digest=D0)]
    golden_on_d1 = rebuild("golden", D1, T1, Outcome.PROMOTED, 5 * MIN)
    statuses = {
        s.image: s
        for s in fleet_status(dependents, bases, {**REBUILDS, golden: [golden_on_d1]}, PATCHES, NOW)
    }
    assert statuses[golden].state is State.BEHIND and statuses[golden].behind_since == T2
    app_e = statuses[image("app-e")]
    assert (app_e.state, app_e.behind_via, app_e.behind_since) == (State.BEHIND, golden, T2)
    assert app_e.bases[0].state is State.CURRENT  # on golden's digest: golden is what is behind


def test_coverage_over_time_follows_an_image_that_is_a_base_by_its_promotions() -> None:
    golden = image("golden")
    g1, g2 = "sha256:" + "6" * 64, "sha256:" + "7" * 64
    dependents = [
        Dependent(image=golden, project="p1", bases=[B1]),
        Dependent(image=image("app-e"), project="p1", bases=[golden]),
        Dependent(image=image("app-f"), project="p1", bases=[golden]),
    ]
    bases = [BASES[0], Base(ref=golden, digest=g2, previous_digest=g1, changed_at=T2 + 5 * MIN)]
    golden_d2 = rebuild("golden", D2, T2, Outcome.PROMOTED, 5 * MIN, image_digest=g2)
    # app-e was rebuilt on g2 and promoted; app-f's rebuild from g1 failed its smoke test.
    app_e = rebuild("app-e", D2, T2, Outcome.PROMOTED, 10 * MIN).model_copy(
        update={"base": golden, "base_digest": g2, "previous_digest": g1, "cascade": PATCHES[1].cascade_id}
    )
    app_f = rebuild("app-f", D2, T2, Outcome.FAILED, 10 * MIN).model_copy(
        update={"base": golden, "base_digest": g2, "previous_digest": g1, "cascade": PATCHES[1].cascade_id}
    )
    got = build_report(
        dependents=dependents, bases=bases, patches=PATCHES[1:],
        rebuilds_by_image={golden: [golden_d2], image("app-e"): [app_e], image("app-f"): [app_f]},
        since=NOW - timedelta(days=30), now=NOW,
    )  # fmt: skip
    # now: golden and app-e current, app-f behind (on g1): the last week says the same as now
    assert got.coverage.share == round(2 / 3, 4)
    assert got.weeks[-1].coverage == round(2 / 3, 4)
