"""Rebase planning: put an image's own layers on a new base, from manifests and configs alone.

An image built `FROM old` whose own layers never read the base's files (a final stage that only
copies files in, sets metadata) is the old base's layers followed by its own. Replacing the first
part with the new base's layers gives exactly what a rebuild on the new base would, without a
build. This module decides whether that is exact and writes the new config and manifest; it does
no I/O (adapters/registry_rebase.py fetches, mounts and pushes).

A rebase is refused (`RebaseRefused`, with the reason told to people) unless the image's first
layers are the old base's, by digest and by diff_id; a platform the image has that the new base
lacks, an unknown old digest, a media type patchprop does not know are refusals too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from patchprop.domain.errors import PatchpropError
from patchprop.domain.oci import OCI_INDEX, OCI_MANIFEST, sha256_digest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
# Layer media types a rebase may carry, and what a Docker layer is called in an OCI manifest
# (the same bytes: buildah --format oci renames them so).
_OCI_LAYERS = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
}
_DOCKER_TO_OCI = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar",
}
_OCI_TO_DOCKER = {oci: docker for docker, oci in _DOCKER_TO_OCI.items()}
_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


class RebaseRefused(PatchpropError):
    """A rebase would not be exact; `reason` says why (a rebuild is the way then)."""

    @property
    def reason(self) -> str:
        return str(self)


@dataclass(frozen=True)
class ImageParts:
    """One platform's image manifest (its exact bytes) and config (its exact bytes)."""

    media_type: str
    manifest: bytes
    config: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    def manifest_json(self) -> dict[str, Any]:
        return _object(self.manifest, "manifest")

    def config_json(self) -> dict[str, Any]:
        return _object(self.config, "config")

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list(self.manifest_json().get("layers") or [])

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config_json().get("rootfs") or {}).get("diff_ids") or [])

    @property
    def platform(self) -> str:
        return platform_of(self.config_json())


@dataclass(frozen=True)
class Rebased:
    """One platform rebased: the new config and manifest, and the new base's layers it needs."""

    media_type: str
    manifest: bytes
    config: bytes
    base_layers: tuple[dict[str, Any], ...]  # descriptors, to mount (or copy) from the new base
    own_layers: int  # how many of the image's own layers it kept (unchanged digests)

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.manifest)}


@dataclass
class Rebase:
    """What one rebase did: the candidate's digest and what moved to make it."""

    digest: str
    platforms: list[str] = field(default_factory=list)
    mounted: int = 0  # new base layers mounted across repositories
    copied: int = 0  # new base layers streamed through this client
    present: int = 0  # new base layers the image's repository had already
    bytes_moved: int = 0  # bytes read or written by this client (manifests, configs, copies)


def _object(body: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        raise RebaseRefused(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise RebaseRefused(f"the {what} is not a JSON object")
    return value


def _canonical(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def platform_of(value: Mapping[str, Any]) -> str:
    """`os/architecture[/variant]` of a config or of an index entry's `platform`."""
    parts = [str(value.get("os") or "?"), str(value.get("architecture") or "?")]
    if value.get("variant"):
        parts.append(str(value["variant"]))
    return "/".join(parts)


def check_media_type(media_type: str, what: str) -> None:
    if media_type not in IMAGE_MANIFESTS | INDEXES:
        raise RebaseRefused(
            f"{what} is a {media_type or 'manifest without a media type'}, not one patchprop rebases"
        )


def old_base_digest(annotations: Mapping[str, str], previous_digest: str | None) -> str:
    """The digest the image was built on: its own base annotation, else the base's last digest."""
    found = annotations.get(BASE_DIGEST) or previous_digest
    if not found:
        raise RebaseRefused(
            "the old base digest is unknown (no org.opencontainers.image.base.digest annotation on "
            "the image and no previous digest of the base)"
        )
    return found


def platform_entries(index: Mapping[str, Any], what: str) -> dict[str, dict[str, Any]]:
    """An index's image manifests by platform; attestations and unknown platforms are refused."""
    entries: dict[str, dict[str, Any]] = {}
    for entry in index.get("manifests") or []:
        platform = entry.get("platform") or {}
        annotations = entry.get("annotations") or {}
        if annotations.get("vnd.docker.reference.type") or platform_of(platform) == "unknown/unknown":
            raise RebaseRefused(f"{what} holds an attestation manifest, which a rebase cannot carry over")
        check_media_type(str(entry.get("mediaType") or ""), f"an entry of {what}")
        if entry.get("mediaType") in INDEXES:
            raise RebaseRefused(f"{what} nests an index")
        key = platform_of(platform)
        if key in entries:
            raise RebaseRefused(f"{what} has two manifests for {key}")
        entries[key] = dict(entry)
    if not entries:
        raise RebaseRefused(f"{what} lists no image manifest")
    return entries


def pick_platform(entries: Mapping[str, dict[str, Any]], platform: str, what: str) -> dict[str, Any]:
    """The entry of `platform`; a variant-less request matches the one entry of its os/arch."""
    if platform in entries:
        return entries[platform]
    close = [e for key, e in entries.items() if key.split("/")[:2] == platform.split("/")[:2]]
    if len(close) == 1:
        return close[0]
    raise RebaseRefused(f"{what} has no {platform} manifest (it has {', '.join(sorted(entries))})")


# ---- one platform ----------------------------------------------------------------------


def _own_part(image: ImageParts, old: ImageParts) -> tuple[list[dict[str, Any]], list[str], list[Any]]:
    """The image's own layers, diff_ids and history, once its first layers are the old base's."""
    layers, old_layers = image.layers, old.layers
    diff_ids, old_diff_ids = image.diff_ids, old.diff_ids
    if len(layers) != len(diff_ids):
        raise RebaseRefused(
            f"the image's manifest has {len(layers)} layers but its config {len(diff_ids)} diff_ids"
        )
    if [d.get("digest") for d in layers[: len(old_layers)]] != [d.get("digest") for d in old_layers]:
        raise RebaseRefused(
            f"the image's first layers are not the old base's ({len(old_layers)} layers, by digest): "
            "it was not built on that base, or its own steps changed the base's layers"
        )
    if diff_ids[: len(old_diff_ids)] != old_diff_ids:
        raise RebaseRefused("the image's first diff_ids are not the old base's")
    n = len(old_layers)
    for layer in layers[n:]:
        if layer.get("urls") or "foreign" in str(layer.get("mediaType")):
            raise RebaseRefused("the image has a foreign (non-distributable) layer")
    history = list(image.config_json().get("history") or [])
    old_history = list(old.config_json().get("history") or [])
    if history[: len(old_history)] != old_history:
        raise RebaseRefused("the image's history does not start with the old base's")
    return layers[n:], diff_ids[n:], history[len(old_history) :]


def _inherit_env(image: Sequence[str], old: Sequence[str], new: Sequence[str]) -> list[str]:
    """Env entries the image took from the old base unchanged come from the new base."""

    def by_name(entries: Sequence[str]) -> dict[str, str]:
        return {entry.partition("=")[0]: entry for entry in entries}

    old_by, new_by, image_by = by_name(old), by_name(new), by_name(image)
    out: list[str] = []
    for name, entry in image_by.items():
        if old_by.get(name) == entry:  # inherited: what the new base says, or gone with it
            if name in new_by:
                out.append(new_by[name])
        else:
            out.append(entry)
    out += [entry for name, entry in new_by.items() if name not in image_by and name not in old_by]
    return out


def _inherit_labels(
    image: Mapping[str, str], old: Mapping[str, str], new: Mapping[str, str]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in image.items():
        if old.get(key) == value:
            if key in new:
                out[key] = new[key]
        else:
            out[key] = value
    out.update({k: v for k, v in new.items() if k not in image and k not in old})
    return out


def new_settings(image: Mapping[str, Any], old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The image's `config` section on the new base: its own settings kept, the base's it did not
    change (equal to the old base's) taken from the new base."""
    out: dict[str, Any] = {}
    for key in dict.fromkeys([*image, *new]):
        if key == "Env":
            out[key] = _inherit_env(image.get(key) or [], old.get(key) or [], new.get(key) or [])
        elif key == "Labels":
            out[key] = _inherit_labels(image.get(key) or {}, old.get(key) or {}, new.get(key) or {})
        elif key not in image:
            if key not in old:  # new in the new base
                out[key] = new[key]
        elif image[key] == old.get(key):
            if key in new:
                out[key] = new[key]
        else:
            out[key] = image[key]
    return {k: v for k, v in out.items() if v not in ({}, None) or k in image}


def _layer_for(descriptor: Mapping[str, Any], manifest_type: str) -> dict[str, Any]:
    """A new base layer's descriptor as the image's manifest type names it."""
    media_type = str(descriptor.get("mediaType") or "")
    if descriptor.get("urls") or "foreign" in media_type:
        raise RebaseRefused("the new base has a foreign (non-distributable) layer")
    if manifest_type == OCI_MANIFEST:
        media_type = _DOCKER_TO_OCI.get(media_type, media_type)
        known = media_type in _OCI_LAYERS
    else:
        media_type = _OCI_TO_DOCKER.get(media_type, media_type)
        known = media_type in _DOCKER_TO_OCI
    if not known:
        raise RebaseRefused(
            f"the new base has a layer of media type {media_type!r}, not one patchprop rebases"
        )
    return {"mediaType": media_type, "digest": descriptor["digest"], "size": descriptor["size"]}


def rebase_platform(image: ImageParts, old: ImageParts, new: ImageParts, *, base_digest: str) -> Rebased:
    """`image` (built on `old`) on `new`: the new config and manifest. `base_digest` is the new
    base's digest as tracked (its index's for multi-arch), for the base annotation and label."""
    for parts, what in ((image, "the image"), (old, "the old base"), (new, "the new base")):
        if parts.media_type not in IMAGE_MANIFESTS:
            raise RebaseRefused(
                f"{what}'s manifest is a {parts.media_type or 'manifest'}, not one patchprop rebases"
            )
    if new.platform.split("/")[:2] != image.platform.split("/")[:2]:
        raise RebaseRefused(f"the new base is {new.platform}, the image {image.platform}")
    own_layers, own_diff_ids, own_history = _own_part(image, old)
    config = image.config_json()
    new_config = new.config_json()
    settings = new_settings(
        config.get("config") or {}, old.config_json().get("config") or {}, new_config.get("config") or {}
    )
    labels = settings.get("Labels")
    if isinstance(labels, dict) and BASE_DIGEST in labels:
        labels[BASE_DIGEST] = base_digest
    rebased_config = {
        **config,
        "config": settings,
        "rootfs": {"type": "layers", "diff_ids": [*new.diff_ids, *own_diff_ids]},
        "history": [*(new_config.get("history") or []), *own_history],
    }
    if "history" not in config and "history" not in new_config:
        rebased_config.pop("history")
    config_body = _canonical(rebased_config)
    manifest = image.manifest_json()
    config_type = manifest.get("config", {}).get("mediaType") or (
        _OCI_CONFIG if image.media_type == OCI_MANIFEST else _DOCKER_CONFIG
    )
    base_layers = tuple(_layer_for(d, image.media_type) for d in new.layers)
    rebased_manifest = {
        **manifest,
        "config": {"mediaType": config_type, "digest": sha256_digest(config_body), "size": len(config_body)},
        "layers": [*base_layers, *own_layers],
    }
    annotations = manifest.get("annotations")
    if isinstance(annotations, dict) and BASE_DIGEST in annotations:
        rebased_manifest["annotations"] = {**annotations, BASE_DIGEST: base_digest}
    return Rebased(image.media_type, _canonical(rebased_manifest), config_body, base_layers, len(own_layers))


def rebase_index(index: bytes, media_type: str, rebased: Mapping[str, Rebased], *, base_digest: str) -> bytes:
    """The image's index with each platform's manifest replaced by its rebased one (by the old
    entry's digest); the base annotation moved to the new base."""
    value = _object(index, "index")
    entries = []
    for entry in value.get("manifests") or []:
        done = rebased.get(str(entry.get("digest")))
        if done is None:
            raise RebaseRefused(f"no rebased manifest for {entry.get('digest')} of the index")
        entries.append({**entry, **done.descriptor})
    out = {**value, "manifests": entries}
    annotations = value.get("annotations")
    if isinstance(annotations, dict) and BASE_DIGEST in annotations:
        out["annotations"] = {**annotations, BASE_DIGEST: base_digest}
    if media_type not in INDEXES:
        raise RebaseRefused(f"the image's index is a {media_type}")
    return _canonical(out)
