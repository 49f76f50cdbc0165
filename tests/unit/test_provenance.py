"""A base's SLSA provenance: BuildKit's v0.2 and v1 statements read into a summary, found in an
attestation manifest of the index or a referrer, recorded by the base check and told."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from patchprop.adapters.base_provenance import read_provenance
from patchprop.adapters.base_sources import BaseRegistry
from patchprop.domain.alerts.base_moved import base_moved_message
from patchprop.domain.base_check import BaseContents
from patchprop.domain.errors import ManifestNotFound
from patchprop.domain.models import PatchRequest
from patchprop.domain.oci import OCI_INDEX, OCI_MANIFEST, sha256_digest
from patchprop.domain.provenance import Provenance, ProvenanceError, provenance_changes, read_statement
from patchprop.domain.refs import ImageRef, parse_ref
from patchprop.domain.urgency import BaseSettings
from patchprop.logic.base_check import check_digest

DATA = Path(__file__).parents[1] / "data" / "provenance"
V02 = (DATA / "buildkit-slsa-v0.2.json").read_bytes()
V1 = (DATA / "buildkit-slsa-v1.json").read_bytes()
OLD, NEW, PLATFORM, ARM = ("sha256:" + c * 64 for c in "abcd")
IMAGE = parse_ref("registry.example.com/acme/base:1").with_digest(NEW)


def test_a_buildkit_v02_statement_says_its_builder_source_and_times() -> None:
    summary = read_statement(V02)
    assert summary.state == "published" and summary.predicate_type == "https://slsa.dev/provenance/v0.2"
    assert summary.builder_id == "https://github.com/acme/base/actions/runs/9876543210/attempts/1"
    # a local-context build: the source is the git info BuildKit keeps in its metadata
    assert summary.source_uri == "https://github.com/acme/base"
    assert summary.source_revision == "9f2c4e1a7b3d5f6081c2e4a6b8d0f1e3c5a7b9d1"
    assert summary.started_on == "2026-11-30T04:12:01.482917362Z"
    assert summary.finished_on == "2026-11-30T04:14:33.905518271Z"
    assert summary.materials[1] == (
        "pkg:docker/debian@bookworm-slim?platform=linux%2Famd64@"
        "2424c1850714a4d94666ec928e24d86de958646737b1d113f5b2207be44d37d8"
    )
    assert summary.said() == (
        "built by https://github.com/acme/base/actions/runs/9876543210/attempts/1 from "
        "https://github.com/acme/base@9f2c4e1a7b3d5f6081c2e4a6b8d0f1e3c5a7b9d1, finished "
        "2026-11-30T04:14:33.905518271Z"
    )


def test_a_buildkit_v1_statement_and_its_dsse_envelope_read_the_same() -> None:
    summary = read_statement(V1)
    assert summary.predicate_type == "https://slsa.dev/provenance/v1"
    assert summary.builder_id == "https://ci.acme-mirror.example/builders/buildkit-7"
    assert summary.source_uri == "https://github.com/acme-mirror/base.git#refs/tags/v1.4.2"
    assert summary.source_revision == "0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d"
    assert summary.source_repository == "https://github.com/acme-mirror/base"
    assert summary.finished_on == "2026-12-01T02:43:57.772901834Z"
    assert len(summary.materials) == 2
    envelope = {"payloadType": "application/vnd.in-toto+json", "payload": base64.b64encode(V1).decode(),
                "signatures": []}  # fmt: skip
    assert read_statement(json.dumps(envelope).encode()) == summary


def test_what_is_not_slsa_provenance_is_refused_naming_why() -> None:
    sbom = json.dumps({"_type": "https://in-toto.io/Statement/v0.1",
                       "predicateType": "https://spdx.dev/Document", "predicate": {}}).encode()  # fmt: skip
    with pytest.raises(ProvenanceError, match=r"spdx\.dev/Document.*not SLSA provenance"):
        read_statement(sbom)
    with pytest.raises(ProvenanceError, match="not valid JSON"):
        read_statement(b"{")
    with pytest.raises(ProvenanceError, match="more than 100"):
        read_statement(V02, max_bytes=100)


def test_a_change_of_builder_or_source_repository_is_said() -> None:
    old, new = read_statement(V02), read_statement(V1)
    assert provenance_changes(new, old) == [
        "Provenance changed: builder https://github.com/acme/base/actions/runs/9876543210/attempts/1 -> "
        "https://ci.acme-mirror.example/builders/buildkit-7.",
        "Provenance changed: source repository https://github.com/acme/base -> https://github.com/acme-mirror/base.",
    ]
    moved_ref = new.model_copy(update={"source_uri": "https://github.com/acme-mirror/base#main"})
    assert provenance_changes(moved_ref, new) == []  # another ref of the same repository
    assert provenance_changes(Provenance(), new) == [
        "Provenance changed: the previous digest published provenance, this one does not."
    ]
    assert provenance_changes(new, Provenance()) == []


class Response:
    def __init__(self, status: int, body: dict[str, Any] | None = None, content_type: str = "") -> None:
        self.status_code, self.body, self.headers = status, body or {}, {"Content-Type": content_type}

    def json(self) -> dict[str, Any]:
        return self.body


class IndexRegistry(BaseRegistry):
    """A registry holding manifests and blobs by digest (or tag); no referrers API."""

    def __init__(self, manifests: dict[str, dict[str, Any]], blobs: dict[str, bytes]) -> None:
        super().__init__()
        self.manifests, self.blobs = manifests, blobs
        self.referrers = Response(404)

    def manifest(self, ref: ImageRef) -> dict[str, Any]:
        key = ref.tag or ref.digest or ""
        if key not in self.manifests:
            raise ManifestNotFound(f"no manifest for {ref}")
        return self.manifests[key]

    def blob(self, ref: ImageRef, digest: str) -> bytes:
        return self.blobs[digest]

    def _authorized(self, method: str, url: str, ref: ImageRef) -> requests.Response:
        assert url.endswith(f"/v2/acme/base/referrers/{ref.digest}")
        return self.referrers  # type: ignore[return-value]


def buildkit_index(statement: bytes, size: int | None = None) -> IndexRegistry:
    """An index as buildx pushes it: a platform manifest and its attestation manifest."""
    layer = {"mediaType": "application/vnd.in-toto+json", "digest": sha256_digest(statement),
             "size": len(statement) if size is None else size,
             "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}  # fmt: skip
    spdx = {"mediaType": "application/vnd.in-toto+json", "digest": "sha256:" + "5" * 64, "size": 10,
            "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}}  # fmt: skip
    attestation = "sha256:" + "9" * 64
    index = {"mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": PLATFORM, "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": attestation,
         "platform": {"os": "unknown", "architecture": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                         "vnd.docker.reference.digest": PLATFORM}},
    ]}  # fmt: skip
    return IndexRegistry(
        {NEW: index, attestation: {"mediaType": OCI_MANIFEST, "layers": [spdx, layer]}},
        {sha256_digest(statement): statement},
    )


def test_the_provenance_in_a_buildkit_attestation_manifest_is_read() -> None:
    found = read_provenance(buildkit_index(V02), IMAGE)
    assert found.state == "published" and found.source_revision == "9f2c4e1a7b3d5f6081c2e4a6b8d0f1e3c5a7b9d1"
    assert found.where == f"attestation manifest sha256:{'9' * 64} (linux/amd64)"


def test_an_oversized_or_altered_statement_is_unreadable_naming_why() -> None:
    big = read_provenance(buildkit_index(V02, size=9 * 2**20), IMAGE)
    assert big.state == "unreadable" and "9,437,184 bytes, more than the 8,388,608 read" in big.reason
    altered = buildkit_index(V02)
    altered.blobs[sha256_digest(V02)] = V1
    assert "served other bytes" in read_provenance(altered, IMAGE).reason


def test_a_referrer_in_the_tag_schema_is_read_and_none_is_none() -> None:
    # Given a single-platform base with an in-toto referrer listed under its sha256-<hex> tag
    referrer = "sha256:" + "7" * 64
    dsse = "application/vnd.dsse.envelope.v1+json"
    layer = {"mediaType": dsse, "digest": sha256_digest(V1), "size": len(V1)}
    tag = NEW.replace(":", "-")
    registry = IndexRegistry(
        {NEW: {"mediaType": OCI_MANIFEST, "layers": []},
         tag: {"manifests": [{"digest": referrer, "artifactType": "application/vnd.in-toto+json",
                              "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v1"}}]},
         referrer: {"mediaType": OCI_MANIFEST, "layers": [layer]}},
        {sha256_digest(V1): V1},
    )  # fmt: skip
    found = read_provenance(registry, IMAGE)
    assert found.state == "published" and found.where == f"referrer {referrer}"
    assert found.builder_id == "https://ci.acme-mirror.example/builders/buildkit-7"
    # and without the tag, nothing is published: no error
    del registry.manifests[tag]
    assert read_provenance(registry, IMAGE) == Provenance(state="none")


class Sources:
    """The BaseSources port over provenance by digest (contents empty)."""

    def __init__(self, provenances: dict[str, Provenance]) -> None:
        self.provenances = provenances

    def verify(self, image: ImageRef, key: str) -> None: ...

    def contents(self, image: ImageRef) -> BaseContents:
        return BaseContents()

    def kev(self) -> frozenset[str]:
        return frozenset()

    def provenance(self, image: ImageRef) -> Provenance:
        return self.provenances.get(image.digest or "", Provenance(state="none"))


def test_the_base_check_records_both_digests_provenance_and_the_message_tells_it() -> None:
    base = "registry.example.com/acme/base:1"
    patch = PatchRequest(base=base, digest=NEW, previous_digest=OLD, detected_by="poller")
    sources = Sources({NEW: read_statement(V1), OLD: read_statement(V02)})
    check = check_digest(patch, BaseSettings(), sources=sources)
    assert check.provenance == read_statement(V1) and check.previous_provenance == read_statement(V02)
    body = base_moved_message(check, 3).body
    assert (
        "Provenance: built by https://ci.acme-mirror.example/builders/buildkit-7 from "
        "https://github.com/acme-mirror/base.git#refs/tags/v1.4.2@0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d"
    ) in body
    assert "Provenance changed: source repository https://github.com/acme/base -> " in body
    # a base that publishes none: a note, not a failure
    bare = check_digest(patch, BaseSettings(), sources=Sources({}))
    assert bare.verified and "Provenance: no provenance published" in base_moved_message(bare, 3).body
    assert "Provenance changed" not in base_moved_message(bare, 3).body
