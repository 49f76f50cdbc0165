"""Urgency on vs off: builds started for a fleet whose bases are republished every night.

1,000 images on 10 bases (100 each) for 30 days. Every night each base is re-published: most
nights only its metadata changes (a vendor's nightly re-stamp), one night a week a package
changes with no fix, and on 4 of the days the new digest fixes a HIGH finding. Each digest goes
through the real base check and urgency (logic/base_check.py `admit_patch`), the real planner
(`plan_rebuilds`) and the poller's real hourly tick (`release_due`), over the in-memory store of
the unit tests; a build is counted per rebuild enqueued. Off is `mode=now`: every digest
rebuilds its whole fleet at once (patchprop before the base check).

    .venv/bin/python bench/urgency_bench.py [--days 30] [--bases 10] [--images 100] [--fix-days 4]

It prints figures and exits 0: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakes import FakeQueue, FakeTopic, InMemoryStore

from patchprop.domain.base_check import BaseContents
from patchprop.domain.findings import Finding, ScanReport, Severity
from patchprop.domain.models import Base, Dependent, PatchRequest, RebuildRequest
from patchprop.domain.provenance import Provenance
from patchprop.domain.refs import ImageRef
from patchprop.domain.urgency import BaseSettings
from patchprop.logic.base_check import admit_patch, release_due

START = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)  # each night's republish is at 02:00


def digest_of(base: str, day: int) -> str:
    return "sha256:" + hashlib.sha256(f"{base}\n{day}".encode()).hexdigest()


@dataclass
class Publisher:
    """The bases as their publisher re-publishes them; the BaseSources port over what it made."""

    contents_by_digest: dict[str, BaseContents] = field(default_factory=dict)
    reads: int = 0

    def publish(self, base: str, day: int, kind: str, open_findings: list[Finding], version: int) -> str:
        digest = digest_of(base, day)
        report = ScanReport.of("trivy", "trivy", open_findings)
        packages = {"openssl (deb)": f"3.0.{version}", "libc6 (deb)": "2.36-9"}
        self.contents_by_digest[digest] = BaseContents(
            packages=packages, report=report, report_uri=f"s3://reports/base-reports/{digest}/report.json"
        )
        return digest

    def verify(self, image: ImageRef, key: str) -> None:
        return None

    def contents(self, image: ImageRef) -> BaseContents:
        self.reads += 1
        return self.contents_by_digest[image.digest or ""]

    def kev(self) -> frozenset[str]:
        return frozenset()

    def provenance(self, image: ImageRef) -> Provenance:
        return Provenance(state="none")


def night_kind(base_index: int, day: int, fix_days: int) -> str:
    """A fix on `fix_days` days (days 3, 10, 17, ...: a week apart), a package change without a fix
    once a week (staggered per base), metadata only on the other nights."""
    if day % 7 == 3 and day // 7 < fix_days:
        return "fix"
    offset = base_index % 3
    if day % 7 == 5 + offset % 2 and day % 7 != 3:
        return "change"
    return "metadata"


@dataclass
class Outcome:
    builds: int
    cascades: int
    urgencies: Counter[str]
    fix_wait_hours: list[float]
    change_wait_hours: list[float]
    base_reads: int
    seconds: float


def run(urgency: bool, days: int, bases: int, images: int, fix_days: int) -> Outcome:
    started = time.monotonic()
    store, rebuilds, topic, publisher = InMemoryStore(), FakeQueue(), FakeTopic(), Publisher()
    refs = [f"docker.io/acme/base{b}:1" for b in range(bases)]
    settings = {"*": BaseSettings() if urgency else BaseSettings(mode="now")}
    findings: dict[str, list[Finding]] = {}
    versions: dict[str, int] = {}
    for b, ref in enumerate(refs):
        findings[ref] = [
            Finding(
                id=f"CVE-2026-{b:02d}{k:02d}", package="openssl", severity=Severity.HIGH, fixed_version="x"
            )
            for k in range(fix_days)
        ] + [Finding(id=f"CVE-2025-{b:02d}99", package="libc6", severity=Severity.LOW)]
        versions[ref] = 10
        first = publisher.publish(ref, -1, "metadata", findings[ref], versions[ref])
        store.bases[ref] = Base(ref=ref, digest=first)
        for i in range(images):
            image = f"docker.io/acme/app-{b}-{i}:1"
            store.put_dependent(Dependent(image=image, bases=[ref], project="patchprop-rebuild"))
    published_at: dict[str, tuple[datetime, str]] = {}
    planned_at: dict[str, datetime] = {}
    urgencies: Counter[str] = Counter()
    patches = FakeQueue()

    def admit(patch: PatchRequest, at: datetime) -> None:
        before = len(rebuilds.sent)
        admitted = admit_patch(
            patch,
            store=store,
            rebuild_queue=rebuilds,
            topic=topic,
            sources=publisher,
            settings=settings,
            now=at,
        )
        if not patch.admitted:
            urgencies[admitted.check.urgency] += 1
        if len(rebuilds.sent) > before:
            planned_at.setdefault(patch.digest, at)

    for day in range(days):
        night = START + timedelta(days=day)
        for b, ref in enumerate(refs):
            kind = night_kind(b, day, fix_days)
            if kind == "fix":
                findings[ref] = findings[ref][1:]  # the oldest HIGH is fixed
                versions[ref] += 1
            elif kind == "change":
                versions[ref] += 1
            digest = publisher.publish(ref, day, kind, findings[ref], versions[ref])
            previous = store.bases[ref].digest
            store.record_digest(ref, previous, digest, night)
            published_at[digest] = (night, kind)
            admit(
                PatchRequest(base=ref, digest=digest, previous_digest=previous, detected_by="poller"), night
            )
        for hour in range(1, 25):  # the poller's hourly tick until the next night
            tick = night + timedelta(hours=hour)
            patches.sent.clear()
            release_due(store=store, patches=patches, now=tick)
            for message in patches.messages:
                admit(message, tick)
    builds = len({m.rebuild_id for m in rebuilds.messages if isinstance(m, RebuildRequest)})
    waits: dict[str, list[float]] = {"fix": [], "change": []}
    for digest, (at, kind) in published_at.items():
        if kind in waits and digest in planned_at:
            waits[kind].append((planned_at[digest] - at).total_seconds() / 3600)
    return Outcome(
        builds,
        len(planned_at),
        urgencies,
        waits["fix"],
        waits["change"],
        publisher.reads,
        time.monotonic() - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--bases", type=int, default=10)
    parser.add_argument("--images", type=int, default=100, help="images per base")
    parser.add_argument("--fix-days", type=int, default=4)
    args = parser.parse_args()
    total = args.bases * args.images
    print(
        f"urgency bench: {total} images on {args.bases} bases, republished nightly for {args.days} days, "
        f"fixes (HIGH) on {args.fix_days} days per base"
    )
    results = {on: run(on, args.days, args.bases, args.images, args.fix_days) for on in (False, True)}
    print(f"{'urgency':8} {'builds':>8} {'cascades':>9} {'base reads':>11}  decisions")
    for switched_on, r in results.items():
        decisions = ", ".join(f"{k} {v}" for k, v in sorted(r.urgencies.items()))
        print(
            f"{'on' if switched_on else 'off':8} {r.builds:8} {r.cascades:9} {r.base_reads:11}  {decisions}"
        )
    on, off = results[True], results[False]
    print(
        f"builds started: {off.builds} off, {on.builds} on ({off.builds / max(on.builds, 1):.1f}x fewer with "
        f"urgency; {off.builds - on.builds} builds not run)"
    )
    if on.fix_wait_hours:
        print(f"a fix waited {max(on.fix_wait_hours):.0f} h at most before its rebuilds (urgency on)")
    if on.change_wait_hours:
        print(
            f"a change without a fix waited {min(on.change_wait_hours):.0f}-"
            f"{max(on.change_wait_hours):.0f} h "
            f"(batch window 24 h; {len(on.change_wait_hours)} of {on.urgencies['batch']} batched digests "
            "rebuilt, the others superseded by a later digest)"
        )
    print(f"wall: off {off.seconds:.1f} s, on {on.seconds:.1f} s")


if __name__ == "__main__":
    main()
