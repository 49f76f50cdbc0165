"""The local CodeBuild: real buildah rebuilds pushed to a real registry, genuine build events."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
import requests

from patchprop.domain.errors import BuildStartFailed
from patchprop.domain.events import BuildFailure, BuildResult, BuildStateChange
from patchprop_local.codebuild import LocalCodeBuild
from patchprop_local.oci import OCI_INDEX, OCI_MANIFEST
from patchprop_local.registry_server import LocalRegistry

pytestmark = pytest.mark.integration

TAG_PUSH = {"PUSH": "tag", "SBOM": "off"}
PROJECT = "patchprop-rebuild"


def dependent(version: str = "1") -> str:
    """A dependent's Dockerfile: FROM the base it is given, one RUN step, its version as a label."""
    return f'ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN echo hi > /hello\nLABEL version="{version}"\n'


@dataclass(frozen=True)
class Base:
    registry: str
    name: str  # registry/repo:tag
    digest: str

    @property
    def pinned(self) -> str:
        return f"{self.name.rsplit(':', 1)[0]}@{self.digest}"


@pytest.fixture(scope="module")
def base(local_registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> Base:
    """A base image with a shell (a static busybox), built once with buildah and pushed."""
    if shutil.which("buildah") is None or not Path("/bin/busybox").exists():
        hint = "needs buildah and busybox-static: apt-get install buildah busybox-static"
        pytest.fail(hint) if os.environ.get("CI") else pytest.skip(hint)
    root = tmp_path_factory.mktemp("base")
    (root / "ctx").mkdir()
    shutil.copy("/bin/busybox", root / "ctx" / "busybox")
    (root / "ctx" / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
    )
    name = f"{local_registry.address}/acme/golden-busybox:1"
    buildah = ["buildah", "--root", str(root / "storage"), "--runroot", str(root / "run")]
    buildah += ["--storage-driver", "vfs"]
    subprocess.run(
        [*buildah, "bud", "--isolation", "chroot", "--format", "oci", "-t", name, "ctx"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*buildah, "push", "--tls-verify=false", "--digestfile", "digest", name],
        cwd=root,
        check=True,
        capture_output=True,
    )
    return Base(local_registry.address, name, (root / "digest").read_text().strip())


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def builds(tmp_path: Path, events: list[dict[str, Any]]) -> Iterator[LocalCodeBuild]:
    # The builder's own behaviour: pushed to the tag, no SBOM (candidates: test_rebuild_candidate.py)
    local = LocalCodeBuild([PROJECT], tmp_path / "work", emit=events.append, extra_env=TAG_PUSH)
    try:
        yield local
    finally:
        local.shutdown()


def context(tmp_path: Path, name: str, dockerfile: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "Dockerfile").write_text(dockerfile)
    return directory


def rebuild_env(base: Base, image: str) -> dict[str, str]:
    return {
        "BASE_IMAGE": base.pinned,
        "BASE_IMAGE_NAME": base.name,
        "BASE_IMAGE_DIGEST": base.digest,
        "TARGET_IMAGE": f"{base.registry}/{image}",
        "PATCHPROP_REBUILD_ID": f"rb-{image}",
    }


def start(
    builds: LocalCodeBuild, base: Base, image: str, source: str | Path, version: str | None = None
) -> str:
    """Start a rebuild of `image` from `source` (at `version`), with the image name as its token."""
    env = rebuild_env(base, image)
    return builds.start_build(PROJECT, env, image, source_version=version, source_location=str(source))


def assert_statuses(events: list[dict[str, Any]], build_id: str, expected: list[str]) -> None:
    """The build's events went through `expected`; if not, show its log."""
    got = statuses(events, build_id)
    assert got == expected, log_text(final_event(events, build_id)) if got else "no events"


def statuses(events: list[dict[str, Any]], build_id: str) -> list[str]:
    return [e["build-status"] for e in events if e["build-id"].endswith(f":build/{build_id}")]


def final_event(events: list[dict[str, Any]], build_id: str) -> BuildStateChange:
    mine = [e for e in events if e["build-id"].endswith(f":build/{build_id}")]
    return BuildStateChange.model_validate(mine[-1])


def log_text(detail: BuildStateChange) -> str:
    assert detail.additional_information.logs and detail.additional_information.logs.deep_link
    return Path(unquote(urlparse(detail.additional_information.logs.deep_link).path)).read_text()


def registry_manifest(image: str) -> tuple[dict[str, Any], str]:
    """The manifest the registry serves for `image` (skopeo), and the digest it names it by (HEAD)."""
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{image}"],
        check=True,
        capture_output=True,
    ).stdout
    address, _, rest = image.partition("/")
    repository, _, tag = rest.rpartition(":")
    head = requests.head(
        f"http://{address}/v2/{repository}/manifests/{tag}",
        headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"},
        timeout=5,
    )
    head.raise_for_status()
    assert head.headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    return json.loads(raw), head.headers["Docker-Content-Digest"]


def _failure(result: BuildResult | None) -> BuildFailure:
    """Why a failed build failed, as its result says."""
    assert result is not None and result.failure is not None, result
    return result.failure


def test_rebuild_is_pushed_pinned_with_base_annotations(
    base: Base, builds: LocalCodeBuild, events: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Given a dependent whose Dockerfile builds FROM ${BASE_IMAGE}
    src = context(tmp_path, "app", dependent())
    env = {**rebuild_env(base, "acme/app:1"), "SCAN": "off"}
    # When the local CodeBuild rebuilds it on the pinned base
    build_id = builds.start_build(PROJECT, env, "token-app", source_location=str(src))
    assert builds.wait(120)
    # Then it went IN_PROGRESS, then SUCCEEDED, with genuine build state change details
    assert build_id.startswith(f"{PROJECT}:")
    assert_statuses(events, build_id, ["IN_PROGRESS", "SUCCEEDED"])
    detail = final_event(events, build_id)
    assert detail.build_key == build_id and detail.project_name == PROJECT
    assert detail.env("PATCHPROP_REBUILD_ID") == "rb-acme/app:1"
    # And the pushed manifest names the base it was built on
    manifest, digest = registry_manifest(env["TARGET_IMAGE"])
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == base.name
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == base.digest
    assert len(manifest["layers"]) == 2  # the base's layer and the RUN step's
    # And the build's result (what build events reads back) is the image the registry holds
    result = {"image": env["TARGET_IMAGE"], "digest": digest, "base": base.pinned, "scanned": False}
    assert builds.build_result(build_id) == BuildResult.model_validate(result)


def test_failing_dockerfile_fails_alone_with_its_log(
    base: Base, builds: LocalCodeBuild, events: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Given one dependent whose Dockerfile fails and one that builds
    bad = context(tmp_path, "bad", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN exit 3\n")
    good = context(tmp_path, "good", dependent())
    # When both are rebuilt at the same time
    bad_id = start(builds, base, "acme/bad:1", bad)
    good_id = start(builds, base, "acme/good:1", good)
    assert builds.wait(120)
    # Then the failing one is FAILED, and its log (the event's deep link) shows why
    assert statuses(events, bad_id) == ["IN_PROGRESS", "FAILED"]
    text = log_text(final_event(events, bad_id))
    assert 'building at STEP "RUN exit 3": exit status 3' in text
    assert "[patchprop] build FAILED" in text
    # And the other still succeeded
    assert_statuses(events, good_id, ["IN_PROGRESS", "SUCCEEDED"])
    # And its result says why: the failing step and the last lines of its log
    failure = _failure(builds.build_result(bad_id))
    assert (failure.step, failure.exit) == ("building", 3)
    assert 'building at STEP "RUN exit 3": exit status 3' in failure.tail


def test_a_dockerfile_that_does_not_take_the_pin_fails_and_pushes_nothing(
    base: Base, builds: LocalCodeBuild, events: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Given a dependent whose FROM names the base's tag, not ${BASE_IMAGE}
    src = context(tmp_path, "unpinned", f"FROM {base.name}\nRUN echo hi > /hello\n")
    # When rebuilt "pinned" to the base's digest
    build_id = start(builds, base, "acme/unpinned:1", src)
    assert builds.wait(120)
    # Then it fails, saying the pin did not happen and which lines to write
    assert statuses(events, build_id) == ["IN_PROGRESS", "FAILED"]
    failure = _failure(builds.build_result(build_id))
    assert failure.step == "verifying the pin"
    assert "not built on the pinned base" in failure.message
    assert "FROM ${BASE_IMAGE}" in failure.message
    # And nothing was pushed, so nothing is annotated as pinned
    missing = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{base.registry}/acme/unpinned:1"],
        capture_output=True,
    )
    assert missing.returncode != 0


def test_missing_build_context_fails_with_a_clear_line(
    base: Base, builds: LocalCodeBuild, events: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Given a dependent whose source directory does not exist
    missing = tmp_path / "nowhere"
    # When it is rebuilt
    build_id = start(builds, base, "acme/x:1", missing)
    # Then the worker ends normally, the build FAILED, and the log says what is missing
    assert builds.wait(30)
    assert statuses(events, build_id) == ["IN_PROGRESS", "FAILED"]
    assert f"[patchprop] build context {missing} not found" in log_text(final_event(events, build_id))


def test_same_idempotency_token_starts_one_build(
    base: Base, builds: LocalCodeBuild, events: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Given a rebuild started once
    src = context(tmp_path, "app", dependent())
    env = rebuild_env(base, "acme/once:1")
    first = builds.start_build(PROJECT, env, "rb-once", source_location=str(src))
    # When the same request comes again with the same token (a redelivered message)
    second = builds.start_build(PROJECT, env, "rb-once", source_location=str(src))
    assert builds.wait(120)
    # Then it is the same build, built once
    assert second == first
    assert [e["build-status"] for e in events] == ["IN_PROGRESS", "SUCCEEDED"]
    assert len(list((builds.workdir / "builds").glob("*.log"))) == 1
    # And the token cannot be reused for a different build
    with pytest.raises(BuildStartFailed, match="IdempotentParameterMismatch"):
        builds.start_build(PROJECT, {**env, "BUILD_ARG_X": "1"}, "rb-once", source_location=str(src))


def test_unknown_project_is_refused(base: Base, builds: LocalCodeBuild, events: list[dict[str, Any]]) -> None:
    # Given a project the local CodeBuild does not have
    # When a build of it is started
    with pytest.raises(BuildStartFailed, match="ResourceNotFoundException"):
        builds.start_build("no-such-project", rebuild_env(base, "acme/x:1"), "t-unknown")
    # Then nothing ran
    assert builds.wait(5)
    assert events == []
    assert builds.running() == []


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def test_git_source_builds_the_requested_version(
    base: Base, builds: LocalCodeBuild, events: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Given a git repository: "one" committed, then "two" on main and "branch" on a branch
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch", "main")
    (repo / "Dockerfile").write_text(dependent("one"))
    git(repo, "add", "Dockerfile")
    git(repo, "commit", "--quiet", "-m", "one")
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "--quiet", "-b", "release")
    (repo / "Dockerfile").write_text(dependent("branch"))
    git(repo, "commit", "--quiet", "--all", "-m", "branch")
    git(repo, "checkout", "--quiet", "main")
    (repo / "Dockerfile").write_text(dependent("two"))
    git(repo, "commit", "--quiet", "--all", "-m", "two")
    # When it is rebuilt at the first commit, and at the branch
    ids = [
        start(builds, base, "acme/git:commit", repo, version=first),
        start(builds, base, "acme/git:branch", f"file://{repo}", version="refs/heads/release"),
    ]
    assert builds.wait(120)
    # Then each image was built from the Dockerfile of that version
    for build_id, image, version in zip(
        ids, ("acme/git:commit", "acme/git:branch"), ("one", "branch"), strict=True
    ):
        assert_statuses(events, build_id, ["IN_PROGRESS", "SUCCEEDED"])
        (done,) = [e for e in events if e["build-id"].endswith(build_id) and e["build-status"] == "SUCCEEDED"]
        config = json.loads(
            subprocess.run(
                ["skopeo", "inspect", "--config", "--tls-verify=false", f"docker://{base.registry}/{image}"],
                check=True,
                capture_output=True,
            ).stdout
        )
        assert config["config"]["Labels"]["version"] == version
        assert done["additional-information"]["source"]["type"] == "GIT"


def test_missing_buildah_fails_with_install_hint(
    base: Base, events: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Given a machine (PATH) without buildah
    no_buildah = {"PATH": str(tmp_path)}
    local = LocalCodeBuild([PROJECT], tmp_path / "work", emit=events.append, extra_env=no_buildah)
    src = context(tmp_path, "app", dependent())
    try:
        # When a rebuild is started
        build_id = start(local, base, "acme/x:1", src)
        assert local.wait(30)
    finally:
        local.shutdown()
    # Then it has an id, and FAILED saying how to install buildah
    assert statuses(events, build_id) == ["IN_PROGRESS", "FAILED"]
    hint = "[patchprop] ERROR: buildah not found: install it with apt-get install buildah"
    assert hint in log_text(final_event(events, build_id))


def test_stop_build_ends_a_running_build_stopped(
    base: Base, builds: LocalCodeBuild, events: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Given a build busy in a long RUN step
    src = context(tmp_path, "slow", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN sleep 60\n")
    build_id = start(builds, base, "acme/slow:1", src)
    log = builds.workdir / "builds" / f"{build_id}.log"
    deadline = time.monotonic() + 60
    while "RUN sleep 60" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the build never reached its RUN step"
        time.sleep(0.1)
    # When it is stopped
    builds.stop_build(build_id)
    # Then it ends STOPPED, well before the step would have
    assert builds.wait(20)
    assert statuses(events, build_id) == ["IN_PROGRESS", "STOPPED"]
    assert builds.running() == []


# ---- scan, sign, report: the script's optional steps, with stand-ins for trivy, cosign, aws -----

STUBS = {
    "trivy": """#!/bin/sh
echo "trivy $*" >> "$STUB_LOG"
out=""; format=""
while [ $# -gt 0 ]; do
  case "$1" in --output) out=$2; shift ;; --format) format=$2; shift ;; esac
  shift
done
if [ "$format" = cyclonedx ]; then echo '{"bomFormat": "CycloneDX"}' > "$out"
else echo '{"SchemaVersion": 2, "Results": []}' > "$out"; fi
""",
    "cosign": """#!/bin/sh
echo "cosign $*" >> "$STUB_LOG"
if [ "$1" = verify ] && [ -n "$COSIGN_STUB_REFUSE" ]; then echo "no matching signatures" >&2; exit 1; fi
""",
    "aws": """#!/bin/sh
echo "aws $*" >> "$STUB_LOG"
""",
}


@pytest.fixture
def stubbed(tmp_path: Path, events: list[dict[str, Any]]) -> Iterator[tuple[LocalCodeBuild, Path]]:
    """A local CodeBuild whose PATH has the stand-ins first; each logs its arguments to a file."""
    bin_dir, log = tmp_path / "stubs", tmp_path / "stubs.log"
    bin_dir.mkdir()
    for name, text in STUBS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    extra = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_LOG": str(log), "PUSH": "tag", "SYFT": ""}
    local = LocalCodeBuild([PROJECT], tmp_path / "work", emit=events.append, extra_env=extra)
    try:
        yield local, log
    finally:
        local.shutdown()


def calls(log: Path, tool: str) -> list[str]:
    return [line for line in (log.read_text() if log.exists() else "").splitlines() if line.startswith(tool)]


def test_with_trivy_the_pushed_image_and_its_base_are_scanned_and_the_reports_named(
    base: Base, stubbed: tuple[LocalCodeBuild, Path], events: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Given trivy installed and a VEX document for the base
    builds, log = stubbed
    env = {**rebuild_env(base, "acme/scanned:1"), "PATCHPROP_BASE_VEX": "/vex/base.openvex.json"}
    # When it is rebuilt (no REPORTS_URI: reports stay with the build)
    build_id = builds.start_build(
        PROJECT, env, "t-scan", source_location=str(context(tmp_path, "app", dependent()))
    )
    assert builds.wait(120)
    # Then the pushed digest and the base were scanned (with the VEX), and an SBOM made
    assert_statuses(events, build_id, ["IN_PROGRESS", "SUCCEEDED"])
    result = builds.build_result(build_id)
    assert result is not None and result.scanned is True
    pushed = f"{env['TARGET_IMAGE'].rsplit(':', 1)[0]}@{result.digest}"
    trivy = calls(log, "trivy")
    assert len(trivy) == 3
    report = Path(urlparse(result.report).path)
    assert trivy[0].endswith(f"--vex /vex/base.openvex.json --format json --output {report} {pushed}")
    assert "--format cyclonedx" in trivy[1] and trivy[1].endswith(pushed)
    assert "--vex /vex/base.openvex.json" in trivy[2] and trivy[2].endswith(base.pinned)
    assert all("--insecure" in call for call in trivy)  # the local registry is plain HTTP
    # And the result names readable reports by file:// URIs, which the gate's reader reads
    from patchprop.adapters.s3 import Reports
    from patchprop.domain.scan import parse_report

    for key in ("report", "base_report"):
        assert getattr(result, key).startswith("file://")
        assert parse_report(Reports(allow_files=True).read_report(getattr(result, key))).total == 0
    assert result.sbom.startswith("file://") and result.sbom.endswith("sbom.cdx.json")


def test_reports_go_to_s3_the_base_is_verified_and_the_image_signed_with_kms(
    base: Base, stubbed: tuple[LocalCodeBuild, Path], events: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Given a verification key, a reports bucket and a KMS signing key
    builds, log = stubbed
    key = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"
    env = {
        **rebuild_env(base, "acme/signed:1"),
        "COSIGN_VERIFY_KEY": "cosign.pub",
        "REPORTS_URI": "s3://reports-bucket/reports/",
        "COSIGN_KMS_KEY": key,
    }
    # When it is rebuilt
    build_id = builds.start_build(
        PROJECT, env, "t-sign", source_location=str(context(tmp_path, "app", dependent()))
    )
    assert builds.wait(120)
    # Then the base was verified before anything else, the reports uploaded, the digest signed
    assert_statuses(events, build_id, ["IN_PROGRESS", "SUCCEEDED"])
    result = builds.build_result(build_id)
    assert result is not None
    prefix = f"s3://reports-bucket/reports/{env['PATCHPROP_REBUILD_ID']}"
    assert (result.report, result.base_report, result.sbom) == (
        f"{prefix}/report.json",
        f"{prefix}/base-report.json",
        f"{prefix}/sbom.cdx.json",
    )
    assert sorted(c.split()[-1] for c in calls(log, "aws")) == sorted(
        [result.report, result.base_report, result.sbom]
    )
    pushed = f"{env['TARGET_IMAGE'].rsplit(':', 1)[0]}@{result.digest}"
    verify, sign = calls(log, "cosign")
    assert verify == f"cosign verify --key cosign.pub --allow-insecure-registry {base.pinned}"
    assert sign == (
        f"cosign sign --yes --key awskms:///{key} --tlog-upload=false --allow-insecure-registry {pushed}"
    )


def test_a_base_that_does_not_verify_is_not_built_on(
    base: Base, stubbed: tuple[LocalCodeBuild, Path], events: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Given a verification key the base's signature does not match
    builds, log = stubbed
    env = {
        **rebuild_env(base, "acme/unverified:1"),
        "COSIGN_VERIFY_KEY": "cosign.pub",
        "COSIGN_STUB_REFUSE": "1",
    }
    # When it is rebuilt
    build_id = builds.start_build(
        PROJECT, env, "t-refuse", source_location=str(context(tmp_path, "app", dependent()))
    )
    assert builds.wait(60)
    # Then the build FAILED saying why, and nothing was built, pushed or scanned
    assert statuses(events, build_id) == ["IN_PROGRESS", "FAILED"]
    text = log_text(final_event(events, build_id))
    assert f"the signature of {base.pinned} does not verify with cosign.pub: not building on it" in text
    assert "building" not in text.replace("not building", "") and calls(log, "trivy") == []


def test_a_required_scan_without_trivy_fails_before_building(
    base: Base, events: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Given SCAN=required on a machine with buildah but no trivy
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "buildah").symlink_to(shutil.which("buildah") or "/usr/bin/buildah")
    local = LocalCodeBuild([PROJECT], tmp_path / "work", emit=events.append, extra_env={"PATH": str(bin_dir)})
    env = {**rebuild_env(base, "acme/unscannable:1"), "SCAN": "required"}
    try:
        # When it is rebuilt
        build_id = start_build_in(local, env, tmp_path)
        assert local.wait(60)
    finally:
        local.shutdown()
    # Then it FAILED before building, saying what is missing
    assert statuses(events, build_id) == ["IN_PROGRESS", "FAILED"]
    text = log_text(final_event(events, build_id))
    assert "SCAN=required but trivy is not installed in the build image" in text


def start_build_in(builds: LocalCodeBuild, env: dict[str, str], tmp_path: Path) -> str:
    source = context(tmp_path, "app", dependent())
    return builds.start_build(PROJECT, env, env["PATCHPROP_REBUILD_ID"], source_location=str(source))


def test_a_rebased_candidate_is_verified_without_a_build_and_a_bad_digest_is_refused(
    base: Base, builds: LocalCodeBuild, events: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Given a candidate already in the registry (as a rebase pushes it) and its verify-only build
    source = context(tmp_path, "ctx", "FROM scratch\nRUN exit 9\n")  # never built
    env = {
        **rebuild_env(base, "acme/golden-busybox:1"),
        "PATCHPROP_CANDIDATE_DIGEST": base.digest,
        "PATCHPROP_TEST_COMMAND": "test -x /bin/busybox && echo smoke-ok",
    }
    good = builds.start_build(PROJECT, env, "verify", source_location=str(source))
    bad = builds.start_build(
        PROJECT,
        {**env, "PATCHPROP_CANDIDATE_DIGEST": "sha256:nope"},
        "verify-bad",
        source_location=str(source),
    )
    assert builds.wait(120)
    # Then the candidate was smoke-tested by digest, nothing built, and the result names it
    assert_statuses(events, good, ["IN_PROGRESS", "SUCCEEDED"])
    log = log_text(final_event(events, good))
    assert "verifying the rebased candidate" in log and "exit 9" not in log and "smoke-ok" in log
    result = builds.build_result(good)
    assert result is not None and result.smoke is not None
    assert (result.digest, result.candidate, result.smoke.passed) == (base.digest, True, True)
    # And a malformed candidate digest fails before anything runs
    assert statuses(events, bad) == ["IN_PROGRESS", "FAILED"]
    assert "PATCHPROP_CANDIDATE_DIGEST must be sha256:<64 hex digits>" in log_text(final_event(events, bad))
