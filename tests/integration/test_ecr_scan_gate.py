"""ScanSource=ecr: the gate judges moto's ECR scan findings exactly as the same findings in a
Trivy report; a scan still running retries the event, one that never completes is decided."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from support import FakeBuilds, drain, handler

from patchprop import config, wiring
from patchprop.adapters.dynamodb import Store
from patchprop.adapters.sqs import Queue
from patchprop.domain.models import Dependent, PatchRequest, RebuildRequest
from patchprop.domain.records import Rebuild
from patchprop.logic.ecr_verdict import ScanPending
from patchprop_local.lambdas import LocalContext, eventbridge_event

pytestmark = pytest.mark.integration
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
BASE = "docker.io/acme/golden:1"
LENIENT = "fail_on=critical"
# moto's scan findings for any image: one HIGH, CVE-9999-9999 in moto_fake 9.9.9. The same
# finding as Trivy would write it:
TRIVY_SAME = {
    "SchemaVersion": 2,
    "Results": [
        {
            "Target": "image",
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


@pytest.fixture
def ecr_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAN_SOURCE", "ecr")
    config.env_vars.cache_clear()
    wiring.reset()


def pushed(repository: str, scanned: bool = True) -> str:
    """An image pushed to moto's ECR (scanned, or not yet); its digest."""
    ecr = boto3.client("ecr", region_name="us-east-1")
    ecr.create_repository(repositoryName=repository)
    config_blob = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": "sha256:" + "c" * 64,
        "size": 2,
    }
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}
    manifest["config"] = config_blob
    image = ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag="build")
    digest = image["image"]["imageId"]["imageDigest"]
    if scanned:
        ecr.start_image_scan(repositoryName=repository, imageId={"imageDigest": digest})
    return str(digest)


def rebuild_of(
    stack, builds: FakeBuilds, image: str, n: int, policy: str | None, **result: Any
) -> tuple[RebuildRequest, dict]:
    """A rebuild of `image` started, its build's result set, and its SUCCEEDED state change."""
    store = Store(stack.refs["PatchpropTable"])
    digest = "sha256:" + f"{n:x}" * 64
    patch = PatchRequest(
        base=BASE, digest=digest, previous_digest="sha256:" + "0" * 64, detected_by="webhook"
    )
    dependent = Dependent(image=image, project="patchprop-rebuild", bases=[BASE], policy=policy)
    store.put_dependent(dependent)
    request = RebuildRequest.for_dependent(dependent, patch)
    store.record_patch(patch, rebuilds=1)
    Queue(stack.refs["RebuildQueue"]).send(request)
    drain(stack, "RebuildQueue", "rebuilder")
    (build,) = [b for b in builds.started if b["env"]["PATCHPROP_REBUILD_ID"] == request.rebuild_id]
    builds.results[build["id"]] = {"image": image, **result}
    detail = {
        "build-status": "SUCCEEDED",
        "build-id": f"arn:aws:codebuild:us-east-1:123456789012:build/{build['id']}",
        "project-name": build["project"],
        "additional-information": {
            "environment": {
                "environment-variables": [{"name": k, "value": v} for k, v in build["env"].items()]
            }
        },
    }
    return request, eventbridge_event("aws.codebuild", "CodeBuild Build State Change", detail)


def judged(stack, request: RebuildRequest) -> Rebuild:
    rebuild = Store(stack.refs["PatchpropTable"]).get_rebuild(request.rebuild_id)
    assert rebuild is not None and rebuild.status.final
    return rebuild


def gate_reasons(rebuild: Rebuild) -> list[str]:
    """The gate's reasons, without what promotion's evidence said (the registries differ)."""
    return [r for r in rebuild.reasons if not r.startswith(("Could not attach", "No receipt"))]


def deliver(event: dict) -> Any:
    return handler("build_events")(event, LocalContext(function_name="build_events"))


@pytest.mark.parametrize("policy", [None, LENIENT], ids=["default-policy", "block-only-critical"])
def test_ecr_findings_decide_as_the_same_findings_in_a_trivy_report(
    aws, builds, tmp_path: Path, monkeypatch, policy
):
    # Given the same finding, once in a Trivy report and once as ECR's scan of the pushed digest
    report = tmp_path / "trivy.json"
    report.write_text(json.dumps(TRIVY_SAME))
    by_trivy, event = rebuild_of(
        aws,
        builds,
        "docker.io/acme/by-trivy:1",
        1,
        policy,
        digest="sha256:" + "e" * 64,
        report=report.as_uri(),
    )
    deliver(event)
    monkeypatch.setenv("SCAN_SOURCE", "ecr")
    config.env_vars.cache_clear()
    wiring.reset()
    digest = pushed("acme/by-ecr")
    by_ecr, event = rebuild_of(aws, builds, f"{REGISTRY}/acme/by-ecr:1", 2, policy, digest=digest)
    deliver(event)
    # Then both are decided alike, for the same reasons
    trivy, ecr = judged(aws, by_trivy), judged(aws, by_ecr)
    assert ecr.outcome == trivy.outcome == ("blocked" if policy is None else "promoted")
    assert gate_reasons(ecr) == gate_reasons(trivy) and gate_reasons(ecr)
    assert policy is not None or "CVE-9999-9999 in moto_fake 9.9.9" in gate_reasons(ecr)[0]
    assert ecr.report_uri == f"ecr://{REGISTRY}/acme/by-ecr@{digest}"


def test_a_scan_still_running_retries_the_event_with_nothing_recorded(aws, builds, ecr_source):
    digest = pushed("acme/pending", scanned=False)
    request, event = rebuild_of(aws, builds, f"{REGISTRY}/acme/pending:1", 3, None, digest=digest)
    with pytest.raises(ScanPending):
        deliver(event)
    rebuild = Store(aws.refs["PatchpropTable"]).get_rebuild(request.rebuild_id)
    assert rebuild is not None and not rebuild.status.final


@pytest.mark.parametrize(("required", "outcome"), [("true", "failed"), ("false", "succeeded")])
def test_a_scan_that_never_completes_fails_if_required_else_is_told_not_scanned(
    aws, builds, ecr_source, monkeypatch, required, outcome
):
    monkeypatch.setenv("REQUIRE_SCAN", required)
    config.env_vars.cache_clear()
    digest = pushed(f"acme/never-{required}", scanned=False)
    request, event = rebuild_of(aws, builds, f"{REGISTRY}/acme/never-{required}:1", 4, None, digest=digest)
    event["time"] = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")  # waited long
    deliver(event)
    rebuild = judged(aws, request)
    assert rebuild.outcome == outcome
    assert any("ECR scan" in r and "PENDING" in r for r in rebuild.reasons), rebuild.reasons
