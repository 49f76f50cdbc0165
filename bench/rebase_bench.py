"""Rebase vs rebuild, side by side, measured in one run on the same images.

A real docker-registry on 127.0.0.1 and buildah (vfs, chroot): the demo's base (a static busybox)
at patch level 1 and 2, and on it
- the demo's chain: golden (RUN: rebuilt only) and app-a (COPY only) on golden;
- N COPY-only images (default 50) on one base, each with its own file.
For each image it times "base moved -> candidate pushed": a rebase (registry API only) and a
rebuild (buildspec/rebuild.sh with PUSH=candidate, as the local CodeBuild runs it, scan and SBOM
off: the build and push only). It prints the times, their ratio, the bytes each rebase moved,
and for the N rebases run all at once: the wall time, the most sockets open at a time and the
process's peak memory. It is a benchmark, not a test: it prints figures and exits 0.

    .venv/bin/python bench/rebase_bench.py [--images 50] [--rebuilds 50]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from patchprop.adapters.registry import RegistryClient
from patchprop.adapters.registry_rebase import Rebaser
from patchprop.adapters.registry_write import RegistryWriter
from patchprop.domain.refs import parse_ref
from patchprop_cli.demo import EXAMPLES, _build, _build_base
from patchprop_local import resources
from patchprop_local.registry_server import LocalRegistry

COPY_ONLY = 'ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY app.txt /opt/app.txt\nCMD ["cat", "/opt/app.txt"]\n'


def digest(image: str) -> str:
    return RegistryClient().resolve_digest(parse_ref(image))


def writer() -> RegistryWriter:
    session = requests.Session()
    session.trust_env = False
    return RegistryWriter(session=session, timeout=30.0)


def rebuild(work: Path, context: Path, image: str, base_repo: str, base_digest: str) -> float:
    """Seconds for rebuild.sh to build `image` on the base and push it as a candidate."""
    env = {
        **os.environ,
        "BASE_IMAGE": f"{base_repo}@{base_digest}",
        "BASE_IMAGE_NAME": f"{base_repo}:1",
        "BASE_IMAGE_DIGEST": base_digest,
        "TARGET_IMAGE": image,
        "PATCHPROP_REBUILD_ID": "bench",
        "CONTEXT_DIR": str(context),
        "RESULT_FILE": str(work / f"result-{os.getpid()}-{threading.get_ident()}.json"),
        "REGISTRY_TLS_VERIFY": "false",
        "BUILDAH_ROOT": str(work / "containers"),
        "BUILDAH_RUNROOT": str(work / "run"),
        "PUSH": "candidate",
        "SCAN": "off",
        "SBOM": "off",
    }
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(resources.rebuild_script())], env=env, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"rebuild of {image} failed:\n{done.stdout.decode()[-2000:]}{done.stderr.decode()}"
        )
    return time.monotonic() - started


def rebase(rebaser: Rebaser, image: str, base: str, new: str, old: str) -> tuple[float, int]:
    started = time.monotonic()
    done = rebaser.rebase(parse_ref(image), parse_ref(base), new, old)
    return time.monotonic() - started, done.bytes_moved


def sockets() -> int:
    """Sockets this process has open now."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def app_context(work: Path, name: str) -> Path:
    context = work / "apps" / name
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(COPY_ONLY)
    (context / "app.txt").write_text(f"{name}\n")
    return context


def demo_chain(work: Path, registry: str, rebaser: Rebaser) -> list[tuple[str, float | None, float, int]]:
    """(image, rebase seconds or None, rebuild seconds, bytes moved) for golden and app-a."""
    images = {n: f"{registry}/demo/{n}:1" for n in ("base", "golden", "app-a")}
    _build_base(work, images["base"], patch_level=1)
    old_base = digest(images["base"])
    _build(EXAMPLES / "golden", images["golden"], f"{registry}/demo/base@{old_base}", images["base"], work)
    old_golden = digest(images["golden"])
    _build(
        EXAMPLES / "app-a", images["app-a"], f"{registry}/demo/golden@{old_golden}", images["golden"], work
    )
    _build_base(work, images["base"], patch_level=2)
    new_base = digest(images["base"])
    # golden has a RUN: it is rebuilt; its new digest is app-a's moved base.
    golden_rebuild = rebuild(work, EXAMPLES / "golden", images["golden"], f"{registry}/demo/base", new_base)
    _build(EXAMPLES / "golden", images["golden"], f"{registry}/demo/base@{new_base}", images["base"], work)
    new_golden = digest(images["golden"])
    app_rebuild = rebuild(work, EXAMPLES / "app-a", images["app-a"], f"{registry}/demo/golden", new_golden)
    app_rebase, moved = rebase(rebaser, images["app-a"], images["golden"], new_golden, old_golden)
    return [("golden (RUN)", None, golden_rebuild, 0), ("app-a (COPY)", app_rebase, app_rebuild, moved)]


def fleet(work: Path, registry: str, count: int, rebuilds: int) -> dict[str, float]:
    """`count` COPY-only images on one base: `rebuilds` of them rebased one at a time and rebuilt
    (timed), and all `count` rebased at once (those first ones again: idempotent, same digests)."""
    base = f"{registry}/fleet/base:1"
    _build_base(work, base, patch_level=1)
    old = digest(base)
    names = [f"app-{i:02d}" for i in range(count)]
    with ThreadPoolExecutor(2) as pool:  # the first builds (not measured): two at a time
        list(pool.map(lambda n: _build(app_context(work, n), f"{registry}/fleet/{n}:1",
                                       f"{registry}/fleet/base@{old}", base, work), names))  # fmt: skip
    _build_base(work, base, patch_level=2)
    new = digest(base)
    rebaser = Rebaser(writer())
    # One at a time first, on the images that are also rebuilt: the per-image side by side.
    alone = [rebase(rebaser, f"{registry}/fleet/{n}:1", base, new, old)[0] for n in names[:rebuilds]]
    peak = [sockets()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], sockets())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    memory_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sampler.start()
    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:  # all at once: the Rebaser bounds what reaches the registry
        done = list(pool.map(lambda n: rebase(rebaser, f"{registry}/fleet/{n}:1", base, new, old), names))
    wall = time.monotonic() - started
    stop.set()
    sampler.join()
    # Rebuilt last: their pushes put the new base's layers in the apps' repositories.
    rebuild_times = [
        rebuild(work, app_context(work, n), f"{registry}/fleet/{n}:1", f"{registry}/fleet/base", new)
        for n in names[:rebuilds]
    ]
    return {
        "rebuild_median": statistics.median(rebuild_times),
        "rebuild_total": sum(rebuild_times) * count / len(rebuild_times),
        "rebase_median": statistics.median(alone),
        "rebase_at_once_median": statistics.median(t for t, _ in done),
        "rebase_wall": wall,
        "bytes_median": statistics.median(b for _, b in done),
        "sockets_peak": peak[0],
        "memory_growth_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - memory_before,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50, help="COPY-only images on one base")
    parser.add_argument(
        "--rebuilds", type=int, default=50, help="of them rebuilt (timed; the rest extrapolated)"
    )
    args = parser.parse_args()
    if shutil.which("buildah") is None or not Path("/bin/busybox").exists():
        print("rebase_bench: needs buildah and busybox-static (make system-deps); skipped")
        return 0
    with tempfile.TemporaryDirectory(prefix="patchprop-rebase-bench-") as tmp:
        work = Path(tmp)
        registry = LocalRegistry(work / "registry")
        registry.start()
        try:
            address = registry.address
            print("rebase vs rebuild: base moved -> candidate pushed (seconds)")
            print(f"{'image':16} {'rebase':>8} {'rebuild':>8} {'ratio':>7} {'bytes moved':>12}")
            for name, rebased, rebuilt, moved in demo_chain(work, address, Rebaser(writer())):
                ratio = f"{rebuilt / rebased:6.0f}x" if rebased else "      -"
                shown = f"{rebased:8.3f}" if rebased is not None else "       -"
                print(f"{name:16} {shown} {rebuilt:8.2f} {ratio} {moved if rebased else '-':>12}")
            rebuilds = max(1, min(args.rebuilds, args.images))
            figures = fleet(work, address, args.images, rebuilds)
            print(
                f"\n{args.images} COPY-only images on one base ({rebuilds} rebuilt, timed one after another)"
            )
            print(f"  rebuild, median per image      {figures['rebuild_median']:8.2f} s")
            print(f"  rebuild, all (one at a time)   {figures['rebuild_total']:8.1f} s")
            print(f"  rebase, median per image       {figures['rebase_median']:8.3f} s (one at a time)")
            at_once = figures["rebase_at_once_median"]
            print(f"  rebase, median when all at once{at_once:8.3f} s (with the wait for a slot)")
            print(f"  rebase, all at once (wall)     {figures['rebase_wall']:8.2f} s")
            per_image = figures["rebuild_median"] / figures["rebase_median"]
            print(f"  ratio, per image               {per_image:8.0f} x")
            print(
                f"  ratio, all                     {figures['rebuild_total'] / figures['rebase_wall']:8.0f} x"
            )
            print(f"  bytes moved per rebase, median {figures['bytes_median']:8.0f} B (layers mounted)")
            print(f"  sockets open at most           {figures['sockets_peak']:8d}")
            print(f"  peak memory growth             {figures['memory_growth_kb'] / 1024:8.1f} MB")
            print(json.dumps({"rebase_bench": figures}))
        finally:
            registry.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
