"""e2e: the gate is the only way onto a tag — candidates by digest, promotion moves the tag, a
failed smoke test leaves it, the evidence is found from the promoted digest."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.registry import RegistryClient
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
PROJECT = "patchprop-rebuild"


def skopeo_digest(image: str) -> str:
    """What a consumer sees on the tag, asked with a standard client."""
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{image}"],
        capture_output=True,
        check=True,
    ).stdout
    import hashlib

    return "sha256:" + hashlib.sha256(out).hexdigest()


def digest(image: str) -> str:
    return RegistryClient().resolve_digest(parse_ref(image))


def test_candidate_is_promoted_and_a_failed_smoke_test_leaves_the_tag(
    local_stack: LocalStack, tmp_path: Path
):
    # Given base -> golden (smoke test passes) -> app-a (smoke test fails), registered
    registry = local_stack.describe()["registry"]
    ns = f"p{uuid.uuid4().hex[:6]}"
    images = {name: f"{registry}/{ns}/{name}:1" for name in ("base", "golden", "app-a")}
    tests = {"golden": "test -x /bin/busybox", "app-a": "echo smoke-output-here; exit 3"}
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
                test_command=tests[name],
            )
        )
    local_stack.run_schedules()
    assert local_stack.wait_idle(timeout=60, quiet=1.0)
    before = {name: skopeo_digest(image) for name, image in images.items()}
    # When the base is re-published
    _build_base(tmp_path, images["base"], patch_level=2)
    assert local_stack.wait_idle(timeout=240, quiet=3.0)
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
