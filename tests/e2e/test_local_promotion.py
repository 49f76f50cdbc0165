"""e2e: promotion on `patchprop local` with real builds: a candidate promoted only past its smoke
test, a blocked rebuild promoted by hand and rolled back, and an ECR-like golden image's own push.

Apart from tests/e2e/test_local_stack.py so that the two run in separate workers (each module has
its own stack)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from test_local_stack import PROJECT, digest, finished, store, tracked

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.registry_write import RegistryWriter
from patchprop.domain.models import Dependent
from patchprop.domain.oci import referrers_tag
from patchprop.domain.receipt import RECEIPT_ARTIFACT_TYPE
from patchprop.domain.records import Outcome, RebuildStatus
from patchprop.domain.refs import parse_ref
from patchprop.logic.promote import SBOM_ARTIFACT_TYPE
from patchprop_cli.demo import EXAMPLES, _build, _build_base
from patchprop_local.lifecycle import LocalStack

pytestmark = pytest.mark.e2e


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
    assert local_stack.wait_for(tracked(local_stack, images["base"], images["golden"]), timeout=60)
    before = {name: skopeo_digest(image) for name, image in images.items()}
    # When the base is re-published
    _build_base(tmp_path, images["base"], patch_level=2)
    # (its push notification comes when the registry sends it: wait for golden's rebuild to be told)
    moved = digest(images["base"])
    golden_told = finished(local_stack, images["golden"], base=images["base"], digest_of_base=moved)
    assert local_stack.wait_for(golden_told, timeout=240)
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
    app_told = finished(
        local_stack, images["app-a"], base=images["golden"], digest_of_base=golden.image_digest
    )
    assert local_stack.wait_for(app_told, timeout=240)
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
    # And app-a, built on golden, is patched back onto golden's old digest (rebuilt and told)
    assert f"patched onto {before['golden']}" in rolled.output, rolled.output
    app_back = finished(local_stack, images["app-a"], base=images["golden"], digest_of_base=before["golden"])
    assert local_stack.wait_for(app_back, timeout=240)
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
