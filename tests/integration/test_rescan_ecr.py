"""Own-package rescans on moto: ECR's current findings of a promoted digest list a fix in the
image's own packages; the poller's rescan starts one rebuild of it, with that reason, and a
second tick starts nothing more."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api import _internal as moto_api
from support import FakeBuilds, drain

from patchprop import config, wiring
from patchprop.adapters.dynamodb import Store
from patchprop.config import PollerEnv
from patchprop.domain.models import Dependent
from patchprop.domain.records import Rebuild, RebuildStatus
from patchprop_local.lambdas import LocalContext, load_handler
from patchprop_local.resources import CHECKOUT as ROOT

pytestmark = pytest.mark.integration
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
BASE = "docker.io/acme/golden:1"
BASE_DIGEST = "sha256:" + "b" * 64
# The base's Trivy report lists moto_fake's CVE: that one came with the base.
BASE_TRIVY = {
    "SchemaVersion": 2,
    "Results": [
        {
            "Target": "golden",
            "Vulnerabilities": [
                {
                    "VulnerabilityID": "CVE-9999-9999",
                    "PkgName": "moto_fake",
                    "InstalledVersion": "9.9.9",
                    "Severity": "HIGH",
                }
            ],
        }
    ],
}


def vulnerable(cve: str, package: str, version: str, fixed: str) -> dict:
    return {
        "title": cve,
        "severity": "HIGH",
        "status": "ACTIVE",
        "packageVulnerabilityDetails": {
            "vulnerabilityId": cve,
            "vulnerablePackages": [{"name": package, "version": version, "fixedInVersion": fixed}],
        },
    }


def promoted_in_ecr(stack, repository: str, tmp_path: Path) -> tuple[str, str]:
    """An image pushed to moto's ECR, scanned with enhanced findings, and on its tag by a rebuild."""
    ecr = boto3.client("ecr", region_name="us-east-1")
    ecr.create_repository(repositoryName=repository)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + "c" * 64,
            "size": 2,
        },
        "layers": [],
    }
    pushed = ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag="1")
    digest = pushed["image"]["imageId"]["imageDigest"]
    ecr.start_image_scan(repositoryName=repository, imageId={"imageDigest": digest})
    moto_api.moto_api_backend.set_ecr_scan_finding_result(
        {
            "repositoryName": repository,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": "ACTIVE", "description": "continuous scanning"},
            "imageScanFindings": {
                "enhancedFindings": [
                    vulnerable("CVE-9999-9999", "moto_fake", "9.9.9", "10.0"),  # the base's
                    vulnerable("CVE-2026-4242", "requests", "2.31.0", "2.32.4"),  # its own
                ]
            },
        },
        DEFAULT_ACCOUNT_ID,
        "us-east-1",
    )
    base_report = tmp_path / "golden.json"
    base_report.write_text(json.dumps(BASE_TRIVY))
    image = f"{REGISTRY}/{repository}:1"
    store = Store(stack.refs["PatchpropTable"])
    store.put_dependent(Dependent(image=image, project="patchprop-rebuild", bases=[BASE], patch_by="auto"))
    store.record_digest(BASE, None, BASE_DIGEST)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    store.record_started(
        Rebuild(
            rebuild_id=f"rb-first-{repository.replace('/', '-')}",
            image=image,
            base=BASE,
            base_digest=BASE_DIGEST,
            project="patchprop-rebuild",
            detected_at=at,
            base_report=base_report.as_uri(),
            status=RebuildStatus.SUCCEEDED,
            build_id=f"b-first-{repository.replace('/', '-')}",
            image_digest=digest,
            promoted_at=at,
        )
    )
    return image, digest


def tick(image: str | None = None) -> list[dict]:
    config.env_vars.cache_clear()
    env = config.env_vars(PollerEnv)
    rescan = load_handler(ROOT / "functions" / "poller", "rescan")
    return rescan(wiring.adapters(env), env, image)


def test_own_fixes_in_ecr_start_one_rebuild_and_a_second_tick_nothing(
    aws, builds: FakeBuilds, monkeypatch, tmp_path: Path
):
    monkeypatch.setenv("SCAN_SOURCE", "ecr")
    monkeypatch.setenv("OWN_PACKAGE_RESCANS_PER_DAY", "5")
    wiring.reset()
    image, digest = promoted_in_ecr(aws, "acme/app", tmp_path)
    (done,) = tick()
    assert done["outcome"] == "rebuild started", done
    drain(aws, "RebuildQueue", "rebuilder")
    (build,) = builds.started
    assert build["env"]["PATCHPROP_REBUILD_ID"] == done["rebuild_id"]
    assert build["env"]["BASE_IMAGE_DIGEST"] == BASE_DIGEST  # the same base, its own packages anew
    rebuild = Store(aws.refs["PatchpropTable"]).get_rebuild(done["rebuild_id"])
    assert rebuild is not None and rebuild.cascade is None and rebuild.image == image
    state = Store(aws.refs["PatchpropTable"]).get_rescan(image)
    assert state is not None and state.digest == digest and state.rebuild_id == done["rebuild_id"]
    assert rebuild.trigger == "own packages have fixes: CVE-2026-4242 in requests 2.31.0 (fixed in 2.32.4)"
    # A second tick (the same day, or delivered twice) rescans nothing and starts nothing.
    assert tick() == []
    drain(aws, "RebuildQueue", "rebuilder")
    assert len(builds.started) == 1


def test_off_by_default(aws, builds: FakeBuilds, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("SCAN_SOURCE", "ecr")
    promoted_in_ecr(aws, "acme/off", tmp_path)
    assert config.env_vars(PollerEnv).OWN_PACKAGE_RESCANS_PER_DAY == 0
    assert tick() == []


def test_the_poller_tick_for_one_image_rescans_that_image_alone(
    aws, builds: FakeBuilds, monkeypatch, tmp_path: Path
):
    monkeypatch.setenv("SCAN_SOURCE", "ecr")
    monkeypatch.setenv("OWN_PACKAGE_RESCANS_PER_DAY", "5")
    config.env_vars.cache_clear()
    wiring.reset()
    image, _ = promoted_in_ecr(aws, "acme/one", tmp_path)
    promoted_in_ecr(aws, "acme/other", tmp_path)
    poll = load_handler(ROOT / "functions" / "poller")
    answer = poll({"image": image}, LocalContext(function_name="poller"))
    assert [r["image"] for r in answer["rescanned"]] == [image]
    assert answer["rescanned"][0]["outcome"] == "rebuild started"
    # The other image is rescanned by the next tick of all images.
    assert [r["image"] for r in poll({}, LocalContext(function_name="poller"))["rescanned"]] == [
        f"{REGISTRY}/acme/other:1"
    ]
