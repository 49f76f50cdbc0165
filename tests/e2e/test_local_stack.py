"""e2e: the whole system on one machine — real registry, real buildah builds, the real handlers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import boto3
import pytest
import requests

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.registry import RegistryClient
from patchprop.adapters.registry_write import RegistryWriter
from patchprop.domain.models import Dependent
from patchprop.domain.oci import referrers_tag
from patchprop.domain.receipt import RECEIPT_ARTIFACT_TYPE
from patchprop.domain.records import Outcome, RebuildStatus
from patchprop.domain.refs import parse_ref
from patchprop.logic.promote import SBOM_ARTIFACT_TYPE
from patchprop_cli.demo import EXAMPLES, _annotations, _build, _build_base
from patchprop_local.lifecycle import LocalStack, LocalStackError
from patchprop_local.resources import CHECKOUT as ROOT

pytestmark = pytest.mark.e2e
PROJECT = "patchprop-rebuild"


def digest(image: str) -> str:
    return RegistryClient().resolve_digest(parse_ref(image))


def store(stack: LocalStack) -> Store:
    return Store(stack.describe()["resources"]["PatchpropTable"])


def finished(stack: LocalStack, *images: str, base: str | None = None, digest_of_base: str | None = None):
    """A `wait_for` condition: each image has a rebuild ended and told (on the base's digest if given)."""

    def done() -> bool:
        for image in images:
            rebuilds = [
                r
                for r in store(stack).recent_rebuilds(image)
                if digest_of_base is None or (r.base == base and r.base_digest == digest_of_base)
            ]
            if not any(r.status.final and r.notified for r in rebuilds):
                return False
        return True

    return done


def tracked(stack: LocalStack, *images: str):
    """A `wait_for` condition: each image is a base whose digest the stack knows as the registry's."""

    def done() -> bool:
        for image in images:
            base = store(stack).get_base(str(parse_ref(image)))
            if base is None or base.digest != digest(image):
                return False
        return True

    return done


@pytest.fixture
def chain(local_stack: LocalStack, tmp_path: Path) -> dict[str, str]:
    """base -> golden -> app-a, app-b in the stack's registry, registered, digests baselined."""
    registry = local_stack.describe()["registry"]
    ns = f"t{uuid.uuid4().hex[:6]}"
    images = {name: f"{registry}/{ns}/{name}:1" for name in ("base", "golden", "app-a", "app-b")}
    _build_base(tmp_path, images["base"], patch_level=1)
    for name, parent in (("golden", "base"), ("app-a", "golden"), ("app-b", "golden")):
        parent_ref = parse_ref(images[parent])
        _build(
            EXAMPLES / name,
            images[name],
            f"{parent_ref.name}@{digest(images[parent])}",
            images[parent],
            tmp_path,
        )
        store(local_stack).put_dependent(
            Dependent(
                image=images[name],
                bases=[images[parent]],
                project=PROJECT,
                source_location=str(EXAMPLES / name),
            )
        )
    local_stack.run_schedules()
    assert local_stack.wait_for(tracked(local_stack, images["base"], images["golden"]), timeout=60)
    return images


def test_republished_base_cascades_through_three_levels_with_real_builds(local_stack, chain, tmp_path):
    # Given the chain, with its current digests
    before = {name: digest(image) for name, image in chain.items()}
    # When the base is re-published (the registry notifies the stack of the push)
    _build_base(tmp_path, chain["base"], patch_level=2)
    dependents = (chain["golden"], chain["app-a"], chain["app-b"])

    def told_all() -> bool:
        sns = [m["MessageAttributes"] for kind, m in local_stack.events if kind == "sns"]
        told = {attrs["image"]["Value"] for attrs in sns if "image" in attrs}
        return finished(local_stack, *dependents)() and set(dependents) <= told

    assert local_stack.wait_for(told_all, timeout=240)
    # Then every level has a new digest, and each image's base annotation is its parent's new digest
    after = {name: digest(image) for name, image in chain.items()}
    assert all(before[n] != after[n] for n in chain), (before, after)
    for name, parent in (("golden", "base"), ("app-a", "golden"), ("app-b", "golden")):
        annotations = _annotations(chain[name])
        assert annotations["org.opencontainers.image.base.digest"] == after[parent]
        assert annotations["org.opencontainers.image.base.name"] == str(parse_ref(chain[parent]))
    # And each rebuild is recorded SUCCEEDED and was told on SNS
    rebuilt = [
        r for name in ("golden", "app-a", "app-b") for r in store(local_stack).recent_rebuilds(chain[name])
    ]
    assert {r.status for r in rebuilt} == {RebuildStatus.SUCCEEDED}
    told = {
        m["MessageAttributes"]["image"]["Value"]
        for kind, m in local_stack.events
        if kind == "sns" and "image" in m["MessageAttributes"]
    }  # per rebuild, not the summary
    assert {chain["golden"], chain["app-a"], chain["app-b"]} <= told


def test_failing_dockerfile_gives_a_failed_build_with_its_log_and_others_still_build(local_stack, tmp_path):
    # Given a base with two dependents, one of whose Dockerfiles fails
    registry = local_stack.describe()["registry"]
    ns = f"f{uuid.uuid4().hex[:6]}"
    base, good, bad = (f"{registry}/{ns}/{n}:1" for n in ("base", "good", "bad"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo about to fail && exit 3\n"
    )
    _build_base(tmp_path, base, patch_level=1)
    s = store(local_stack)
    s.put_dependent(
        Dependent(image=good, bases=[base], project=PROJECT, source_location=str(EXAMPLES / "golden"))
    )
    s.put_dependent(Dependent(image=bad, bases=[base], project=PROJECT, source_location=str(broken)))
    local_stack.run_schedules()
    # When the base moves
    _build_base(tmp_path, base, patch_level=2)
    assert local_stack.wait_for(finished(local_stack, good, bad), timeout=240)
    # Then the bad one FAILED with a log that shows why, the good one SUCCEEDED, the stack is up
    (bad_rebuild,) = s.recent_rebuilds(bad)
    (good_rebuild,) = s.recent_rebuilds(good)
    assert bad_rebuild.status is RebuildStatus.FAILED and good_rebuild.status is RebuildStatus.SUCCEEDED
    assert bad_rebuild.log_url and bad_rebuild.log_url.startswith("file://")
    log = Path(url2pathname(urlparse(bad_rebuild.log_url).path)).read_text()
    assert "about to fail" in log
    assert requests.get(local_stack.describe()["api_url"] + "/nothing", timeout=5).status_code == 404


def test_duplicate_webhooks_over_http_start_one_build_per_dependent(local_stack, chain, tmp_path):
    # Given the chain, and the base re-published behind the stack's back (no notification)
    info = local_stack.describe()
    base = parse_ref(chain["base"])
    _build_base(tmp_path, chain["base"], patch_level=3)
    # When Docker Hub's webhook for that push arrives three times over HTTP (plus the registry's own)
    body = {"push_data": {"tag": base.tag}, "repository": {"repo_name": base.name}}
    answers = [requests.post(info["webhook_url"], json=body, timeout=10) for _ in range(3)]
    new_base = digest(chain["base"])
    done = finished(local_stack, chain["golden"], base=str(base), digest_of_base=new_base)
    assert local_stack.wait_for(
        lambda: done() and finished(local_stack, chain["app-a"], chain["app-b"])(), timeout=240
    )
    # Then each image was rebuilt once for this base digest
    assert all(a.status_code == 202 for a in answers)
    golden = [r for r in store(local_stack).recent_rebuilds(chain["golden"]) if r.base_digest == new_base]
    assert len(golden) == 1


def test_aws_endpoint_lists_the_stacks_resources(local_stack):
    info = local_stack.describe()
    dynamodb = boto3.client("dynamodb", endpoint_url=info["aws_endpoint_url"], region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=info["aws_endpoint_url"], region_name="us-east-1")
    assert info["resources"]["PatchpropTable"] in dynamodb.list_tables()["TableNames"]
    assert info["resources"]["RebuildQueue"] in sqs.list_queues()["QueueUrls"]


def test_second_stack_on_the_same_state_dir_is_refused(local_stack):
    with pytest.raises(LocalStackError, match="another `patchprop local`"):
        LocalStack(state_dir=local_stack.state_dir).start()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_patchprop_local_command_stops_everything_on_sigint(tmp_path):
    # Given `patchprop local` running in its own process
    cli = shutil.which("patchprop") or str(Path(sys.executable).parent / "patchprop")
    process = subprocess.Popen(
        [cli, "local", "--port", "0", "--aws-port", "0", "--registry-port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "cli"), str(ROOT / "local")])},
    )
    state = tmp_path / ".patchprop" / "local.json"
    deadline = time.monotonic() + 60
    while not state.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert state.exists(), process.stdout.read() if process.stdout else ""
    info = json.loads(state.read_text())
    ports = [
        int(info[k].rsplit(":", 1)[1].split("/")[0]) for k in ("api_url", "aws_endpoint_url", "registry")
    ]
    assert all(_listening(p) for p in ports)
    registry_pids = subprocess.run(
        ["pgrep", "-f", str(tmp_path / ".patchprop" / "registry")], capture_output=True, text=True
    ).stdout.split()
    assert registry_pids
    # When it gets Ctrl-C
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    # Then nothing it started is left and its ports are free
    assert not any(_listening(p) for p in ports)
    assert (
        subprocess.run(
            ["pgrep", "-f", str(tmp_path / ".patchprop" / "registry")], capture_output=True
        ).returncode
        == 1
    )
    assert not state.exists()


def test_cli_over_the_local_api_registers_shows_updates_and_removes(local_stack):
    from click.testing import CliRunner

    from patchprop_cli.main import cli

    api = local_stack.describe()["api_url"]
    image = f"{local_stack.describe()['registry']}/cli/app:1"
    runner = CliRunner()
    # Given an image registered through the local API (query strings and all)
    registered = runner.invoke(
        cli,
        ["register", "--api-url", api, "--image", image, "--base", "node:22", "--project", PROJECT, "--json"],
    )
    assert registered.exit_code == 0, registered.output
    # When it is shown, updated (a PATCH: the gateway once answered it 501), and removed
    shown = runner.invoke(cli, ["show", image, "--api-url", api, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["dependent"]["bases"] == ["docker.io/library/node:22"]
    updated = runner.invoke(cli, ["update", image, "--owner", "team-cli", "--api-url", api, "--json"])
    assert updated.exit_code == 0, updated.output
    assert json.loads(updated.output)["dependent"]["owner"] == "team-cli"
    removed = runner.invoke(cli, ["remove", image, "--api-url", api])
    assert removed.exit_code == 0, removed.output
    # Then it is gone: show answers 404 as a clear error
    gone = runner.invoke(cli, ["show", image, "--api-url", api])
    assert gone.exit_code != 0 and "no dependent" in gone.output.lower()


# ---- promotion: the gate is the only way onto a tag --------------------------------------


def signed(stack: LocalStack) -> list[str]:
    """Every image the stack's cosign (a stand-in, tests/e2e/conftest.py) was asked to sign."""
    log = Path(stack.signed_log)  # type: ignore[attr-defined]
    return log.read_text().split() if log.exists() else []


def skopeo_digest(image: str) -> str:
    """What a consumer sees on the tag, asked with a standard client."""
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{image}"],
        capture_output=True,
        check=True,
    ).stdout
    return "sha256:" + hashlib.sha256(out).hexdigest()


def test_candidate_is_promoted_and_a_failed_smoke_test_leaves_the_tag(
    local_stack: LocalStack, tmp_path: Path
):
    # Given base -> golden (smoke test passes) -> app-a (smoke test fails), registered
    registry = local_stack.describe()["registry"]
    ns = f"p{uuid.uuid4().hex[:6]}"
    tests = {"golden": "test -x /bin/busybox", "app-a": "echo smoke-output-here; exit 3"}
    images, store = _base_golden_app(local_stack, tmp_path, f"{registry}/{ns}", tests)
    local_stack.run_schedules()
    assert local_stack.wait_for(tracked(local_stack, images["base"], images["golden"]), timeout=60)
    before = {name: skopeo_digest(image) for name, image in images.items()}
    # When the base is re-published
    _build_base(tmp_path, images["base"], patch_level=2)
    assert local_stack.wait_for(finished(local_stack, images["golden"], images["app-a"]), timeout=300)
    # Then golden passed and its tag moved to the rebuilt digest
    (golden,) = store.recent_rebuilds(images["golden"])
    assert golden.status is RebuildStatus.SUCCEEDED, golden
    assert golden.on_tag and golden.promoted_by == "patchprop"
    assert skopeo_digest(images["golden"]) == golden.image_digest != before["golden"]
    # And app-a was rebuilt on it, failed its smoke test, and its tag did not move
    (app,) = store.recent_rebuilds(images["app-a"])
    assert app.status is RebuildStatus.FAILED and app.outcome is Outcome.FAILED
    assert not app.on_tag
    assert skopeo_digest(images["app-a"]) == before["app-a"]
    told = " ".join(app.reasons)
    assert "smoke test exited 3" in told and "the tag did not move" in told and "smoke-output-here" in told
    # And only the promoted digest was signed: golden's once, app-a's candidate never
    assert [s for s in signed(local_stack) if f"/{ns}/" in s] == [
        f"{parse_ref(images['golden']).name}@{golden.image_digest}"
    ]
    # And golden's SBOM, found from its digest through the referrers tag schema, lists its packages
    ref = parse_ref(images["golden"])
    fallback = f"{ref.registry}/{ref.repository}:{referrers_tag(golden.image_digest or '')}"
    index = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{fallback}"],
            capture_output=True,
            check=True,
        ).stdout
    )
    kinds = {m["artifactType"] for m in index["manifests"]}
    assert {SBOM_ARTIFACT_TYPE, RECEIPT_ARTIFACT_TYPE} <= kinds, index
    writer = RegistryWriter()
    subject = ref.with_digest(golden.image_digest or "")
    (sbom_ref,) = writer.list_referrers(subject, SBOM_ARTIFACT_TYPE)
    manifest = writer.get_manifest(ref.with_digest(sbom_ref["digest"])).json()
    sbom = json.loads(writer.get_blob(ref, manifest["layers"][0]["digest"]))
    assert sbom["bomFormat"] == "CycloneDX"
    assert any("busybox" in c.get("name", "") for c in sbom.get("components", [])), sbom.get("components")


# ---- people stay in charge: a blocked rebuild promoted by hand, then rolled back ----------

# A scanner stand-in for this test only: Trivy's JSON, a new CRITICAL in golden's candidate, none
# in any other image (so golden is blocked and app-a, once released, passes).
FAKE_TRIVY = r"""#!/bin/sh
out=""; prev=""; last=""
for a in "$@"; do
  [ "$prev" = "--output" ] && out="$a"
  prev="$a"; last="$a"
done
vulns='[]'
case "$last" in
  */golden@sha256:*) vulns='[{"VulnerabilityID": "CVE-2026-0001", "PkgName": "openssl",
    "InstalledVersion": "3.0.0", "FixedVersion": "3.0.1", "Severity": "CRITICAL"}]' ;;
esac
printf '{"SchemaVersion": 2, "ArtifactName": "%s", "Results": [{"Target": "%s", "Class": "os-pkgs",
  "Type": "alpine", "Vulnerabilities": %s}]}\n' "$last" "$last" "$vulns" > "$out"
"""


def test_blocked_rebuild_promoted_by_hand_continues_its_cascade_and_rolls_back(
    local_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from click.testing import CliRunner

    from patchprop_cli.main import cli

    # Given base -> golden -> app-a registered, and a scanner that finds a new CRITICAL in golden
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "trivy").write_text(FAKE_TRIVY)
    (bin_dir / "trivy").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    registry = local_stack.describe()["registry"]
    ns = f"h{uuid.uuid4().hex[:6]}"
    images, store = _base_golden_app(local_stack, tmp_path, f"{registry}/{ns}")
    local_stack.run_schedules()
    assert local_stack.wait_idle(timeout=60, quiet=1.0)
    before = {name: skopeo_digest(image) for name, image in images.items()}
    # When the base is re-published
    _build_base(tmp_path, images["base"], patch_level=2)
    assert local_stack.wait_idle(timeout=240, quiet=3.0)
    # Then golden is blocked, its tag unmoved, and app-a below it was not rebuilt
    (golden,) = store.recent_rebuilds(images["golden"])
    assert golden.outcome is Outcome.BLOCKED and not golden.on_tag, golden
    assert skopeo_digest(images["golden"]) == before["golden"] != golden.image_digest
    assert "patchprop promote " + golden.rebuild_id in " ".join(golden.reasons)
    assert not any(golden.image_digest in s for s in signed(local_stack))  # a blocked digest: not signed
    assert list(store.recent_rebuilds(images["app-a"])) == []
    # When a person promotes it with the CLI
    api = local_stack.describe()["api_url"]
    runner = CliRunner()
    promoted = runner.invoke(
        cli, ["promote", golden.rebuild_id, "--reason", "accepted: not reachable", "--api-url", api]
    )
    assert promoted.exit_code == 0, promoted.output
    assert f"its tag is on {golden.image_digest}" in promoted.output and images["app-a"] in promoted.output
    # Then golden's tag is on the rebuilt digest, and the cascade below continued: app-a rebuilt on it
    assert skopeo_digest(images["golden"]) == golden.image_digest
    assert [s for s in signed(local_stack) if golden.image_digest in s] == [
        f"{parse_ref(images['golden']).name}@{golden.image_digest}"
    ]  # signed once it was promoted, once
    assert local_stack.wait_idle(timeout=240, quiet=3.0)
    (app,) = store.recent_rebuilds(images["app-a"])
    assert app.status is RebuildStatus.SUCCEEDED and app.on_tag, app
    assert app.base_digest == golden.image_digest
    assert skopeo_digest(images["app-a"]) == app.image_digest != before["app-a"]
    # And the patch counts golden promoted and app-a rebuilt, none skipped
    (patch,) = [p for p in store.patches_of(images["base"])]
    assert (patch.promoted, patch.blocked, patch.skipped, patch.finished) == (2, 0, 0, 2), patch
    # When golden is rolled back with the CLI
    rolled = runner.invoke(cli, ["rollback", images["golden"], "--api-url", api])
    # Then its tag is back on the digest it had before, and a second rollback is refused
    assert rolled.exit_code == 0, rolled.output
    assert skopeo_digest(images["golden"]) == before["golden"]
    again = runner.invoke(cli, ["rollback", images["golden"], "--api-url", api])
    assert again.exit_code != 0 and "not a digest patchprop promoted" in again.output
    # And an unknown rebuild is refused by name
    unknown = runner.invoke(cli, ["promote", "rb-" + "0" * 32, "--reason", "x", "--api-url", api])
    assert unknown.exit_code != 0 and "no rebuild rb-" in unknown.output


def _base_golden_app(
    local_stack, tmp_path, prefix: str, tests: dict[str, str] | None = None
) -> tuple[dict[str, str], Store]:
    """base -> golden -> app-a under `prefix`, built and registered (with smoke tests, if given)."""
    images = {name: f"{prefix}/{name}:1" for name in ("base", "golden", "app-a")}
    _build_base(tmp_path, images["base"], patch_level=1)
    store = Store(local_stack.describe()["resources"]["PatchpropTable"])
    for name, parent in (("golden", "base"), ("app-a", "golden")):
        parent_ref = parse_ref(images[parent])
        _build(
            EXAMPLES / name,
            images[name],
            f"{parent_ref.name}@{digest(images[parent])}",
            images[parent],
            tmp_path,
        )
        store.put_dependent(
            Dependent(
                image=images[name],
                bases=[images[parent]],
                project=PROJECT,
                source_location=str(EXAMPLES / name),
                test_command=(tests or {}).get(name),
            )
        )
    return images, store


def test_golden_image_in_an_ecr_like_repository_republished_by_someone_else_is_rebuilt_on_its_push(
    local_stack, tmp_path
):
    # Given a golden image in an ECR-shaped repository (ecr/*: told as ECR tells pushes), tracked,
    # and an app registered on it (built as the examples' golden image is: FROM a base)
    registry = local_stack.describe()["registry"]
    ns = f"ecr/e{uuid.uuid4().hex[:6]}"
    golden, app = f"{registry}/{ns}/golden:1", f"{registry}/{ns}/app-a:1"
    _build_base(tmp_path, golden, patch_level=1)
    _build(EXAMPLES / "golden", app, f"{parse_ref(golden).name}@{digest(golden)}", golden, tmp_path)
    s = store(local_stack)
    s.put_dependent(
        Dependent(image=app, bases=[golden], project=PROJECT, source_location=str(EXAMPLES / "golden"))
    )
    s.record_digest(str(parse_ref(golden)), None, digest(golden))
    # When another pipeline re-publishes the golden image (no poll runs: the stack's is hourly)
    _build_base(tmp_path, golden, patch_level=2)
    moved = digest(golden)
    # Then the push arrives as an "ECR Image Action" (not a Docker Hub webhook) and the app is
    # rebuilt on the new digest
    assert local_stack.wait_for(
        finished(local_stack, app, base=str(parse_ref(golden)), digest_of_base=moved), timeout=240
    )
    pushes = [(kind, d.get("image")) for kind, d in local_stack.events if kind in ("push", "ecr-push")]
    assert ("ecr-push", golden) in pushes and ("push", golden) not in pushes
    (rebuild,) = [r for r in s.recent_rebuilds(app) if r.base_digest == moved]
    assert rebuild.status is RebuildStatus.SUCCEEDED and rebuild.previous_digest != moved
