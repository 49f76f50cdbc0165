"""The local stack under a burst: 300 webhook deliveries of one push, then 5 quick republishes.

`patchprop local` (in this process: moto, the real registry, buildah builds) with base -> golden
-> app-a, app-b registered. The base is re-published, and 300 Docker Hub-style deliveries of that
push arrive from 20 concurrent senders (30% exact duplicates of another delivery, the others the
same push with their own callback URL). When that cascade has ended, the base is re-published 5
times a few seconds apart. It prints builds started per (image, base digest) (target: 1), webhook
latency p50/p95 (target p95 <= 0.5 s), the time from the first delivery to the first StartBuild,
connection resets (target 0), and what is lost or stuck (rebuilds not ended, messages left).
It is a benchmark, not a test: it prints figures and exits 0 whatever they are.

    .venv/bin/python bench/load_bench.py [--deliveries 300] [--senders 20] [--republishes 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from patchprop_local.aws import isolate_from_aws

isolate_from_aws()

from patchprop.adapters.dynamodb import Store  # noqa: E402
from patchprop.adapters.registry import RegistryClient  # noqa: E402
from patchprop.domain.models import Dependent  # noqa: E402
from patchprop.domain.refs import parse_ref  # noqa: E402
from patchprop_cli.demo import EXAMPLES, QUIET, _build, _build_base  # noqa: E402
from patchprop_local.lifecycle import LocalStack  # noqa: E402

PROJECT = "patchprop-rebuild"
NAMES = ("base", "golden", "app-a", "app-b")


def digest(image: str) -> str:
    return RegistryClient().resolve_digest(parse_ref(image))


def deliveries(image: str, count: int, duplicates: float, seed: int) -> list[str]:
    """`count` bodies of one push: distinct deliveries, and exact copies of some of them."""
    ref = parse_ref(image)
    rng = random.Random(seed)  # noqa: S311 - the same bodies each run, nothing secret
    distinct = max(1, round(count * (1 - duplicates)))
    bodies = [
        json.dumps(
            {
                "callback_url": f"https://registry.hub.docker.com/u/{ref.name}/hook/{n}/",
                "push_data": {"tag": ref.tag, "pushed_at": 1700000000, "pusher": "bench"},
                "repository": {"repo_name": ref.name},
            }
        )
        for n in range(distinct)
    ]
    bodies += [rng.choice(bodies) for _ in range(count - distinct)]
    rng.shuffle(bodies)
    return bodies


def send(url: str, body: str) -> tuple[float, str]:
    """One delivery on its own connection: seconds to the answer, and the status or the error."""
    parts = urlsplit(url)
    started = time.monotonic()
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        conn.request("POST", parts.path, body=body, headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        answer.read()
        return time.monotonic() - started, str(answer.status)
    except (ConnectionResetError, BrokenPipeError) as exc:
        return time.monotonic() - started, f"reset: {exc!r}"
    except OSError as exc:
        return time.monotonic() - started, f"error: {exc!r}"
    finally:
        conn.close()


def cascade_ended(store: Store, images: dict[str, str], base_digest: str) -> bool:
    """golden rebuilt on `base_digest`, the apps on golden's digest now, all ended and told."""
    golden = [r for r in store.recent_rebuilds(images["golden"]) if r.base_digest == base_digest]
    if not any(r.status.final and r.notified for r in golden):
        return False
    now = digest(images["golden"])
    for app in ("app-a", "app-b"):
        done = [r for r in store.recent_rebuilds(images[app]) if r.base_digest == now]
        if not any(r.status.final and r.notified for r in done):
            return False
    return True


def set_up(stack: LocalStack, work: Path) -> tuple[dict[str, str], Store]:
    info = stack.describe()
    images = {name: f"{info['registry']}/bench/{name}:1" for name in NAMES}
    _build_base(work, images["base"], patch_level=1)
    store = Store(info["resources"]["PatchpropTable"])
    for name, parent in (("golden", "base"), ("app-a", "golden"), ("app-b", "golden")):
        pinned = f"{parse_ref(images[parent]).name}@{digest(images[parent])}"
        _build(EXAMPLES / name, images[name], pinned, images[parent], work)
        dependent = Dependent(
            image=images[name], bases=[images[parent]], project=PROJECT, source_location=str(EXAMPLES / name)
        )
        store.put_dependent(dependent)
    stack.run_schedules()  # the first poll records each base's digest
    return images, store


def leftovers(stack: LocalStack, store: Store, images: dict[str, str]) -> dict[str, Any]:
    """Rebuilds not ended, and messages still on a queue (visible, delayed or in flight)."""
    assert stack.aws is not None
    sqs = stack.aws.client("sqs")
    left = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        n = sum(
            int(attrs.get(k, 0))
            for k in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )
        if n:
            left[url.rsplit("/", 1)[1]] = n
    open_rebuilds = [
        r.rebuild_id for name in NAMES[1:] for r in store.recent_rebuilds(images[name]) if not r.status.final
    ]
    return {"messages left": left, "rebuilds not ended": open_rebuilds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=300)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--duplicates", type=float, default=0.3)
    parser.add_argument("--republishes", type=int, default=5)
    parser.add_argument("--apart", type=float, default=3.0, help="seconds between republishes")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="patchprop-load-") as tmp:
        work = Path(tmp)
        stack = LocalStack(
            state_dir=work / "state", poll_interval=3600, env=QUIET, ports={"api": 0, "aws": 0, "registry": 0}
        )
        build_starts: list[float] = []
        lock = threading.Lock()

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind == "build" and data.get("build-status") == "IN_PROGRESS":
                with lock:
                    build_starts.append(time.monotonic())

        stack.listeners.append(on_event)
        info = stack.start()
        try:
            run(stack, info, work, args, build_starts)
        finally:
            stack.stop()


def run(stack: LocalStack, info: dict[str, Any], work: Path, args: Any, build_starts: list[float]) -> None:
    images, store = set_up(stack, work)
    print(f"local stack up; chain {' -> '.join(NAMES)} registered", flush=True)
    # 1. One push, 300 deliveries from 20 senders.
    _build_base(work, images["base"], patch_level=2)
    first_digest = digest(images["base"])
    bodies = deliveries(images["base"], args.deliveries, args.duplicates, args.seed)
    build_starts.clear()
    first_delivery = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.senders) as pool:
        answers = list(pool.map(lambda b: send(info["webhook_url"], b), bodies))
    sent_for = time.monotonic() - first_delivery
    ended = stack.wait_for(lambda: cascade_ended(store, images, first_digest), timeout=600)
    first_start = build_starts[0] - first_delivery if build_starts else None
    latencies = sorted(a[0] for a in answers)
    statuses = Counter(
        a[1] if not a[1].startswith(("reset", "error")) else a[1].split(":")[0] for a in answers
    )
    # 2. Five republishes of the base, a few seconds apart (the registry's notifications).
    last = first_digest
    for level in range(args.republishes):
        _build_base(work, images["base"], patch_level=10 + level)
        last = digest(images["base"])
        time.sleep(args.apart)  # the load itself: pushes seconds apart, not a wait for anything
    ended_again = stack.wait_for(lambda: cascade_ended(store, images, last), timeout=900)
    # Figures.
    per_key: Counter[tuple[str, str]] = Counter()
    for path in (work / "state" / "builds").glob("*.json"):
        env = json.loads(path.read_text())["env"]
        per_key[(env["TARGET_IMAGE"].rsplit("/", 1)[1], env["BASE_IMAGE_DIGEST"][7:19])] += 1
    print(f"\n1. {len(bodies)} deliveries of one push, {args.senders} concurrent senders, {sent_for:.1f} s")
    print(f"   answers: {dict(statuses)}")
    resets = sum(n for s, n in statuses.items() if s in ("reset", "error"))
    print(f"   connection resets / errors: {resets}")
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"   webhook latency p50 {p50:.3f} s, p95 {p95:.3f} s, max {latencies[-1]:.3f} s (target p95 0.5 s)"
    )
    print(
        f"   first delivery -> first StartBuild: {first_start:.2f} s"
        if first_start
        else "   no build started"
    )
    print(f"   cascade ended: {ended}")
    print(f"2. {args.republishes} republishes {args.apart:.0f} s apart: last cascade ended: {ended_again}")
    print("   builds started per (image, base digest) (target 1 each):")
    for (image, base), n in sorted(per_key.items()):
        print(f"     {image:10} on {base}  {n}{'' if n == 1 else '   <-- MORE THAN ONE'}")
    print(f"   max builds per (image, digest): {max(per_key.values(), default=0)}")
    print(f"3. lost or stuck: {leftovers(stack, store, images)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
