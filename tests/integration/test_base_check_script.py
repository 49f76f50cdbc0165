"""buildspec/rebuild.sh in PATCHPROP_MODE=base-check with stand-ins for aws, trivy and syft: a
base in ECR is read with a login of its own (DOCKER_CONFIG), one elsewhere with none."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).resolve().parents[2] / "buildspec" / "rebuild.sh"
DIGEST = "sha256:" + "7" * 64
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
STUBS = {
    # Each tool logs its arguments and the docker config it would read.
    "trivy": """#!/bin/sh
echo "trivy $* config=$(cat "${DOCKER_CONFIG:-/none}/config.json" 2>/dev/null)" >> "$STUB_LOG"
while [ $# -gt 0 ]; do [ "$1" = --output ] && out=$2; shift; done
echo '{"SchemaVersion": 2, "Results": []}' > "$out"
""",
    "syft": """#!/bin/sh
echo "syft $* config=$(cat "${DOCKER_CONFIG:-/none}/config.json" 2>/dev/null)" >> "$STUB_LOG"
echo '{"artifacts": []}'
""",
    "aws": """#!/bin/sh
echo "aws $*" >> "$STUB_LOG"
[ -z "$AWS_STUB_REFUSE" ] || { echo "AccessDeniedException" >&2; exit 255; }
echo "s3cr3t-token"
""",
}


def run(tmp_path: Path, base: str, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir, log = tmp_path / "stubs", tmp_path / "stubs.log"
    bin_dir.mkdir(exist_ok=True)
    for name, text in STUBS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    variables = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "STUB_LOG": str(log),
        "PATCHPROP_MODE": "base-check",
        "BASE_IMAGE": f"{base}@{DIGEST}",
        "BASE_REPORTS_URI": f"file://{tmp_path}/reports",
        "RESULT_FILE": str(tmp_path / "result.json"),
        **env,
    }
    done = subprocess.run(["bash", str(SCRIPT)], env=variables, capture_output=True, text=True, timeout=60)
    return done, (log.read_text().splitlines() if log.exists() else [])


def test_a_base_in_ecr_is_scanned_with_a_login_to_its_registry(tmp_path: Path) -> None:
    # When the check-only scan runs on a base in a private ECR registry
    done, calls = run(tmp_path, f"{ECR}/golden")
    # Then it logged in to that registry's region, and trivy and syft read that login
    assert done.returncode == 0, done.stderr
    assert calls[0] == "aws ecr get-login-password --region eu-west-1"
    auth = base64.b64encode(b"AWS:s3cr3t-token").decode()
    expected = {"auths": {ECR: {"auth": auth}}}
    for tool in ("trivy", "syft"):
        (line,) = [c for c in calls if c.startswith(tool)]
        assert json.loads(line.split(" config=", 1)[1]) == expected
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["report"].endswith(f"/{ECR}/golden/{DIGEST[7:]}/report.json") and "sbom" in result


def test_a_base_elsewhere_is_scanned_with_no_login(tmp_path: Path) -> None:
    done, calls = run(tmp_path, "registry.example.com/golden")
    assert done.returncode == 0, done.stderr
    assert not any(c.startswith("aws") for c in calls)
    assert all(c.endswith("config=") for c in calls if c.startswith(("trivy", "syft")))


def test_a_refused_login_fails_the_scan_saying_why(tmp_path: Path) -> None:
    done, calls = run(tmp_path, f"{ECR}/golden", AWS_STUB_REFUSE="1")
    assert done.returncode == 5
    assert "could not log in to " + ECR in done.stderr and "ecr:GetAuthorizationToken" in done.stderr
    assert not any(c.startswith("trivy") for c in calls)
    failure = json.loads((tmp_path / "result.json").read_text())["failure"]
    assert "could not log in" in failure["message"]
