"""What the base check reads: cosign signatures verified in Python, syft and CycloneDX SBOMs,
reports and VEX from the base-reports folder, and the diff of two digests."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from patchprop.adapters.base_sources import SIGNATURE_ANNOTATION, BaseRegistry, BaseSourcesAdapter
from patchprop.adapters.s3 import Reports
from patchprop.domain.base_check import BaseContents, SignatureError, diff_base, facts_of_config, read_sbom
from patchprop.domain.errors import RegistryUnavailable
from patchprop.domain.refs import ImageRef, parse_ref

DATA = Path(__file__).parents[1] / "data" / "scan"
DIGEST = "sha256:" + "d" * 64
IMAGE = parse_ref("registry.example.com/acme/base:1").with_digest(DIGEST)


def keypair() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public


def payload(digest: str) -> bytes:
    """cosign's simple-signing payload for `digest`."""
    critical = {
        "identity": {"docker-reference": "registry.example.com/acme/base"},
        "image": {"docker-manifest-digest": digest},
        "type": "cosign container image signature",
    }
    return json.dumps({"critical": critical, "optional": None}).encode()


class SignedRegistry(BaseRegistry):
    """A registry holding one `sha256-<hex>.sig` manifest whose layer is a signed payload."""

    def __init__(self, body: bytes, signature: bytes, down: bool = False) -> None:
        super().__init__()
        self.body, self.signature, self.down = body, signature, down

    def manifest(self, ref: ImageRef) -> dict[str, Any]:
        if self.down:
            raise RegistryUnavailable("registry.example.com answered 503")
        assert ref.tag == DIGEST.replace(":", "-") + ".sig"
        annotations = {SIGNATURE_ANNOTATION: base64.b64encode(self.signature).decode()}
        return {"layers": [{"digest": "sha256:" + "e" * 64, "annotations": annotations}]}

    def blob(self, ref: ImageRef, digest: str) -> bytes:
        return self.body


def sources(registry: BaseRegistry, root: str | None = None) -> BaseSourcesAdapter:
    return BaseSourcesAdapter(registry, Reports(allow_files=True), root)


def test_a_base_signed_with_its_key_verifies(tmp_path: Path) -> None:
    key, public = keypair()
    body = payload(DIGEST)
    signed = SignedRegistry(body, key.sign(body, ec.ECDSA(hashes.SHA256())))
    (tmp_path / "base.pub").write_bytes(public)
    sources(signed).verify(IMAGE, str(tmp_path / "base.pub"))  # no error: verified


def test_a_signature_by_another_key_or_of_another_digest_fails_closed(tmp_path: Path) -> None:
    key, _ = keypair()
    _, other_public = keypair()
    body = payload(DIGEST)
    signed = SignedRegistry(body, key.sign(body, ec.ECDSA(hashes.SHA256())))
    with pytest.raises(SignatureError, match=r"no signature .* verifies"):
        sources(signed).verify(IMAGE, other_public.decode())
    elsewhere = payload("sha256:" + "f" * 64)  # a valid signature, of another image
    moved = SignedRegistry(elsewhere, key.sign(elsewhere, ec.ECDSA(hashes.SHA256())))
    with pytest.raises(SignatureError):
        sources(moved).verify(
            IMAGE,
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode(),
        )


def test_an_unreadable_key_or_an_unreachable_registry_fails_closed(tmp_path: Path) -> None:
    _, public = keypair()
    with pytest.raises(SignatureError, match="cannot be read"):
        sources(SignedRegistry(b"", b"")).verify(IMAGE, str(tmp_path / "missing.pub"))
    with pytest.raises(SignatureError, match=r"could be read: .*503"):
        sources(SignedRegistry(b"", b"", down=True)).verify(IMAGE, public.decode())


def test_the_base_reports_folder_gives_the_report_after_vex_and_the_sbom(tmp_path: Path) -> None:
    # Given the publisher's report, VEX and SBOM of a digest under the base-reports folder
    folder = tmp_path / IMAGE.registry / IMAGE.repository / ("d" * 64)
    folder.mkdir(parents=True)
    shutil.copy(DATA / "gate" / "previous.trivy.json", folder / "report.json")
    statement = {"vulnerability": {"name": "CVE-2024-37371"}, "status": "not_affected"}
    (folder / "vex.json").write_text(json.dumps({"statements": [statement]}))
    shutil.copy(DATA / "sbom" / "old.syft.json", folder / "sbom.json")
    registry = SignedRegistry(b"", b"", down=True)  # the config cannot be read: said, not raised
    # When its contents are read
    found = sources(registry, f"file://{tmp_path}").contents(IMAGE)
    # Then the VEX'd finding is gone, the packages are syft's, and the missing config is a note
    assert found.report is not None
    assert {f.id for f in found.report.findings} == {"CVE-2024-45490", "CVE-2024-45491"}
    assert found.report_uri == f"file://{folder}/report.json"
    assert found.packages == {"openssl (deb)": "3.0.14-1~deb12u1", "libexpat1 (deb)": "2.5.0-1"}
    assert any("config" in note for note in found.notes)
    # and a digest with nothing attached is read as not scanned, with a note
    bare = sources(registry, f"file://{tmp_path}").contents(IMAGE.with_digest("sha256:" + "0" * 64))
    assert bare.report is None and any("No scan report" in note for note in bare.notes)


def test_two_syft_sboms_diff_into_packages_added_and_changed() -> None:
    old, _ = read_sbom((DATA / "sbom" / "old.syft.json").read_bytes())
    new, _ = read_sbom((DATA / "sbom" / "new.syft.json").read_bytes())
    cyclonedx, _ = read_sbom((DATA / "sbom" / "new.cdx.json").read_bytes())
    diff = diff_base(BaseContents(packages=new), BaseContents(packages=old))
    assert diff.added == ["zlib1g (deb) 1:1.2.13.dfsg-1"] and diff.removed == []
    assert [(c.name, c.old, c.new) for c in diff.changed] == [
        ("openssl (deb)", "3.0.14-1~deb12u1", "3.0.15-1~deb12u1")
    ]
    assert not diff.metadata_only
    assert {n.split(" (")[0] for n in cyclonedx} >= {"openssl", "zlib1g", "libexpat1"}
    same = diff_base(BaseContents(packages=old), BaseContents(packages=old))
    assert same.metadata_only and "only metadata" in same.said()[-1]


def test_config_changes_of_user_entrypoint_env_and_architectures_are_told() -> None:
    before = facts_of_config(
        {"architecture": "amd64", "config": {"User": "root", "Entrypoint": ["python3"], "Env": ["A=1"]}}
    )
    after = facts_of_config(
        {"config": {"User": "app", "Entrypoint": ["python3"], "Env": ["A=2"]}}, ["amd64", "arm64"]
    )
    diff = diff_base(BaseContents(packages={}, facts=after), BaseContents(packages={}, facts=before))
    assert diff.config == [
        "user: root -> app",
        "architectures: amd64 -> amd64 arm64",
        "env: +['A=2'] -['A=1']",
    ]
    assert not diff.metadata_only


def test_a_huge_diff_is_cut_to_fit_one_item_and_says_so() -> None:
    old = {f"pkg{i}": "1" for i in range(1000)}
    new = {f"pkg{i}": "2" for i in range(1000)}
    diff = diff_base(BaseContents(packages=new), BaseContents(packages=old)).capped(200)
    assert len(diff.changed) == 200
    assert diff.cut == "lists cut to 200 (changed: 1000)"
    assert "Shown in part: lists cut to 200 (changed: 1000)." in diff.said()
    assert not diff.metadata_only
