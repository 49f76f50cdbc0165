"""RegistryClient, LocalRegistry and the OCI pusher against a real docker-registry."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from patchprop.adapters.registry import RegistryClient
from patchprop.domain.errors import ManifestNotFound, RegistryUnavailable
from patchprop.domain.refs import parse_ref
from patchprop_local import oci, registry_server
from patchprop_local.registry_server import LocalRegistry, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def client() -> RegistryClient:
    return RegistryClient(timeout=2.0)


def test_resolve_digest_returns_the_pushed_manifest_digest(
    local_registry: LocalRegistry, client: RegistryClient
) -> None:
    # Given an image pushed to the local registry
    digest = oci.push_image(local_registry.address, "it/resolve", "1.0", {"etc/app": b"v1"})
    # When its tag is resolved
    resolved = client.resolve_digest(parse_ref(f"{local_registry.address}/it/resolve:1.0"))
    # Then it is exactly the digest of the manifest bytes the registry serves
    assert resolved == digest
    body = requests.get(
        f"http://{local_registry.address}/v2/it/resolve/manifests/{digest}",
        headers={"Accept": oci.OCI_MANIFEST},
        timeout=5,
    ).content
    assert digest == "sha256:" + hashlib.sha256(body).hexdigest()


def test_pushing_the_same_files_twice_gives_the_same_digest(local_registry: LocalRegistry) -> None:
    # Given the same files and annotations
    files = {"etc/os-release": b"ID=demo\n", "usr/bin/tool": b"#!/bin/sh\n"}
    # When pushed twice, to different tags
    first = oci.push_image(local_registry.address, "it/same", "a", files, annotations={"k": "v"})
    second = oci.push_image(local_registry.address, "it/same", "b", files, annotations={"k": "v"})
    # Then the image is byte for byte the same
    assert first == second


def test_repush_to_the_same_tag_moves_the_digest(
    local_registry: LocalRegistry, client: RegistryClient
) -> None:
    # Given an image under a tag
    ref = parse_ref(f"{local_registry.address}/it/moving:3.13")
    old = oci.push_image(local_registry.address, "it/moving", "3.13", {"etc/patch": b"1"})
    assert client.resolve_digest(ref) == old
    # When a patched image is pushed to the same tag
    new = oci.push_image(local_registry.address, "it/moving", "3.13", {"etc/patch": b"2"})
    # Then the tag resolves to the new digest and the old one is still there by digest
    assert new != old
    assert client.resolve_digest(ref) == new
    assert client.resolve_digest(ref.without_digest().with_digest(old)) == new  # tag wins over digest
    assert client.resolve_digest(parse_ref(f"{local_registry.address}/it/moving@{old}")) == old


def test_annotations_change_the_digest(local_registry: LocalRegistry) -> None:
    # Given the same files
    files = {"etc/app": b"x"}
    # When pushed with different base annotations
    a = oci.push_image(local_registry.address, "it/annotated", "a", files, annotations={"base": "one"})
    b = oci.push_image(local_registry.address, "it/annotated", "b", files, annotations={"base": "two"})
    # Then the digests differ and the annotations are in the manifest
    assert a != b
    manifest = requests.get(
        f"http://{local_registry.address}/v2/it/annotated/manifests/b",
        headers={"Accept": oci.OCI_MANIFEST},
        timeout=5,
    ).json()
    assert manifest["annotations"] == {"base": "two"}


def test_multi_arch_index_resolves_to_the_index_digest(
    local_registry: LocalRegistry, client: RegistryClient
) -> None:
    # Given an amd64 and an arm64 image combined in an OCI index under one tag
    amd64 = oci.push_image(local_registry.address, "it/multi", "amd64", {"arch": b"amd64"})
    arm64 = oci.push_image(
        local_registry.address, "it/multi", "arm64", {"arch": b"arm64"}, architecture="arm64"
    )
    index = oci.push_index(local_registry.address, "it/multi", "22", [amd64, arm64])
    # When the tag is resolved
    resolved = client.resolve_digest(parse_ref(f"{local_registry.address}/it/multi:22"))
    # Then it is the index digest, not one of the platform images
    assert resolved == index
    assert resolved not in (amd64, arm64)
    body = requests.get(
        f"http://{local_registry.address}/v2/it/multi/manifests/22",
        headers={"Accept": oci.OCI_INDEX},
        timeout=5,
    ).json()
    assert [(m["digest"], m["platform"]["architecture"]) for m in body["manifests"]] == [
        (amd64, "amd64"),
        (arm64, "arm64"),
    ]


def test_unknown_tag_and_repository_are_manifest_not_found(
    local_registry: LocalRegistry, client: RegistryClient
) -> None:
    # Given a repository with one tag
    oci.push_image(local_registry.address, "it/known", "1", {"f": b"1"})
    # When an unknown tag, or an unknown repository, is resolved
    # Then ManifestNotFound names the reference
    for text in (f"{local_registry.address}/it/known:2", f"{local_registry.address}/it/unknown:1"):
        with pytest.raises(ManifestNotFound, match=text.split("/", 1)[1]):
            client.resolve_digest(parse_ref(text))


def test_unreachable_port_is_unavailable_quickly() -> None:
    # Given a loopback port nothing listens on
    ref = parse_ref(f"127.0.0.1:{free_port()}/it/nothing:1")
    started = time.monotonic()
    # When its digest is resolved with a small timeout
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        RegistryClient(timeout=0.5).resolve_digest(ref)
    # Then the failure is quick
    assert time.monotonic() - started < 2.0


def test_stopped_registry_is_unavailable(tmp_path: Path) -> None:
    # Given a registry that served an image and was then stopped
    with LocalRegistry(tmp_path / "reg") as registry:
        oci.push_image(registry.address, "it/gone", "1", {"f": b"1"})
        ref = parse_ref(f"{registry.address}/it/gone:1")
        assert RegistryClient(timeout=1.0).resolve_digest(ref).startswith("sha256:")
    assert registry.process is None
    # When the digest is resolved
    # Then the registry is reported unavailable
    with pytest.raises(RegistryUnavailable):
        RegistryClient(timeout=0.5).resolve_digest(ref)


def test_data_survives_a_restart_on_the_same_root(tmp_path: Path) -> None:
    # Given an image pushed to a registry that was then stopped
    with LocalRegistry(tmp_path / "reg") as registry:
        digest = oci.push_image(registry.address, "it/kept", "1", {"f": b"1"})
    # When a new registry starts on the same root (another port)
    with LocalRegistry(tmp_path / "reg") as again:
        # Then the image is still there
        assert RegistryClient().resolve_digest(parse_ref(f"{again.address}/it/kept:1")) == digest


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_pushed_images_are_readable_by_skopeo(local_registry: LocalRegistry) -> None:
    # Given an image pushed by the tiny pusher
    digest = oci.push_image(local_registry.address, "it/real", "1", {"etc/hello": b"hi"})
    # When skopeo inspects it
    result = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{local_registry.address}/it/real:1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # Then a standard client sees a linux/amd64 image with that digest and one layer
    info = json.loads(result.stdout)
    assert (info["Digest"], info["Os"], info["Architecture"]) == (digest, "linux", "amd64")
    assert len(info["Layers"]) == 1


# --- LocalRegistry itself -------------------------------------------------------------------


def test_config_listens_on_loopback_with_deletes_enabled(local_registry: LocalRegistry) -> None:
    # Given the running session registry
    # When its configuration file is read (JSON is YAML)
    config = json.loads(local_registry.config_path.read_text())
    # Then it listens on 127.0.0.1 only, stores under root/data and allows deletes
    assert config["http"]["addr"] == local_registry.address
    assert local_registry.address.startswith("127.0.0.1:")
    assert config["storage"]["filesystem"]["rootdirectory"] == str(local_registry.root / "data")
    assert config["storage"]["delete"] == {"enabled": True}
    assert config["log"]["level"] == "warn"
    assert "notifications" not in config
    assert requests.get(f"http://{local_registry.address}/v2/", timeout=5).status_code == 200


def test_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    # Given a port something already listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # When a registry is started on it
        # Then it refuses clearly and leaves nothing running
        registry = LocalRegistry(tmp_path, port=port)
        with pytest.raises(RuntimeError, match="taken"):
            registry.start()
        assert registry.process is None


def test_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a machine without docker-registry
    monkeypatch.setattr(registry_server.shutil, "which", lambda name: None)
    monkeypatch.setattr(registry_server, "DEBIAN_BINARY", str(tmp_path / "no-such-binary"))
    # When a registry is started
    # Then the error says how to install it
    with pytest.raises(RuntimeError, match="apt-get install docker-registry"):
        LocalRegistry(tmp_path).start()


def test_registry_that_does_not_come_up_reports_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a "registry" binary that exits at once after writing an error
    fake = tmp_path / "docker-registry"
    fake.write_text("#!/bin/sh\necho 'configuration error: boom' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(registry_server.shutil, "which", lambda name: str(fake))
    # When it is started
    registry = LocalRegistry(tmp_path / "root")
    with pytest.raises(RuntimeError) as caught:
        registry.start()
    # Then the error carries the exit code and the tail of the log
    assert "exit code 3" in str(caught.value)
    assert "configuration error: boom" in str(caught.value)
    assert registry.process is None


def test_stop_ends_the_process_and_is_idempotent(tmp_path: Path) -> None:
    # Given a running registry
    registry = LocalRegistry(tmp_path).start()
    process = registry.process
    assert process is not None and registry.running
    # When it is stopped twice
    registry.stop()
    registry.stop()
    # Then the process has exited and nothing answers any more
    assert process.poll() is not None
    assert not registry.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{registry.address}/v2/", timeout=1)


class _EventSink:
    """A tiny HTTP server on 127.0.0.1 recording what the registry notifies."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.authorizations.append(self.headers.get("Authorization"))
                sink.events.extend(json.loads(body).get("events", []))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def event_sink() -> Iterator[_EventSink]:
    sink = _EventSink()
    sink.thread.start()
    try:
        yield sink
    finally:
        sink.server.shutdown()
        sink.server.server_close()


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_pushes_are_notified_to_notify_url(tmp_path: Path, event_sink: _EventSink) -> None:
    # Given a registry configured to notify an endpoint
    with LocalRegistry(tmp_path, notify_url=event_sink.url) as registry:
        # When an image is pushed
        digest = oci.push_image(registry.address, "it/notified", "7", {"f": b"1"})
        _wait_for(lambda: len(event_sink.events) > 0)
        # Then the endpoint receives a push event for the manifest, with repository and tag
        assert event_sink.events, "no event arrived"
        event = event_sink.events[0]
        assert event["action"] == "push"
        assert event["target"]["digest"] == digest
        assert event["target"]["repository"] == "it/notified"
        assert event["target"]["tag"] == "7"
        assert event["target"]["mediaType"] == oci.OCI_MANIFEST
        # And neither layer uploads nor pulls (a poller's HEADs) are notified
        RegistryClient().resolve_digest(parse_ref(f"{registry.address}/it/notified:7"))
        oci.push_image(registry.address, "it/notified", "8", {"f": b"2"})
        _wait_for(lambda: len(event_sink.events) > 1)
        time.sleep(0.2)
        seen = [(e["action"], e["target"]["mediaType"], e["target"].get("tag")) for e in event_sink.events]
        assert seen == [("push", oci.OCI_MANIFEST, "7"), ("push", oci.OCI_MANIFEST, "8")]


def test_notifications_carry_the_start_secret_and_the_config_is_private(
    tmp_path: Path, event_sink: _EventSink
) -> None:
    # Given a registry told to send a secret header with its notifications
    secret = {"Authorization": "Bearer s3cret"}
    with LocalRegistry(tmp_path, notify_url=event_sink.url, notify_headers=secret) as registry:
        # When an image is pushed
        oci.push_image(registry.address, "it/signed", "1", {"f": b"1"})
        _wait_for(lambda: len(event_sink.events) > 0)
        mode = registry.config_path.stat().st_mode & 0o777
    # Then each notification carries it, and only this user can read the file that holds it
    assert event_sink.authorizations and set(event_sink.authorizations) == {"Bearer s3cret"}
    assert mode == 0o600
