"""Where a base publishes its SLSA provenance, found and read from the registry.

BuildKit (docker buildx, Docker Hardened Images) adds to the image index one attestation manifest
per platform (annotation `vnd.docker.reference.type: attestation-manifest`, naming the platform
manifest in `vnd.docker.reference.digest`), its layers in-toto statements annotated with their
`in-toto.io/predicate-type`. Otherwise the digest's OCI 1.1 referrers are looked at (the
referrers API, else the referrers tag schema's `sha256-<hex>` index, as promotion writes it) for
an in-toto or DSSE artifact. Each statement is read up to MAX_PROVENANCE_BYTES, checked against
its digest; nothing here raises: what cannot be read is said in the summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

from patchprop.domain.errors import ManifestNotFound, RegistryError
from patchprop.domain.oci import OCI_INDEX, referrers_tag, sha256_digest
from patchprop.domain.provenance import (
    MAX_PROVENANCE_BYTES,
    SLSA_TYPES,
    Provenance,
    ProvenanceError,
    read_statement,
)
from patchprop.domain.refs import ImageRef

if TYPE_CHECKING:  # base_sources imports this module
    from patchprop.adapters.base_sources import BaseRegistry

REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"
PREDICATE_TYPE = "in-toto.io/predicate-type"
STATEMENT_TYPES = ("application/vnd.in-toto+json", "application/vnd.dsse.envelope.v1+json")
INDEX_TYPES = (OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json")
MAX_REFERRERS = 5  # in-toto referrers opened per digest


def read_provenance(
    registry: BaseRegistry, image: ImageRef, max_bytes: int = MAX_PROVENANCE_BYTES
) -> Provenance:
    """The provenance `image` (pinned) publishes: state none when it publishes none."""
    where = ""
    try:
        found = _attestation(registry, image) or _referrer(registry, image)
        if found is None:
            return Provenance(state="none")
        where, layer = found
        data = _statement_bytes(registry, image, layer, max_bytes)
        return read_statement(data, max_bytes).model_copy(update={"where": where})
    except ProvenanceError as exc:
        return Provenance(state="unreadable", reason=f"{exc.reason} ({where})" if where else exc.reason)
    except (RegistryError, requests.RequestException, KeyError, TypeError, ValueError) as exc:
        why = f"the registry could not be read: {exc}"[:300]
        return Provenance(state="unreadable", reason=why, where=where)


def _attestation(registry: BaseRegistry, image: ImageRef) -> tuple[str, dict[str, Any]] | None:
    """The first platform's SLSA layer in a BuildKit attestation manifest of the index."""
    index = registry.manifest(_by_digest(image, image.digest or ""))
    if index.get("mediaType") not in INDEX_TYPES and "manifests" not in index:
        return None
    entries = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
    attestations = {
        (m.get("annotations") or {}).get(REFERENCE_DIGEST): m
        for m in entries
        if (m.get("annotations") or {}).get(REFERENCE_TYPE) == ATTESTATION_MANIFEST
    }
    for platform in entries:
        attestation = attestations.get(platform.get("digest"))
        if attestation is None:
            continue
        manifest = registry.manifest(_by_digest(image, attestation["digest"]))
        for layer in manifest.get("layers") or []:
            if (layer.get("annotations") or {}).get(PREDICATE_TYPE) in SLSA_TYPES:
                where = f"attestation manifest {attestation['digest']}{_platform(platform)}"
                return where, layer
    return None


def _referrer(registry: BaseRegistry, image: ImageRef) -> tuple[str, dict[str, Any]] | None:
    """An in-toto SLSA layer of one of the digest's referrers."""
    candidates = [
        d
        for d in _referrers(registry, image)
        if any(kind in str(d.get("artifactType") or "") for kind in ("in-toto", "dsse", "slsa"))
        and (d.get("annotations") or {}).get(PREDICATE_TYPE, SLSA_TYPES[0]) in SLSA_TYPES
    ]
    for descriptor in candidates[:MAX_REFERRERS]:
        manifest = registry.manifest(_by_digest(image, descriptor["digest"]))
        for layer in manifest.get("layers") or []:
            kind = (layer.get("annotations") or {}).get(PREDICATE_TYPE)
            if kind in SLSA_TYPES or (kind is None and layer.get("mediaType") in STATEMENT_TYPES):
                return f"referrer {descriptor['digest']}", layer
    return None


def _referrers(registry: BaseRegistry, image: ImageRef) -> list[dict[str, Any]]:
    """The referrers API's index, else the referrers tag schema's (none: an empty list)."""
    digest = image.digest or ""
    url = f"{registry.base_url(image)}/v2/{image.repository}/referrers/{digest}"
    try:
        response = registry._authorized("GET", url, image)
    except RegistryError:  # refused or unanswered: the tag schema may still be there
        response = None
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip() if response else ""
    if response is not None and response.status_code == 200 and content_type == OCI_INDEX:
        return [m for m in response.json().get("manifests") or [] if isinstance(m, dict)]
    try:
        index = registry.manifest(ImageRef(image.registry, image.repository, referrers_tag(digest)))
    except ManifestNotFound:
        return []
    return [m for m in index.get("manifests") or [] if isinstance(m, dict)]


def _statement_bytes(registry: BaseRegistry, image: ImageRef, layer: dict[str, Any], max_bytes: int) -> bytes:
    size = layer.get("size")
    if isinstance(size, int) and size > max_bytes:
        raise ProvenanceError(f"the statement is {size:,} bytes, more than the {max_bytes:,} read")
    data = registry.blob(image, layer["digest"])
    if len(data) > max_bytes:
        raise ProvenanceError(f"the statement is {len(data):,} bytes, more than the {max_bytes:,} read")
    if sha256_digest(data) != layer["digest"]:
        raise ProvenanceError(f"the registry served other bytes for the statement {layer['digest']}")
    return data


def _platform(descriptor: dict[str, Any]) -> str:
    platform = descriptor.get("platform") or {}
    parts = (platform.get("os"), platform.get("architecture"), platform.get("variant"))
    name = "/".join(p for p in parts if p)
    return f" ({name})" if name else ""


def _by_digest(image: ImageRef, digest: str) -> ImageRef:
    """`digest` in `image`'s repository, without the tag (a manifest read asks for the tag first)."""
    return ImageRef(image.registry, image.repository, None, digest)
