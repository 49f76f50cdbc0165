"""The base's SLSA provenance against a real registry: an index pushed the way buildx pushes one
(a platform manifest and its attestation manifest) is read by the base check and told."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from patchprop.adapters.base_sources import BaseRegistry, BaseSourcesAdapter
from patchprop.adapters.s3 import Reports
from patchprop.domain.alerts.base_moved import base_moved_message
from patchprop.domain.models import PatchRequest
from patchprop.domain.urgency import BaseSettings
from patchprop.logic.base_check import check_digest
from patchprop_local import oci
from patchprop_local.oci import OCI_INDEX, OCI_MANIFEST, _Registry, canonical_json
from patchprop_local.registry_server import LocalRegistry

pytestmark = pytest.mark.integration
DATA = Path(__file__).parents[1] / "data" / "provenance"
IN_TOTO = "application/vnd.in-toto+json"


def push_with_attestation(address: str, repository: str, tag: str, statement: str) -> str:
    """What `docker buildx build --provenance=mode=min --push` pushes: an index of the image and
    an attestation manifest whose layer is the SLSA statement about it; returns the index digest."""
    platform = oci.push_image(address, repository, f"{tag}-image", {"etc/motd": tag.encode()})
    document = json.loads((DATA / statement).read_text())
    document["subject"][0]["digest"] = {"sha256": platform.removeprefix("sha256:")}
    body = json.dumps(document, indent=2).encode()
    registry = _Registry(address, repository, 10.0)
    config = canonical_json({"architecture": "unknown", "os": "unknown", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": []}})  # fmt: skip
    attestation = canonical_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": registry.push_blob(config), "size": len(config)},
        "layers": [{"mediaType": IN_TOTO, "digest": registry.push_blob(body), "size": len(body),
                    "annotations": {"in-toto.io/predicate-type": document["predicateType"]}}],
    })  # fmt: skip
    attestation_digest = registry.put_manifest(f"{tag}-att", OCI_MANIFEST, attestation)
    index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": platform, "size": 0,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": attestation_digest, "size": len(attestation),
         "platform": {"architecture": "unknown", "os": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                         "vnd.docker.reference.digest": platform}},
    ]})  # fmt: skip
    return registry.put_manifest(tag, OCI_INDEX, index)


def test_the_base_check_reads_and_tells_the_provenance_buildx_pushed(local_registry: LocalRegistry) -> None:
    # Given two digests of a base, built by another builder from another repository
    address = local_registry.address
    old = push_with_attestation(address, "bases/attested", "1", "buildkit-slsa-v0.2.json")
    new = push_with_attestation(address, "bases/attested", "2", "buildkit-slsa-v1.json")
    sources = BaseSourcesAdapter(BaseRegistry(), Reports(allow_files=True), None)
    patch = PatchRequest(base=f"{address}/bases/attested:1", digest=new, previous_digest=old,
                         detected_by="poller")  # fmt: skip
    # When the base check judges the new digest
    check = check_digest(patch, BaseSettings(), sources=sources)
    # Then both digests' provenance is recorded, and the message says who built it from what
    assert check.provenance is not None and check.provenance.state == "published"
    assert check.provenance.builder_id == "https://ci.acme-mirror.example/builders/buildkit-7"
    assert check.provenance.where.endswith("(linux/amd64)")
    assert check.previous_provenance is not None
    assert check.previous_provenance.source_revision == "9f2c4e1a7b3d5f6081c2e4a6b8d0f1e3c5a7b9d1"
    body = base_moved_message(check, 1).body
    assert (
        "Provenance: built by https://ci.acme-mirror.example/builders/buildkit-7 from "
        "https://github.com/acme-mirror/base.git#refs/tags/v1.4.2@0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d"
    ) in body
    assert (
        "Provenance changed: source repository https://github.com/acme/base -> https://github.com/acme-mirror/base."
    ) in body


def test_a_base_without_attestations_is_told_it_publishes_none(local_registry: LocalRegistry) -> None:
    address = local_registry.address
    plain = oci.push_image(address, "bases/plain", "1", {"etc/motd": b"plain"})
    index = oci.push_index(address, "bases/plain", "1", [plain])
    sources = BaseSourcesAdapter(BaseRegistry(), Reports(allow_files=True), None)
    for digest in (plain, index):  # a single manifest (referrers looked for) and an index
        patch = PatchRequest(base=f"{address}/bases/plain:1", digest=digest, detected_by="poller")
        check = check_digest(patch, BaseSettings(), sources=sources)
        assert check.provenance is not None and check.provenance.state == "none", check.provenance
        assert "Provenance: no provenance published" in base_moved_message(check, 1).body
