"""The cost of the fleet status and the patch report: 10,000 images and 100,000 rebuilds.

A synthetic history: B bases (default 20), each patched every 6 days for 60 days (10 patches);
N images (default 10,000), image j FROM base j mod B, rebuilt once per patch of its base (so
10 rebuilds an image: 100,000), 85% promoted, 8% blocked, 5% failed, 2% held.

It prints:
(a) in memory (no AWS): the time `build_report` and `fleet_status` take on the whole history;
(b) on moto (`faster_moto`, as plan_bench): the DynamoDB calls `logic.report.report` makes, by
    operation, with the query pages, and its wall time, for --moto-images images (default
    2,000: loading 100,000 items into moto takes long; pass 10000 for the full size). The call
    count is 2 + B + N queries plus extra pages, whatever the number of rebuilds: never a scan.

It prints figures and exits 0 whatever they are: it is a benchmark, not a test.

    .venv/bin/python bench/report_bench.py [--images 10000] [--bases 20] [--moto-images 2000]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from fast_moto import faster_moto
from moto import mock_aws
from plan_bench import CallCounter, counting, register

from patchprop.adapters.dynamodb import Store, keys
from patchprop.domain.fleet import fleet_status
from patchprop.domain.history import build_report
from patchprop.domain.models import Base, Dependent, rebuild_id_for
from patchprop.domain.records import Outcome, Patch, Rebuild, RebuildStatus
from patchprop.logic import report
from patchprop_local.aws import isolate_from_aws
from patchprop_local.provision import provision

NOW = datetime(2026, 12, 1, tzinfo=UTC)
PATCHES_PER_BASE = 10
EVERY = timedelta(days=6)
OUTCOMES = [(Outcome.PROMOTED, 0.85), (Outcome.BLOCKED, 0.08), (Outcome.FAILED, 0.05), (Outcome.HELD, 0.02)]


def digest(base: int, n: int) -> str:
    return f"sha256:{base:08x}{n:056x}"


def history(images: int, bases: int, seed: int = 1) -> tuple[list[Dependent], list[Base], list[Patch], dict]:
    rng = random.Random(seed)  # noqa: S311 - seeded, not secret
    refs = [f"docker.io/acme/base-{b:02d}:1" for b in range(bases)]
    dependents = [
        Dependent(
            image=f"docker.io/acme/app-{j:05d}:1",
            project="p1",
            bases=[refs[j % bases]],
            owner=f"team-{j % 17}",
        )
        for j in range(images)
    ]
    start = NOW - EVERY * PATCHES_PER_BASE
    patches = [
        Patch(
            base=refs[b],
            digest=digest(b, n + 1),
            previous_digest=digest(b, n),
            detected_by="poller",
            detected_at=start + EVERY * n + timedelta(minutes=b),
            rebuilds=images // bases,
            finished=images // bases,
        )
        for b in range(bases)
        for n in range(PATCHES_PER_BASE)
    ]
    base_models = [
        Base(ref=r, digest=digest(b, PATCHES_PER_BASE), previous_digest=digest(b, PATCHES_PER_BASE - 1))
        for b, r in enumerate(refs)
    ]
    rebuilds: dict[str, list[Rebuild]] = {}
    outcomes, weights = zip(*OUTCOMES, strict=True)
    for j, d in enumerate(dependents):
        mine = []
        for p in patches[(j % bases) * PATCHES_PER_BASE : (j % bases + 1) * PATCHES_PER_BASE]:
            outcome = rng.choices(outcomes, weights)[0]
            took = timedelta(minutes=rng.uniform(3, 90))
            promoted = outcome is Outcome.PROMOTED
            mine.append(
                Rebuild(
                    rebuild_id=rebuild_id_for(d.image, p.base, p.digest),
                    image=d.image,
                    base=p.base,
                    base_digest=p.digest,
                    previous_digest=p.previous_digest,
                    project="p1",
                    owner=d.owner,
                    detected_at=p.detected_at,
                    cascade=p.cascade_id,
                    started_at=p.detected_at + timedelta(minutes=1),
                    finished_at=p.detected_at + took,
                    status=RebuildStatus.SUCCEEDED,
                    outcome=outcome,
                    promoted_at=p.detected_at + took if promoted else None,
                    promoted_by="patchprop" if promoted else None,
                    fixed_findings={"HIGH": rng.randint(0, 3)} if promoted else None,
                )
            )
        rebuilds[d.image] = mine
    return dependents, base_models, patches, rebuilds


def in_memory(images: int, bases: int) -> None:
    dependents, base_models, patches, rebuilds = history(images, bases)
    total = sum(len(r) for r in rebuilds.values())
    t0 = time.perf_counter()
    got = build_report(
        dependents=dependents,
        bases=base_models,
        patches=patches,
        rebuilds_by_image=rebuilds,
        since=NOW - timedelta(days=30),
        now=NOW,
    )
    t1 = time.perf_counter()
    fleet_status(dependents, base_models, rebuilds, patches, NOW)
    t2 = time.perf_counter()
    print(f"(a) in memory: {images:,} images, {total:,} rebuilds, {len(patches)} patches")
    print(f"    build_report (30 days): {t1 - t0:.2f} s   fleet_status: {t2 - t1:.2f} s")
    print(
        f"    time to patch median {got.time_to_patch.median_minutes} min over "
        f"{got.time_to_patch.events} events; coverage {got.coverage.share:.0%}"
    )


def load(
    store: Store, dependents: list[Dependent], base_models: list[Base], patches: list[Patch], rebuilds: dict
) -> None:
    register(store, dependents)
    items: list[dict[str, Any]] = []
    for b in base_models:
        items.append(
            {
                **keys.base_key(b.ref),
                "kind": "base",
                "GSI1PK": keys.ALL_BASES,
                "GSI1SK": b.ref,
                **keys.dump(b),
            }
        )
    for p in patches:
        items.append({**keys.patch_key(p.base, p.digest), "kind": "patch", **keys.dump(p)})
    for rs in rebuilds.values():
        for r in rs:
            items.append(
                {
                    **keys.rebuild_key(r.rebuild_id),
                    **keys.rebuild_index(r.image, r.detected_at.isoformat(), r.rebuild_id),
                    "kind": "rebuild",
                    **keys.dump(r),
                }
            )
    with store.table.batch_writer() as batch:
        for item in items:
            batch.put_item(Item=item)


def on_moto(images: int, bases: int) -> None:
    dependents, base_models, patches, rebuilds = history(images, bases)
    total = sum(len(r) for r in rebuilds.values())
    with mock_aws(), faster_moto():
        store = Store(provision().refs["PatchpropTable"])
        started = time.perf_counter()
        load(store, dependents, base_models, patches, rebuilds)
        loaded = time.perf_counter() - started
        pages: Counter[str] = Counter()
        original = store.table.query

        def paged(**kwargs: Any) -> Any:
            answer = original(**kwargs)
            pages[kwargs.get("IndexName", "table")] += 1
            return answer

        store.table.query = paged  # type: ignore[method-assign]
        with counting(CallCounter(), store.table.meta.client) as counter:
            t0 = time.perf_counter()
            report.report(store=store, since="30d", now=NOW)
            took = time.perf_counter() - t0
    calls = counter.calls
    print(f"(b) on moto: {images:,} images, {total:,} rebuilds, {bases} bases (loading took {loaded:.0f} s)")
    print(
        f"    report (30 days): {sum(calls.values())} DynamoDB calls {dict(calls)}; query pages {dict(pages)}"
    )
    print(f"    expected queries 2 + bases + images = {2 + bases + images}; wall time {took:.1f} s (moto)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--bases", type=int, default=20)
    parser.add_argument("--moto-images", type=int, default=2_000)
    args = parser.parse_args()
    isolate_from_aws()
    in_memory(args.images, args.bases)
    on_moto(args.moto_images, args.bases)


if __name__ == "__main__":
    main()
