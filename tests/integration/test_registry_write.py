"""RegistryWriter against a real docker-registry: tag moves without layer copies, the race rule,
referrers through the referrers tag schema, read back with skopeo."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from patchprop.adapters.registry_write import RegistryWriter
from patchprop.domain.errors import RegistryUnavailable, TagMoved, TagMoveRefused
from patchprop.domain.oci import EMPTY_DIGEST, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, referrers_tag
from patchprop.domain.refs import ImageRef, parse_ref
from patchprop_local import oci
from patchprop_local.registry_server import LocalRegistry, free_port

pytestmark = pytest.mark.integration

CYCLONEDX = "application/vnd.cyclonedx+json"
RECEIPT = "application/vnd.patchprop.receipt.v1+json"


class RecordingSession(requests.Session):
    """A real session that remembers every request it sent (method and path)."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self.sent: list[tuple[str, str]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent.append((str(method), urlsplit(str(url)).path))
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def session() -> RecordingSession:
    return RecordingSession()


@pytest.fixture
def writer(session: RecordingSession) -> RegistryWriter:
    return RegistryWriter(session=session, timeout=5.0, sleep=lambda _: None)


def skopeo_raw(image: str) -> tuple[bytes, dict[str, Any]]:
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{image}"],
        check=True,
        capture_output=True,
    ).stdout
    return raw, json.loads(raw)


def repo(registry: LocalRegistry, name: str) -> ImageRef:
    return parse_ref(f"{registry.address}/{name}")


def test_moving_a_tag_points_it_at_the_candidate_and_uploads_no_blob(
    local_registry: LocalRegistry, writer: RegistryWriter, session: RecordingSession
) -> None:
    # Given a promoted image under a tag and a candidate pushed by digest only
    address = local_registry.address
    old = oci.push_image(address, "promote/app", "1.0", {"etc/app": b"old"})
    new = oci.push_image(address, "promote/app", "patchprop-scratch", {"etc/app": b"new"})
    # When the tag is moved to the candidate, conditional on the old digest
    moved = writer.move_tag(repo(local_registry, "promote/app"), "1.0", new, expect_current=old)
    # Then a standard client reads the candidate's exact manifest under the tag
    assert moved is True
    raw, manifest = skopeo_raw(f"{address}/promote/app:1.0")
    assert oci.sha256_digest(raw) == new and manifest["mediaType"] == OCI_MANIFEST
    # And the move sent no blob: one manifest PUT, by tag, and reads
    writes = [(m, p) for m, p in session.sent if m not in ("GET", "HEAD")]
    assert writes == [("PUT", "/v2/promote/app/manifests/1.0")]
    assert not any("/blobs/" in path for _, path in session.sent)


def test_a_multi_arch_index_moves_whole_in_one_put(
    local_registry: LocalRegistry, writer: RegistryWriter, session: RecordingSession
) -> None:
    # Given a two-platform index promoted and a rebuilt two-platform index as candidate
    address = local_registry.address
    old_images = [
        oci.push_image(
            address, "promote/multi", f"o-{arch}", {"etc/a": b"1" + arch.encode()}, architecture=arch
        )
        for arch in ("amd64", "arm64")
    ]
    old = oci.push_index(address, "promote/multi", "2", old_images)
    new_images = [
        oci.push_image(
            address, "promote/multi", f"n-{arch}", {"etc/a": b"2" + arch.encode()}, architecture=arch
        )
        for arch in ("amd64", "arm64")
    ]
    new = oci.push_index(address, "promote/multi", "candidate-index", new_images)
    # When the tag is moved to the new index
    writer.move_tag(repo(local_registry, "promote/multi"), "2", new, expect_current=old)
    # Then the tag serves the new index, listing both new platform manifests
    raw, index = skopeo_raw(f"{address}/promote/multi:2")
    assert oci.sha256_digest(raw) == new and index["mediaType"] == OCI_INDEX
    assert [m["digest"] for m in index["manifests"]] == new_images
    # And it took one PUT of the index, nothing per platform
    assert [(m, p) for m, p in session.sent if m == "PUT"] == [("PUT", "/v2/promote/multi/manifests/2")]


def test_an_older_candidate_never_overwrites_a_newer_promotion(
    local_registry: LocalRegistry, writer: RegistryWriter
) -> None:
    # Given a tag at v1 when two rebuilds started, and the newer one already promoted (v3)
    address = local_registry.address
    v1 = oci.push_image(address, "promote/race", "1", {"etc/v": b"1"})
    v2 = oci.push_image(address, "promote/race", "older-candidate", {"etc/v": b"2"})
    v3 = oci.push_image(address, "promote/race", "newer-candidate", {"etc/v": b"3"})
    image = repo(local_registry, "promote/race")
    writer.move_tag(image, "1", v3, expect_current=v1)
    # When the older candidate tries to promote, expecting v1
    with pytest.raises(TagMoved) as refused:
        writer.move_tag(image, "1", v2, expect_current=v1)
    # Then it is refused, naming what the tag holds, and the tag keeps the newer digest
    assert refused.value.current == v3
    assert writer.tag_digest(image, "1") == v3


def test_a_first_promotion_expects_no_tag_and_a_redelivery_writes_nothing(
    local_registry: LocalRegistry, writer: RegistryWriter, session: RecordingSession
) -> None:
    # Given a candidate of an image that has no promoted tag yet
    address = local_registry.address
    candidate = oci.push_image(address, "promote/first", "scratch", {"etc/v": b"1"})
    other = oci.push_image(address, "promote/first", "scratch2", {"etc/v": b"2"})
    image = repo(local_registry, "promote/first")
    # When it is promoted expecting no tag, then the same promotion is delivered again
    assert writer.move_tag(image, "stable", candidate, expect_current=None) is True
    session.sent.clear()
    assert writer.move_tag(image, "stable", candidate, expect_current=None) is False
    # Then the redelivery wrote nothing, and a different candidate expecting no tag is refused
    assert [m for m, _ in session.sent if m == "PUT"] == []
    with pytest.raises(TagMoved):
        writer.move_tag(image, "stable", other, expect_current=None)
    assert writer.tag_digest(image, "stable") == candidate


@pytest.fixture
def flaky_proxy(local_registry: LocalRegistry) -> Iterator[tuple[str, dict[str, int]]]:
    """A proxy in front of the registry that fails the first manifest PUT(s) with 503 or 400."""
    state = {"fail_puts": 0, "status": 503, "puts": 0}
    upstream = f"http://{local_registry.address}"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if self.command == "PUT" and "/manifests/" in self.path:
                state["puts"] += 1
                if state["fail_puts"] > 0:
                    state["fail_puts"] -= 1
                    self.send_response(state["status"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = requests.request(
                self.command,
                upstream + self.path,
                data=body,
                headers=headers,
                timeout=5,
                allow_redirects=False,
            )
            self.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "date"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.content)

        do_GET = do_HEAD = do_PUT = do_POST = _relay

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def test_a_failing_tag_move_is_retried_and_a_refused_one_is_an_error(
    local_registry: LocalRegistry, flaky_proxy: tuple[str, dict[str, int]]
) -> None:
    # Given a registry (behind a proxy) that fails the next two manifest PUTs with 503
    address, state = flaky_proxy
    old = oci.push_image(local_registry.address, "promote/flaky", "1", {"etc/v": b"1"})
    new = oci.push_image(local_registry.address, "promote/flaky", "c", {"etc/v": b"2"})
    writer = RegistryWriter(timeout=5.0, sleep=lambda _: None)
    image = parse_ref(f"{address}/promote/flaky")
    state["fail_puts"] = 2
    # When the tag is moved
    writer.move_tag(image, "1", new, expect_current=old)
    # Then it was retried until it landed
    assert state["puts"] == 3 and writer.tag_digest(image, "1") == new
    # And a registry that keeps failing gives RegistryUnavailable, one that refuses TagMoveRefused
    state.update(fail_puts=100, puts=0)
    with pytest.raises(RegistryUnavailable):
        writer.move_tag(image, "1", old, expect_current=new)
    state.update(fail_puts=1, status=400, puts=0)
    with pytest.raises(TagMoveRefused):
        writer.move_tag(image, "1", old, expect_current=new)
    assert state["puts"] == 1 and writer.tag_digest(image, "1") == new


def test_referrers_are_listed_through_the_referrers_tag_schema(
    local_registry: LocalRegistry, writer: RegistryWriter
) -> None:
    # Given a promoted image in a registry without the referrers API (docker-registry 2.8)
    address = local_registry.address
    digest = oci.push_image(address, "promote/evidence", "1", {"etc/v": b"1"})
    subject = parse_ref(f"{address}/promote/evidence@{digest}")
    gone = requests.get(f"http://{address}/v2/promote/evidence/referrers/{digest}", timeout=5)
    assert gone.status_code == 404
    sbom = json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}).encode()
    receipt = b'{"kind": "rebuild receipt"}'
    # When an SBOM and a receipt are attached
    first = writer.attach_referrer(
        subject, CYCLONEDX, sbom, CYCLONEDX, {"org.opencontainers.image.title": "sbom"}
    )
    second = writer.attach_referrer(subject, RECEIPT, receipt, "application/json", {"rebuild": "rb-1"})
    # Then both are listed, in order, with their artifact types and annotations, and filterable
    listed = writer.list_referrers(subject)
    assert [d["digest"] for d in listed] == [first["digest"], second["digest"]]
    assert [d["artifactType"] for d in listed] == [CYCLONEDX, RECEIPT]
    assert listed[1]["annotations"] == {"rebuild": "rb-1"}
    assert writer.list_referrers(subject, RECEIPT) == [second]
    # And attaching the same again does not list it twice
    writer.attach_referrer(subject, RECEIPT, receipt, "application/json", {"rebuild": "rb-1"})
    assert len(writer.list_referrers(subject)) == 2
    # And a standard client reads the fallback tag as the distribution spec says: an OCI index
    # of image manifests, each with its artifactType
    _, index = skopeo_raw(f"{address}/promote/evidence:{referrers_tag(digest)}")
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    assert {m["mediaType"] for m in index["manifests"]} == {OCI_MANIFEST}
    assert [m["artifactType"] for m in index["manifests"]] == [CYCLONEDX, RECEIPT]
    # And each referrer is an image manifest with the subject, the artifact type, an empty config
    _, referrer = skopeo_raw(f"{address}/promote/evidence@{first['digest']}")
    assert referrer["subject"]["digest"] == digest and referrer["artifactType"] == CYCLONEDX
    assert referrer["config"] == {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2}
    (layer,) = referrer["layers"]
    assert writer.get_blob(subject, layer["digest"]) == sbom
    # And the image itself is unchanged
    assert writer.tag_digest(subject, "1") == digest


def test_referrers_of_an_image_without_any_is_an_empty_list(
    local_registry: LocalRegistry, writer: RegistryWriter
) -> None:
    digest = oci.push_image(local_registry.address, "promote/bare", "1", {"etc/v": b"1"})
    assert writer.list_referrers(parse_ref(f"{local_registry.address}/promote/bare@{digest}")) == []
