"""`make demo`: a three-level cascade, for real, on this machine.

It starts the local stack (moto, a real registry, the handlers, a buildah-based CodeBuild),
builds a small base image (a static busybox in `FROM scratch`, no network), builds a golden
image on it and two apps on the golden image, registers that chain, re-publishes the base
once with no package change (the base check, run once per digest with syft and the publisher's
attached scan report, skips it: nothing rebuilds, and its "base moved" message says why), then
with a security fix (the check finds the fixed HIGH and CRITICAL findings: it rebuilds at once),
and shows live what happens: the registry push reaches the webhook, the golden image
is rebuilt on the new base digest, its push cascades to the two apps, and SNS tells each
outcome. app-a's final stage only copies a file, so it is rebased (its own layer put on golden's
new layers with the registry API, then verified by the same build project without a build);
app-b, with a RUN, is rebuilt. Each image has a smoke test; app-b's fails on purpose, so its
rebuild is held back and its tag stays on the old digest. Then it checks, with the registry's
digests, that golden and app-a were promoted onto their parents' new digests and app-b's tag did
not move, and stops.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.registry import RegistryClient
from patchprop.domain.models import Dependent
from patchprop.domain.refs import parse_ref
from patchprop_cli.discover import discover
from patchprop_local import base_reports, resources
from patchprop_local.lifecycle import LocalStack

EXAMPLES = resources.CHECKOUT / "examples" / "chain"  # the demo runs from a checkout
# The publisher's scan reports of the base: before the fix (HIGH and CRITICAL findings), and fixed.
CARRIES = (EXAMPLES / "base-reports" / "carries-fixes.trivy.json").read_bytes()
FIXED = (EXAMPLES / "base-reports" / "fixed.trivy.json").read_bytes()
PROJECT = "patchprop-rebuild"
# The handlers' JSON logs and metrics would bury the story; warnings and errors still show.
# Each image's smoke test, run inside its rebuilt image before promotion. app-b's fails on purpose.
SMOKE_TESTS = {
    "golden": "test -x /bin/busybox",
    "app-a": "grep -q app-a /opt/acme/app.txt",
    "app-b": "echo 'app-b: health check failed: /healthz answered 503'; exit 1",
}
HELD_BACK = "app-b"
QUIET = {"LOG_LEVEL": "WARNING", "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}


def step(text: str) -> None:
    click.secho(f"\n==> {text}", fg="cyan", bold=True)


def show(text: str, color: str | None = None) -> None:
    click.secho(f"    {text}", fg=color)


def short(digest: str | None) -> str:
    return (digest or "-").removeprefix("sha256:")[:12]


def run_demo(state_dir: Path | None = None) -> bool:
    """Run the cascade demo; True when every level was rebuilt on its parent's new digest."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="patchprop-demo-") as tmp:
        work = Path(tmp)
        stack = LocalStack(
            state_dir=state_dir or work / "state",
            projects=(PROJECT,),
            poll_interval=3600,
            env=QUIET,
            ports={"api": 0, "aws": 0, "registry": 0},
        )
        stack.listeners.append(_narrate)
        step("Starting the local stack on 127.0.0.1: moto, docker-registry, the handlers, buildah CodeBuild")
        info = stack.start()
        try:
            return _cascade(stack, info, work, started)
        finally:
            stack.stop()
            click.echo("    local stack stopped")


def _cascade(stack: LocalStack, info: dict[str, Any], work: Path, started: float) -> bool:
    registry = info["registry"]
    show(f"API {info['api_url']}   AWS {info['aws_endpoint_url']}   registry {registry}")
    images = {name: f"{registry}/acme/{name}:1" for name in ("base", "golden", "app-a", "app-b")}
    resolver = RegistryClient()

    def digest(name: str) -> str:
        return resolver.resolve_digest(parse_ref(images[name]))

    step("Building the base image (static busybox in FROM scratch) and the images on it")
    _build_base(work, images["base"], patch_level=1)
    for name, parent in (("golden", "base"), ("app-a", "golden"), ("app-b", "golden")):
        _build(
            EXAMPLES / name, images[name], f"{registry}/acme/{parent}@{digest(parent)}", images[parent], work
        )
    before = {name: digest(name) for name in images}
    for name in images:
        show(f"{images[name]:42} {short(before[name])}")

    step("Registering the chain: base -> golden -> app-a, app-b")
    store = Store(info["resources"]["PatchpropTable"])
    for name, parent in (("golden", "base"), ("app-a", "golden"), ("app-b", "golden")):
        found = discover(EXAMPLES / name / "Dockerfile")  # rebase-safe: its final stage only copies
        store.put_dependent(
            Dependent(
                image=images[name],
                bases=[images[parent]],
                project=PROJECT,
                owner=f"team-{name}",
                source_location=str(EXAMPLES / name),
                test_command=SMOKE_TESTS[name],
                rebase_safe=found.rebase_safe,
                rebase_unsafe_reason=found.rebase_unsafe,
            )
        )
        how = "rebased" if found.rebase_safe else f"rebuilt ({found.rebase_unsafe})"
        show(f"{images[name]:42} FROM {images[parent]}   smoke test: {SMOKE_TESTS[name]}   {how}")
    base_reports.attach(stack.state_dir, f"{registry}/acme/base@{before['base']}", "report.json", CARRIES)
    stack.run_schedules()  # the first poll records each base's current digest
    show("first poll recorded the current digests; the publisher's report of the base attached")

    step("Re-publishing the base with no package change (a nightly re-stamp): judged once, skipped")
    restamped = _publish_base(stack, work, images["base"], patch_level=1, report=CARRIES)
    if not stack.wait_idle(timeout=180, quiet=3.0):
        click.secho("    the base check did not settle within 180 s", fg="red")
    skipped = _told(store, images["base"], restamped)
    unmoved = digest("golden") == before["golden"]
    ok_skip = skipped.startswith("skip") and unmoved
    show(
        f"base check: {skipped}; golden {'not rebuilt' if unmoved else 'REBUILT'}",
        "green" if ok_skip else "red",
    )

    step("Re-publishing the base with a security fix (its report: fixed); the cascade starts at once")
    stack.tell("mark", {})
    fixed = _publish_base(stack, work, images["base"], patch_level=2, report=FIXED)
    if not stack.wait_for(lambda: _cascade_told(store, images, digest), timeout=180):
        click.secho("    the cascade did not settle within 180 s", fg="red")
    after = {name: digest(name) for name in images}
    show(f"base check: {_told(store, images['base'], fixed)}")

    step(f"Result: each level promoted on its parent's new digest, {HELD_BACK} held back by its smoke test")
    ok = ok_skip and _told(store, images["base"], fixed).startswith("now")
    levels: list[tuple[str, str | None]] = [
        ("base", None),
        ("golden", "base"),
        ("app-a", "golden"),
        ("app-b", "golden"),
    ]
    for level, above in levels:
        changed = before[level] != after[level]
        line = f"{images[level]:42} {short(before[level])} -> {short(after[level])}"
        rebuilds = list(store.recent_rebuilds(images[level], limit=1)) if above else []
        if above and not rebuilds:  # the cascade never reached it: say so, do not crash
            ok = False
            show(f"{line}   not rebuilt", "red")
            continue
        if level == HELD_BACK:
            (rebuild,) = rebuilds
            smoke = any("smoke test" in reason for reason in rebuild.reasons)
            line += (
                f"   tag unmoved ({rebuild.told_outcome.value}: {'its smoke test' if smoke else 'not smoke'})"
            )
            ok &= not changed and not rebuild.on_tag and smoke
            show(line, "yellow" if ok else "red")
            continue
        if above:
            (latest,) = rebuilds
            line += f"   {latest.method or '?'}"
            annotations = _annotations(images[level])
            pinned = annotations.get("org.opencontainers.image.base.digest")
            on_parent = pinned == after[above]
            line += f"   base.digest={short(pinned)} ({'= new ' + above if on_parent else 'STALE'})"
            ok &= changed and on_parent
        show(line, "green" if changed else "red")
    if note := scan_note():
        show(note, "yellow")
    _show_one_alert(images[HELD_BACK])
    step("patchprop status, and the patch report")
    from patchprop_cli.demo_report import show_fleet

    show_fleet(info["api_url"])
    step(f"{'Done' if ok else 'FAILED'} in {time.monotonic() - started:.1f}s")
    return ok


def scan_note() -> str | None:
    """Why the outcomes read "succeeded" (not promoted or blocked), when no scanner is installed."""
    if shutil.which("trivy") is not None:
        return None
    return (
        'outcomes are "succeeded", not promoted/blocked: trivy is not installed, so rebuilds are '
        "built and smoke-tested but not scanned (install trivy to have them scanned and gated)"
    )


def _cascade_told(store: Store, images: dict[str, str], digest: Any) -> bool:
    """Each level rebuilt on its parent's digest as it is now, the rebuild ended and told.

    What the demo waits for (LocalStack.wait_for delivers the events until it holds), rather than
    for a quiet spell: the held-back image ends too, its tag unmoved, so its parent's digest is known.
    """
    for name, parent in (("golden", "base"), ("app-a", "golden"), ("app-b", "golden")):
        on_parent = [r for r in store.recent_rebuilds(images[name]) if r.base_digest == digest(parent)]
        if not any(r.status.final and r.notified for r in on_parent):
            return False
    return True


_ALERTS: list[dict[str, Any]] = []  # every alert the demo's stack published, in order


def _show_one_alert(image: str) -> None:
    """The whole alert about `image`, as email gets it (the others: `patchprop alerts`)."""
    about = [a for a in _ALERTS if a.get("MessageAttributes", {}).get("image", {}).get("Value") == image]
    if not about:
        return
    step(f"The alert about {image}, in full, as email gets it")
    click.echo(f"    Subject: {about[-1].get('Subject')}")
    for line in str(about[-1].get("Message", "")).splitlines():
        click.echo(f"    {line}")


def _narrate(kind: str, data: dict[str, Any]) -> None:
    if kind == "push":
        answer = data["answer"]
        show(
            f"registry push {data['image']} {short(data['digest'])} -> webhook {data['status']} "
            f"{answer.get('status', answer.get('error', ''))}",
            "magenta",
        )
    elif kind == "build":
        env = {
            v["name"]: v["value"]
            for v in data["additional-information"]["environment"]["environment-variables"]
        }
        status = data["build-status"]
        color = {"SUCCEEDED": "green", "FAILED": "red"}.get(status, "yellow")
        verify = "  (rebased: verify only)" if env.get("PATCHPROP_CANDIDATE_DIGEST") else ""
        show(
            f"CodeBuild {status:11} {env.get('TARGET_IMAGE')} on {env.get('BASE_IMAGE_NAME')}"
            f"@{short(env.get('BASE_IMAGE_DIGEST'))}{verify}",
            color,
        )
    elif kind == "error":  # a failing delivery or handler: shown, never swallowed
        show(f"error in {data.get('where')}: {data.get('error')}", "red")
    elif kind == "sns":
        _ALERTS.append(data)
        attributes = {k: v["Value"] for k, v in data.get("MessageAttributes", {}).items()}
        show(
            f"SNS  {data.get('Subject')}  "
            f"[outcome={attributes.get('outcome')} owner={attributes.get('owner')}]",
            "blue",
        )
    elif kind == "error":
        show(f"error in {data['where']}: {data['error']}", "red")


def _told(store: Store, base: str, digest: str) -> str:
    """The urgency the base check decided for `digest`, and why (as its "base moved" message says)."""
    check = store.get_base_check(base, digest)
    return f"{check.urgency} ({check.urgency_reason})" if check else "not checked"


def _publish_base(stack: LocalStack, work: Path, image: str, patch_level: int, report: bytes) -> str:
    """As a publisher does: push the new base, attach its scan report, then move its tag."""
    staging = image.rsplit(":", 1)[0] + ":staging"  # not tracked: its push moves nothing
    _build_base(work, staging, patch_level)
    pinned = f"{staging.rsplit(':', 1)[0]}@{RegistryClient().resolve_digest(parse_ref(staging))}"
    base_reports.attach(stack.state_dir, pinned, "report.json", report)
    _run(["skopeo", "copy", "-q", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
          f"docker://{pinned}", f"docker://{image}"])  # fmt: skip
    return pinned.rsplit("@", 1)[1]


def _build_base(work: Path, image: str, patch_level: int) -> None:
    context = work / "base-context"
    if context.exists():
        shutil.rmtree(context)
    shutil.copytree(EXAMPLES / "base", context)
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy(busybox, context / "busybox")
    (context / "os-release").write_text(f'NAME="acme base"\nPATCH_LEVEL={patch_level}\n')
    tag = f"localhost/patchprop-demo-base:{patch_level}"
    buildah = ["buildah", *_storage(work)]
    _run([*buildah, "bud", "--isolation", "chroot", "--format", "oci", "-q", "-t", tag, str(context)])
    _run([*buildah, "push", "--tls-verify=false", tag, f"docker://{image}"])


def _storage(work: Path) -> list[str]:
    """The demo's own buildah storage, removed with its work folder."""
    return ["--storage-driver", "vfs", "--root", str(work / "containers"), "--runroot", str(work / "run")]


def _build(context: Path, image: str, pinned_base: str, base_name: str, work: Path) -> None:
    """An image's first build, with the same script CodeBuild and the local builder run."""
    ref = parse_ref(pinned_base)
    env = {
        "BASE_IMAGE": pinned_base,
        "BASE_IMAGE_NAME": base_name,
        "BASE_IMAGE_DIGEST": ref.digest or "",
        "TARGET_IMAGE": image,
        "PATCHPROP_REBUILD_ID": "initial",
        "CONTEXT_DIR": str(context),
        "RESULT_FILE": str(work / "result.json"),
        "REGISTRY_TLS_VERIFY": "false",
        "BUILDAH_ROOT": str(work / "containers"),
        "BUILDAH_RUNROOT": str(work / "run"),
    }
    _run(["bash", str(resources.rebuild_script())], env=env)


def _annotations(image: str) -> dict[str, str]:
    raw = _run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{image}"])
    return dict(json.loads(raw).get("annotations", {}))


def _run(args: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        args, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    if done.returncode != 0:
        raise click.ClickException(
            f"{' '.join(args[:3])}... failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout
