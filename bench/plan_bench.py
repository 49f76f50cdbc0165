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
import heapq
import itertools
import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table as MotoTable
from moto.sqs.models import Queue as SqsQueue
from moto.sqs.models import SQSBackend

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.sqs import Queue
from patchprop.domain.cascade import Node, affected, plan_cascade, release_order
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
MEDIAN_MINUTES = 4.0
SIGMA = 0.5
CALLS_TARGET = 1.10
MAKESPAN_TARGET = 1.05

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


@contextmanager
def faster_moto() -> Iterator[None]:
    """Take two quadratic costs out of moto 5 (they are moto's, not AWS's, and not counted).

    - DynamoDB: moto sorts and walks every item of the table on each Query, so planning a
      cascade with 6,000 tracked bases over a 30,000-item table takes half an hour. moto's
      own Query code is handed only the items of the queried partition (same results, same
      1 MB pages, same LastEvaluatedKey). GSI partitions come from an index that is rebuilt
      after any write (every write in moto goes through the three methods wrapped).
    - SQS: moto's send_message reads the queue's attributes, whose approximate message counts
      walk every message in the queue. Inside send_message those counts are only built into a
      dict that is read for ContentBasedDeduplication, so there they answer 0 at once.

    The API calls botocore makes, and their answers, are unchanged.
    """
    writes = itertools.count()
    generation = [next(writes)]
    cache: dict[tuple[int, str], tuple[int, dict[tuple[str, Any], list[Any]]]] = {}
    original_query = MotoTable.query
    wrapped: dict[tuple[type, str], Callable[..., Any]] = {
        (MotoTable, "put_item"): MotoTable.put_item,
        (MotoTable, "delete_item"): MotoTable.delete_item,
        (DynamoDBBackend, "update_item"): DynamoDBBackend.update_item,
    }

    def invalidating(method: Callable[..., Any]) -> Callable[..., Any]:
        def write(*args: Any, **kwargs: Any) -> Any:
            generation[0] = next(writes)
            return method(*args, **kwargs)

        return write

    def partition(table: MotoTable, name: str, value: Any) -> list[Any]:
        cached = cache.get((id(table), name))
        if cached is None or cached[0] != generation[0]:
            index: dict[tuple[str, Any], list[Any]] = {}
            for group in table.items.values():
                for item in group.values():
                    found = item.attrs.get(name)
                    if found is not None:
                        index.setdefault((found.type, _hashable(found.value)), []).append(item)
            cached = cache[(id(table), name)] = (generation[0], index)
        return cached[1].get((value.type, _hashable(value.value)), [])

    def query(self: MotoTable, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        conditions = kwargs.get("hash_key_conditions") or []
        if not self.range_key_attr or (index_name and not conditions):
            return original_query(self, hash_key, *args, **kwargs)
        if index_name:
            name, value = conditions[0]
            candidates = partition(self, name, value)  # moto checks every condition again
        else:
            candidates = list(self.items.get(hash_key, {}).values())
        self.all_items = lambda: list(candidates)  # type: ignore[method-assign]
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    sending = [False]
    counts = {name: getattr(SqsQueue, name) for name in _SQS_COUNTS}
    original_send = SQSBackend.send_message

    def count_unless_sending(prop: property) -> property:
        return property(lambda queue: 0 if sending[0] else prop.__get__(queue))

    def send_message(self: SQSBackend, *args: Any, **kwargs: Any) -> Any:
        sending[0] = True
        try:
            return original_send(self, *args, **kwargs)
        finally:
            sending[0] = False

    patches: dict[tuple[type, str], Any] = {
        **{key: invalidating(method) for key, method in wrapped.items()},
        (MotoTable, "query"): query,
        **{(SqsQueue, name): count_unless_sending(prop) for name, prop in counts.items()},
        (SQSBackend, "send_message"): send_message,
    }
    originals = {(owner, name): owner.__dict__[name] for owner, name in patches}
    for (owner, name), value in patches.items():
        setattr(owner, name, value)
    try:
        yield
    finally:
        for (owner, name), value in originals.items():
            setattr(owner, name, value)


_SQS_COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
)


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bytes) else json.dumps(value, sort_keys=True)


# ---- (b) time until the whole set is patched -------------------------------------------------


def build_times(dependents: list[Dependent], seed: int) -> dict[str, float]:
    """Minutes per image: lognormal, median MEDIAN_MINUTES, sigma SIGMA, drawn by image name."""
    rng = random.Random(f"times:{seed}")  # noqa: S311 - seeded, not secret
    mu = math.log(MEDIAN_MINUTES)
    return {image: rng.lognormvariate(mu, SIGMA) for image in sorted(d.image for d in dependents)}


def simulate(nodes: dict[str, Node], actual: dict[str, float], cap: int, fifo: bool = False) -> float:
    """Minutes until every node is rebuilt: whenever a slot is free, start the best ready image.

    Best = highest `release_order` priority; with `fifo`, the oldest wave first (a standard SQS
    queue at best) and release order only within a wave.
    """
    waiting = {image: len(node.parents) for image, node in nodes.items()}
    ready: list[tuple[float, float, str]] = []
    sequence = itertools.count()
    now = 0.0

    def release(images: list[str]) -> None:
        for node in release_order(nodes[i] for i in images):
            key = (now, float(next(sequence))) if fifo else (-node.priority, 0.0)
            heapq.heappush(ready, (*key, node.image))

    release([image for image, count in waiting.items() if count == 0])
    running: list[tuple[float, str]] = []
    while ready or running:
        while ready and len(running) < cap:
            image = heapq.heappop(ready)[2]
            heapq.heappush(running, (now + actual[image], image))
        now, image = heapq.heappop(running)
        freed = []
        for child in nodes[image].children:
            waiting[child] -= 1
            if waiting[child] == 0:
                freed.append(child)
        release(freed)
    if any(waiting.values()):
        raise RuntimeError("simulation ended with images still waiting")
    return now


@dataclass
class TimeResult:
    shape: str
    n: int
    planner_knows: str
    makespan: float
    critical_path: float
    throughput_bound: float
    judged: bool

    @property
    def lower_bound(self) -> float:
        return max(self.critical_path, self.throughput_bound)

    @property
    def ratio(self) -> float:
        return self.makespan / self.lower_bound


def simulate_times(shape: str, n: int, seed: int, cap: int) -> list[TimeResult]:
    dependents = build_graph(shape, n, seed)
    by_base: dict[str, list[Dependent]] = {}
    for dependent in dependents:
        for base in dependent.bases:
            by_base.setdefault(base, []).append(dependent)
    found = affected(BASE, lambda base: by_base.get(base, []), set(by_base))
    actual = build_times(dependents, seed)

    def planned(build_time: Callable[[Dependent], float]) -> dict[str, Node]:
        return plan_cascade(BASE, found, build_time=build_time)

    exact = planned(lambda d: actual[d.image])
    critical = max(node.priority for node in exact.values())
    throughput = sum(actual.values()) / cap
    median = planned(lambda _d: MEDIAN_MINUTES)
    runs = [
        ("drawn times", exact, False, True),
        ("median only", median, False, False),
        ("drawn, FIFO", exact, True, False),
    ]
    return [
        TimeResult(shape, n, label, simulate(nodes, actual, cap, fifo), critical, throughput, judged)
        for label, nodes, fifo, judged in runs
    ]


# ---- output --------------------------------------------------------------------------------


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "FAIL"


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


def print_times(results: list[TimeResult], cap: int, seed: int) -> None:
    print(f"(b) Simulated time until the whole set is patched (minutes; cap {cap}; no AWS)")
    print(
        f"    build time per image: lognormal, median {MEDIAN_MINUTES:g} min, sigma {SIGMA:g} "
        f"(mean {MEDIAN_MINUTES * math.exp(SIGMA**2 / 2):.2f} min), seed {seed}.\n"
        "    'drawn times': the planner's expected time per image = the actual drawn time (judged);\n"
        "    'median only': priority = longest remaining chain length x median (what plan_rebuilds\n"
        "                   does today: plan_cascade without build_time counts every image as 1);\n"
        "    'drawn, FIFO': drawn-time priorities, but waves start in the order they were enqueued\n"
        "                   (a standard SQS queue at best); release order only within a wave.\n"
        "    lower bound = max(critical path of actual times, total build time / cap)."
    )
    print()
    header = (
        f"{'shape':<7} {'N':>6} {'planner knows':<13} {'makespan':>9} {'crit path':>9} "
        f"{'total/cap':>9} {'bound':>9} {'ratio':>6} {'':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        mark = verdict(r.ratio, MAKESPAN_TARGET) if r.judged else "(info)"
        print(
            f"{r.shape:<7} {r.n:>6} {r.planner_knows:<13} {r.makespan:>9.1f} {r.critical_path:>9.1f} "
            f"{r.throughput_bound:>9.1f} {r.lower_bound:>9.1f} {r.ratio:>6.3f} {mark:>6}"
        )
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
            times.extend(simulate_times(shape, n, args.seed, args.cap))
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
