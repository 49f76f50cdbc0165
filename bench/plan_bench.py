"""Planning a patch at scale: AWS calls made, and time until the whole set is patched.

For a base with N dependents (flat, and in chains of depth 4 with fan-in) this prints
(a) the AWS API calls `plan_rebuilds` makes against moto, by operation, next to the minimum
    the issue names: ceil(N/25) BatchWriteItem + ceil(N/10) SendMessageBatch + the GSI query
    pages actually needed; and the same minimum with SendMessageBatch = ceil(first wave/10),
    since only the first wave is enqueued at planning time;
(b) a discrete-event simulation, without AWS, of the time until every image is rebuilt under
    a concurrency cap, released by `release_order` priority, next to the lower bound
    max(critical path, total build time / cap).

Targets: calls <= 1.1x the minimum, makespan <= 1.05x the lower bound. It prints figures and
exits 0 whatever they are: it is a benchmark, not a test.

    .venv/bin/python bench/plan_bench.py [--sizes 1000,10000] [--cap 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fast_moto import faster_moto
from moto import mock_aws
from plan_times import MAKESPAN_TARGET, TimeResult, print_times, simulate_times, verdict

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.sqs import Queue
from patchprop.domain.models import Dependent, PatchRequest
from patchprop.logic.plan import plan_rebuilds
from patchprop_local.aws import isolate_from_aws
from patchprop_local.provision import provision

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

BASE = "docker.io/acme/base:1"
PROJECT = "patchprop-rebuild"
OLD_DIGEST = "sha256:" + "0" * 64
NEW_DIGEST = "sha256:" + "1" * 64
SHAPES = ("flat", "chains")
LEVEL_SHARES = (0.1, 0.2, 0.3, 0.4)  # chains: level sizes N/10, N/5, 3N/10, 2N/5
FAN_IN_EVERY = 3  # chains: every 3rd image of levels 2-4 is FROM two images of the level above
CALLS_TARGET = 1.10

# ---- graphs --------------------------------------------------------------------------------


def build_graph(shape: str, n: int, seed: int) -> list[Dependent]:
    """N dependents of BASE: all FROM it (flat), or 4 levels where level k>1 is FROM level k-1."""
    rng = random.Random(f"graph:{shape}:{n}:{seed}")  # noqa: S311 - seeded, not secret

    def dependent(image: str, bases: list[str], j: int) -> Dependent:
        return Dependent(
            image=image,
            project=PROJECT,
            bases=bases,
            owner=f"team-{j % 17}",
            source_location=f"https://github.com/acme/{image.split('/')[-1].split(':')[0]}.git",
        )

    if shape == "flat":
        return [dependent(f"docker.io/acme/app-{j:05d}:1", [BASE], j) for j in range(n)]
    sizes = [max(1, round(n * share)) for share in LEVEL_SHARES[:-1]]
    sizes.append(n - sum(sizes))
    found: list[Dependent] = []
    above = [BASE]
    for level, size in enumerate(sizes, start=1):
        images = [f"docker.io/acme/l{level}-{j:05d}:1" for j in range(size)]
        for j, image in enumerate(images):
            if level == 1:
                bases = [BASE]
            else:
                primary = above[j % len(above)]  # every image of the level above gets children
                bases = [primary]
                if j % FAN_IN_EVERY == 0 and len(above) > 1:
                    bases.append(rng.choice([a for a in above if a != primary]))
            found.append(dependent(image, bases, j))
        above = images
    return found


# ---- (a) AWS calls -------------------------------------------------------------------------


@dataclass
class CallCounter:
    """A botocore `before-call` handler: one count per API call (not per HTTP retry)."""

    calls: Counter[str] = field(default_factory=Counter)
    gsi_pages: Counter[str] = field(default_factory=Counter)  # by partition: BASES, BASE#, IMAGE#

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        name = model.name
        if name == "Query":
            body = json.loads(params["body"])
            if body.get("IndexName"):
                name = f"Query[{body['IndexName']}]"
                self.gsi_pages[_partition(body)] += 1
            else:
                name = "Query[table]"
        self.calls[name] += 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def gsi_total(self) -> int:
        return sum(self.gsi_pages.values())


def _partition(body: dict[str, Any]) -> str:
    """The kind of partition a query reads: its hash-key value up to the first '#'."""
    match = re.match(r"\s*\S+\s*=\s*(:\w+)", body.get("KeyConditionExpression", ""))
    value = body.get("ExpressionAttributeValues", {}).get(match.group(1), {}) if match else {}
    text = str(value.get("S", "?"))
    return text.split("#", 1)[0] + "#" if "#" in text else text


@contextmanager
def counting(counter: CallCounter, *clients: Any) -> Iterator[CallCounter]:
    for client in clients:
        client.meta.events.register("before-call.*.*", counter)
    try:
        yield counter
    finally:
        for client in clients:
            client.meta.events.unregister("before-call.*.*", counter)


class _Recorder(Store):
    """`put_dependent` without I/O: keeps the items it would write and the bases it would track.

    Registering 10,000 images one transaction at a time is slow in moto; this reuses the exact
    item shapes of `Store.put_dependent`, which the bench then writes with a batch writer.
    """

    def __init__(self, table: Table) -> None:
        super().__init__(table.name, table)
        self.items: list[dict[str, Any]] = []
        self.bases: dict[str, None] = {}

    def get_dependent(self, image: str) -> Dependent | None:
        return None  # a fresh table: nothing was registered before

    def _transact(self, actions: list[dict[str, Any]], what: str) -> bool:
        for action in actions:
            if "Put" not in action:
                raise RuntimeError(f"{what}: unexpected action {sorted(action)}")
            self.items.append(action["Put"]["Item"])
        return True

    def track_base(self, ref: str, digest: str | None = None) -> None:
        self.bases[ref] = None


def register(store: Store, dependents: list[Dependent]) -> None:
    recorder = _Recorder(store.table)
    for dependent in dependents:
        recorder.put_dependent(dependent)
    with store.table.batch_writer() as batch:
        for item in recorder.items:
            batch.put_item(Item=item)
    for ref in recorder.bases:
        store.track_base(ref)


@dataclass
class CallResult:
    shape: str
    n: int
    rebuilds: int
    first_wave: int
    counter: CallCounter
    graph_pages: int  # pages of one GSI1 query listing every dependent, for scale
    queued: int

    @property
    def minimum_issue(self) -> int:
        return math.ceil(self.n / 25) + math.ceil(self.n / 10) + self.counter.gsi_total

    @property
    def minimum_wave(self) -> int:
        return math.ceil(self.n / 25) + math.ceil(self.first_wave / 10) + self.counter.gsi_total


def count_calls(shape: str, n: int, seed: int) -> CallResult:
    dependents = build_graph(shape, n, seed)
    with mock_aws():
        stack = provision()
        store = Store(stack.refs["PatchpropTable"])
        queue = Queue(stack.refs["RebuildQueue"])
        register(store, dependents)
        patch = PatchRequest(base=BASE, digest=NEW_DIGEST, previous_digest=OLD_DIGEST, detected_by="poller")
        ddb = store.table.meta.client
        with counting(CallCounter(), ddb, queue.client) as counter:
            plan = plan_rebuilds(patch, store=store, rebuild_queue=queue)
        with counting(CallCounter(), ddb) as reading:
            for _ in store.list_dependents():
                pass
        attributes = queue.client.get_queue_attributes(
            QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
    return CallResult(
        shape,
        n,
        plan.rebuilds,
        plan.released,
        counter,
        reading.total,
        int(attributes["ApproximateNumberOfMessages"]),
    )


# ---- output --------------------------------------------------------------------------------


def print_calls(results: list[CallResult]) -> None:
    print("(a) AWS API calls made by plan_rebuilds (setup and checks not counted)")
    print()
    header = (
        f"{'shape':<7} {'N':>6} {'1st wave':>8} {'BatchWrite':>10} {'SendMsgBatch':>12} "
        f"{'Query GSI1':>10} {'Query tbl':>9} {'GetItem':>7} {'PutItem':>7} {'other':>5} {'total':>6} "
        f"{'min(issue)':>10} {'ratio':>6} {'':>4} {'min(wave)':>9} {'ratio':>6} {'':>4}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        c = r.counter.calls
        known = ("BatchWriteItem", "SendMessageBatch", "Query[GSI1]", "Query[table]", "GetItem", "PutItem")
        other = sum(v for k, v in c.items() if k not in known)
        issue_ratio = r.counter.total / r.minimum_issue
        wave_ratio = r.counter.total / r.minimum_wave
        print(
            f"{r.shape:<7} {r.n:>6} {r.first_wave:>8} {c['BatchWriteItem']:>10} {c['SendMessageBatch']:>12} "
            f"{c['Query[GSI1]']:>10} {c['Query[table]']:>9} {c['GetItem']:>7} {c['PutItem']:>7} {other:>5} "
            f"{r.counter.total:>6} {r.minimum_issue:>10} {issue_ratio:>6.3f} "
            f"{verdict(issue_ratio, CALLS_TARGET):>4} {r.minimum_wave:>9} {wave_ratio:>6.3f} "
            f"{verdict(wave_ratio, CALLS_TARGET):>4}"
        )
    print()
    print(
        "min(issue) = ceil(N/25) BatchWriteItem + ceil(N/10) SendMessageBatch + GSI query pages,\n"
        "             the issue's minimum, as if every image were enqueued at planning time.\n"
        "min(wave)  = ceil(N/25) BatchWriteItem + ceil(first wave/10) SendMessageBatch + GSI query\n"
        "             pages: only images with no patched parent are enqueued at planning time; the\n"
        "             build-events function enqueues the rest as their parents finish (not counted)."
    )
    print("GSI query pages are counted from the same hook: the pages the GSI1 queries actually took.")
    for r in results:
        pages = ", ".join(f"{k} {v}" for k, v in sorted(r.counter.gsi_pages.items()))
        others = {k: v for k, v in r.counter.calls.items() if k not in ("BatchWriteItem", "SendMessageBatch")}
        print(
            f"  {r.shape:<7} N={r.n:<6} GSI pages by partition: {pages}; reading every dependent in one "
            f"GSI1 query would take {r.graph_pages} page(s); non-batch calls: "
            + ", ".join(f"{k} {v}" for k, v in sorted(others.items()))
        )
        if r.rebuilds != r.n or r.queued != r.first_wave:
            print(f"  !! planned {r.rebuilds} of {r.n}, {r.queued} messages queued for {r.first_wave}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000", help="numbers of dependents (comma separated)")
    parser.add_argument("--cap", type=int, default=20, help="concurrent builds at most")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--stock-moto",
        action="store_true",
        help="run moto as it is (slow: to check that faster_moto changes no count)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    isolate_from_aws()  # never reach real AWS, whatever the shell has

    started = time.monotonic()
    calls: list[CallResult] = []
    times: list[TimeResult] = []
    for n in sizes:
        for shape in SHAPES:
            t0 = time.monotonic()
            if args.stock_moto:
                calls.append(count_calls(shape, n, args.seed))
            else:
                with faster_moto():
                    calls.append(count_calls(shape, n, args.seed))
            t1 = time.monotonic()
            times.extend(simulate_times(build_graph(shape, n, args.seed), shape, args.seed, args.cap))
            t2 = time.monotonic()
            print(
                f"  [{shape} N={n}: moto setup + plan {t1 - t0:.1f} s, simulation {t2 - t1:.1f} s]",
                flush=True,
            )
    print()
    print_calls(calls)
    print_times(times, args.cap, args.seed)

    worst_issue = max(r.counter.total / r.minimum_issue for r in calls)
    worst_wave = max(r.counter.total / r.minimum_wave for r in calls)
    worst_time = max(r.ratio for r in times if r.judged)
    print(
        f"SUMMARY: calls {verdict(worst_issue, CALLS_TARGET)} (worst {worst_issue:.3f}x min(issue), "
        f"{worst_wave:.3f}x min(wave) {verdict(worst_wave, CALLS_TARGET)}; target {CALLS_TARGET}x); "
        f"makespan {verdict(worst_time, MAKESPAN_TARGET)} (worst {worst_time:.3f}x lower bound with "
        f"drawn times known; target {MAKESPAN_TARGET}x); wall {time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
