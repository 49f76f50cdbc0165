"""Push tiny but real OCI images to a local registry, without buildah or Docker.

Good for tests and the demo: `push_image` makes a one-layer image from a few files,
byte for byte the same every time for the same input; `push_index` makes a multi-arch
index of manifests already pushed. Plain http: meant for the local registry only.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


class PushError(RuntimeError):
    """The registry refused part of a push."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed tar of `files` (path -> content) with parent directories, reproducibly."""
    paths = {path.strip("/"): data for path, data in files.items()}
    directories = {"/".join(p.split("/")[:i]) for p in paths for i in range(1, p.count("/") + 1)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(directories | set(paths)):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if name in paths:
                info.mode, info.size = 0o644, len(paths[name])
                tar.addfile(info, io.BytesIO(paths[name]))
            else:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
    return buffer.getvalue()


class _Registry:
    def __init__(self, address: str, repository: str, timeout: float) -> None:
        self.base = f"http://{address}/v2/{repository}"
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # never send loopback traffic through a proxy

    def request(self, method: str, url: str, expected: tuple[int, ...], **kwargs: Any) -> requests.Response:
        response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        if response.status_code not in expected:
            raise PushError(f"{method} {url} answered {response.status_code}: {response.text[:500]}")
        return response

    def push_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        if self.request("HEAD", f"{self.base}/blobs/{digest}", (200, 404)).status_code == 200:
            return digest
        started = self.request("POST", f"{self.base}/blobs/uploads/", (202,))
        location = urljoin(self.base, started.headers["Location"])
        self.request(
            "PUT",
            location,
            (201,),
            params={"digest": digest},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return digest

    def put_manifest(self, tag: str, media_type: str, body: bytes) -> str:
        digest = sha256_digest(body)
        response = self.request(
            "PUT", f"{self.base}/manifests/{tag}", (201,), data=body, headers={"Content-Type": media_type}
        )
        answered = response.headers.get("Docker-Content-Digest")
        if answered != digest:
            raise PushError(f"registry stored {tag} as {answered}, expected {digest}")
        return digest

    def get_json(self, url: str, accept: str) -> tuple[dict[str, Any], int]:
        response = self.request("GET", url, (200,), headers={"Accept": accept})
        return response.json(), len(response.content)


def push_image(
    address: str,
    repository: str,
    tag: str,
    files: Mapping[str, bytes],
    annotations: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    architecture: str = "amd64",
) -> str:
    """Push a one-layer linux image holding `files` as `address/repository:tag`; return its digest."""
    registry = _Registry(address, repository, timeout)
    tar = layer_tar(files)
    layer = gzip.compress(tar, mtime=0)
    config = canonical_json(
        {
            "architecture": architecture,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar)]},
        }
    )
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": registry.push_blob(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": registry.push_blob(layer), "size": len(layer)}],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return registry.put_manifest(tag, OCI_MANIFEST, canonical_json(manifest))


def push_index(address: str, repository: str, tag: str, manifests: list[str], timeout: float = 10.0) -> str:
    """Push an OCI image index of already pushed image manifests (by digest); return its digest.

    Each entry's platform is read from the image's config blob.
    """
    registry = _Registry(address, repository, timeout)
    entries = []
    for digest in manifests:
        manifest, size = registry.get_json(f"{registry.base}/manifests/{digest}", OCI_MANIFEST)
        config, _ = registry.get_json(f"{registry.base}/blobs/{manifest['config']['digest']}", OCI_CONFIG)
        entries.append(
            {
                "mediaType": manifest.get("mediaType", OCI_MANIFEST),
                "digest": digest,
                "size": size,
                "platform": {"architecture": config["architecture"], "os": config["os"]},
            }
        )
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    return registry.put_manifest(tag, OCI_INDEX, canonical_json(index))
