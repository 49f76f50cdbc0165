"""Own-package rescans with ScanSource=trivy (the default), on moto: the poller's tick starts ONE
scan-only build of each due promoted digest (PATCHPROP_MODE=rescan); when it ends, build events
judge the report it left: the image's own fixable findings start one rebuild of it alone.

CodeBuild is moto's stub behind the real adapter (StartBuild's parameters read off botocore's
event, as in test_base_scan_codebuild.py); the build's report is put where the build would
leave it; the script's rescan mode itself is run at the end, with a stand-in trivy.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import test_base_scan_codebuild as base_scan
from support import PROJECTS, queue_bodies
from test_rescan_ecr import tick

from patchprop import config, wiring
from patchprop.adapters.dynamodb import Store
from patchprop.domain.models import Dependent
from patchprop.domain.records import Rebuild, RebuildStatus
from patchprop_local.resources import CHECKOUT, rebuild_script

pytestmark = pytest.mark.integration
IMAGE = "registry.example.com/acme/payments-api:2.4"
DIGEST, BASE_DIGEST = ("sha256:" + c * 64 for c in "de")
BASE = "docker.io/acme/golden:1"
# A real trivy report (examples/chain): what the base carries. The image's own report is that
# plus one finding in a package its Dockerfile installed, with a fix.
BASE_REPORT = json.loads((CHECKOUT / "examples/chain/base-reports/carries-fixes.trivy.json").read_text())
OWN = {
    "VulnerabilityID": "CVE-2026-4242",
    "PkgName": "requests",
    "InstalledVersion": "2.31.0",
    "FixedVersion": "2.32.4",
    "Status": "fixed",
    "Severity": "HIGH",
}


started = base_scan.started  # the fixture: moto's rebuild projects, and each StartBuild's parameters
end_build = base_scan.end_build


def image_report(own: bool = True) -> bytes:
    report = copy.deepcopy(BASE_REPORT)
    if own:
        report["Results"][0]["Vulnerabilities"].append(OWN)
    return json.dumps(report).encode()


@pytest.fixture
def promoted(aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Store:
    """IMAGE on its tag by a rebuild on BASE (whose report is kept), rescans on (5 a day)."""
    monkeypatch.setenv("SCAN_SOURCE", "trivy")
    monkeypatch.setenv("OWN_PACKAGE_RESCANS_PER_DAY", "5")
    config.env_vars.cache_clear()
    wiring.reset()
    base_report = tmp_path / "golden.trivy.json"
    base_report.write_text(json.dumps(BASE_REPORT))
    store = Store(aws.refs["PatchpropTable"])
    store.put_dependent(Dependent(image=IMAGE, project=PROJECTS[0], bases=[BASE], patch_by="auto"))
    store.record_digest(BASE, None, BASE_DIGEST)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    store.record_started(
        Rebuild(
            rebuild_id="rb-first",
            image=IMAGE,
            base=BASE,
            base_digest=BASE_DIGEST,
            project=PROJECTS[0],
            detected_at=at,
            base_report=base_report.as_uri(),
            status=RebuildStatus.SUCCEEDED,
            build_id="b-first",
            image_digest=DIGEST,
            promoted_at=at,
        )
    )
    return store


def leave_report(call: dict[str, Any], body: bytes) -> None:
    """What the scan-only build does with trivy: its report at RESCAN_REPORT_URI."""
    uri = next(v["value"] for v in call["environmentVariablesOverride"] if v["name"] == "RESCAN_REPORT_URI")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3", region_name="us-east-1")
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def test_the_tick_starts_one_scan_and_its_end_one_rebuild_of_the_image_alone(
    aws: Any, promoted: Store, started: list[dict[str, Any]]
) -> None:
    # When the tick rescans, twice (a redelivered schedule)
    (done,) = tick()
    assert tick() == []
    # Then one scan-only build of the promoted digest was started, in the image's project
    assert done["outcome"] == "scan started" and done["rebuild_id"] is None
    (call,) = started
    env = {v["name"]: v["value"] for v in call["environmentVariablesOverride"]}
    assert call["projectName"] == PROJECTS[0]
    assert env["PATCHPROP_MODE"] == "rescan"
    assert env["RESCAN_IMAGE"] == f"registry.example.com/acme/payments-api@{DIGEST}"
    assert env["RESCAN_REPORT_URI"].startswith(os.environ["RESCAN_REPORTS_URI"] + "/registry.example.com/")
    assert "BASE_IMAGE" not in env  # nothing is built
    assert queue_bodies(aws, "RebuildQueue") == []
    # When it ends with a report that lists a fix in the image's own package
    leave_report(call, image_report())
    answer = end_build(call, "SUCCEEDED")
    # Then one rebuild of the image alone is sent, on the base digest it is built on, saying why
    assert answer["status"] == "rescan" and answer["outcome"] == "rebuild started", answer
    (request,) = queue_bodies(aws, "RebuildQueue")
    assert request["image"] == IMAGE and request["base_digest"] == BASE_DIGEST
    assert request["trigger"] == "own packages have fixes: CVE-2026-4242 in requests 2.31.0 (fixed in 2.32.4)"
    state = promoted.get_rescan(IMAGE)
    assert (
        state is not None and state.rebuild_id == request["rebuild_id"] and state.outcome == "rebuild started"
    )
    # and the same event again (EventBridge's at-least-once) sends nothing more
    assert end_build(call, "SUCCEEDED")["outcome"] is None
    assert queue_bodies(aws, "RebuildQueue") == []


def test_a_failed_scan_says_not_scanned_and_rebuilds_nothing(
    aws: Any, promoted: Store, started: list[dict[str, Any]]
) -> None:
    tick()
    (call,) = started
    answer = end_build(call, "FAILED")
    assert answer["outcome"].startswith("not scanned: its build ") and answer["outcome"].endswith(
        "ended FAILED"
    )
    assert queue_bodies(aws, "RebuildQueue") == []


def test_a_scan_that_left_no_report_says_so(aws: Any, promoted: Store, started: list[dict[str, Any]]) -> None:
    tick()
    (call,) = started
    answer = end_build(call, "SUCCEEDED")  # trivy was not in the build image: no report.json
    assert answer["outcome"].startswith("not scanned: the rescan build left no report (no trivy")
    assert queue_bodies(aws, "RebuildQueue") == []


def test_only_the_bases_findings_start_nothing(
    aws: Any, promoted: Store, started: list[dict[str, Any]]
) -> None:
    tick()
    (call,) = started
    leave_report(call, image_report(own=False))
    answer = end_build(call, "SUCCEEDED")
    assert answer["outcome"].startswith("no fixable own findings"), answer
    assert queue_bodies(aws, "RebuildQueue") == []


def test_an_image_whose_project_this_stack_may_not_start_is_not_scanned(
    aws: Any, promoted: Store, started: list[dict[str, Any]]
) -> None:
    dependent = promoted.get_dependent(IMAGE)
    assert dependent is not None
    promoted.put_dependent(dependent.model_copy(update={"project": "someone-elses"}))
    (done,) = tick()
    assert done["outcome"] == "not scanned: its project someone-elses is not in RebuildProjects"
    assert started == []


# ---- the script's rescan mode (buildspec/rebuild.sh), with a stand-in trivy ----------------------

TRIVY = """#!/bin/sh
echo "trivy $*" >> "$STUB_LOG"
while [ $# -gt 0 ]; do case "$1" in --output) out=$2; shift ;; esac; shift; done
cp "$TRIVY_REPORT" "$out"
"""


def run_rescan(tmp_path: Path, with_trivy: bool, image: str = f"127.0.0.1:1/acme/app@{DIGEST}") -> Any:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if with_trivy:
        (bin_dir / "trivy").write_text(TRIVY)
        (bin_dir / "trivy").chmod(0o755)
    (tmp_path / "golden.json").write_bytes(image_report())
    path = f"{bin_dir}:/usr/bin:/bin"  # no trivy of the machine's, whatever is installed
    env = {
        "PATH": path,
        "STUB_LOG": str(tmp_path / "stub.log"),
        "TRIVY_REPORT": str(tmp_path / "golden.json"),
        "PATCHPROP_MODE": "rescan",
        "RESCAN_IMAGE": image,
        "REGISTRY_TLS_VERIFY": "false",
        "RESCAN_REPORT_URI": f"file://{tmp_path}/rescans/x/2026-12-02/report.json",
        "RESULT_FILE": str(tmp_path / "result.json"),
    }
    return subprocess.run(
        ["bash", str(rebuild_script())], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_scripts_rescan_mode_leaves_trivys_report_and_builds_nothing(tmp_path: Path) -> None:
    done = run_rescan(tmp_path, with_trivy=True)
    assert done.returncode == 0, done.stderr
    report = tmp_path / "rescans/x/2026-12-02/report.json"
    assert report.read_bytes() == image_report()
    assert (tmp_path / "stub.log").read_text().split()[-1] == f"127.0.0.1:1/acme/app@{DIGEST}"
    assert "--insecure" in (tmp_path / "stub.log").read_text()
    result = json.loads((tmp_path / "result.json").read_text())
    assert result == {"image": f"127.0.0.1:1/acme/app@{DIGEST}", "report": report.as_uri()}


def test_the_scripts_rescan_mode_without_trivy_leaves_no_report_and_says_why(tmp_path: Path) -> None:
    done = run_rescan(tmp_path, with_trivy=False)
    assert done.returncode == 0, done.stderr
    assert "trivy is not installed" in done.stdout + done.stderr
    assert not (tmp_path / "rescans").exists()
    bad = run_rescan(tmp_path, with_trivy=True, image="127.0.0.1:1/acme/app:1")
    assert bad.returncode == 2 and "RESCAN_IMAGE must be registry/repo@sha256:" in bad.stdout + bad.stderr


def test_the_scripts_rescan_mode_logs_in_to_a_promoted_image_in_ecr(tmp_path: Path) -> None:
    from test_base_check_script import ECR, STUBS

    # Given the stand-ins of aws (a login token) and trivy (logging the docker config it reads)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("aws", "trivy"):
        (bin_dir / name).write_text(STUBS[name])
        (bin_dir / name).chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "STUB_LOG": str(tmp_path / "stub.log"),
        "PATCHPROP_MODE": "rescan",
        "RESCAN_IMAGE": f"{ECR}/acme/app@{DIGEST}",
        "RESCAN_REPORT_URI": f"file://{tmp_path}/rescans/report.json",
        "RESULT_FILE": str(tmp_path / "result.json"),
    }
    # When the rescan mode scans a digest in private ECR
    done = subprocess.run(
        ["bash", str(rebuild_script())], env=env, capture_output=True, text=True, timeout=60
    )
    # Then it logged in to that registry's region first, and trivy read that login
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "stub.log").read_text().splitlines()
    assert calls[0] == "aws ecr get-login-password --region eu-west-1"
    assert ECR in calls[1] and calls[1].startswith("trivy image")
    assert (tmp_path / "rescans/report.json").exists()
