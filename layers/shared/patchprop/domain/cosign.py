"""cosign's key-based signature format, as `cosign sign --key` writes it and `cosign verify --key`
reads it: names and shapes, no I/O.

A signature of `registry/repo@sha256:<hex>` is an OCI image manifest under the tag
`sha256-<hex>.sig` of the same repository. Each of its layers is one simple-signing payload
(`application/vnd.dev.cosign.simplesigning.v1+json`) naming the repository and the digest, with
the base64 signature of the payload's bytes in the layer annotation
`dev.cosignproject.cosign/signature`. Signing again appends a layer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from patchprop.domain.oci import OCI_MANIFEST, referrers_tag, sha256_digest
from patchprop.domain.refs import ImageRef

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_TYPE = "cosign container image signature"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_ZERO_TIME = "0001-01-01T00:00:00Z"  # what cosign's (go-containerregistry's) empty image says


def signature_tag(digest: str) -> str:
    """The tag cosign keeps the signatures of `digest` under: `sha256-<hex>.sig`."""
    return referrers_tag(digest) + ".sig"


def signature_ref(image: ImageRef) -> ImageRef:
    """Where the signatures of the pinned `image` are: its repository, the `.sig` tag."""
    if not image.digest:
        raise ValueError(f"{image} has no digest: only a digest is signed")
    return ImageRef(image.registry, image.repository, signature_tag(image.digest))


def payload(image: ImageRef) -> bytes:
    """The simple-signing payload of the pinned `image`, byte for byte as cosign writes it."""
    if not image.digest:
        raise ValueError(f"{image} has no digest: only a digest is signed")
    body = {
        "critical": {
            "identity": {"docker-reference": image.name},
            "image": {"docker-manifest-digest": image.digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def signed_digest(signed: bytes) -> str | None:
    """The digest a simple-signing payload names, or None when it is not one."""
    try:
        return str(json.loads(signed)["critical"]["image"]["docker-manifest-digest"])
    except (ValueError, KeyError, TypeError):
        return None


def signature_layer(signed: bytes, signature_b64: str) -> dict[str, Any]:
    """The layer descriptor of one signature: the payload's digest and size, the signature."""
    return {
        "mediaType": SIMPLE_SIGNING,
        "digest": sha256_digest(signed),
        "size": len(signed),
        "annotations": {SIGNATURE_ANNOTATION: signature_b64},
    }


def signature_config(layers: Sequence[dict[str, Any]]) -> bytes:
    """The image config of a signature manifest with `layers` (uncompressed: diff id = digest)."""
    config = {
        "architecture": "",
        "config": {},
        "created": _ZERO_TIME,
        "history": [{"created": _ZERO_TIME} for _ in layers],
        "os": "",
        "rootfs": {"diff_ids": [layer["digest"] for layer in layers], "type": "layers"},
    }
    return json.dumps(config, separators=(",", ":")).encode()


def signature_manifest(layers: Sequence[dict[str, Any]], config: bytes) -> bytes:
    """The signature manifest: `layers` (existing ones first) over `config`."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": list(layers),
    }
    return json.dumps(manifest, separators=(",", ":")).encode()
