"""Read what an image says it is built on (the base.name / base.digest annotations patchprop's
builds set on the manifest, and as labels on the config) through the registry API."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from patchprop.adapters.registry_write import RegistryWriter
from patchprop.domain.rebase import BASE_DIGEST, BASE_NAME, INDEXES
from patchprop.domain.refs import ImageRef

_KEYS = (BASE_NAME, BASE_DIGEST)


def _base_keys(found: Mapping[str, Any] | None) -> dict[str, str]:
    return {k: str(v) for k, v in (found or {}).items() if k in _KEYS and v}


class BuiltOnReader:
    """The image's base annotations: the top manifest's, else its first platform's, else the
    config's labels."""

    def __init__(self, writer: RegistryWriter) -> None:
        self.writer = writer

    def base_annotations(self, image: ImageRef) -> Mapping[str, str]:
        top = self.writer.get_manifest(image)
        body = json.loads(top.body)
        found = _base_keys(body.get("annotations"))
        if found.get(BASE_DIGEST):
            return found
        if top.media_type in INDEXES:
            children = body.get("manifests") or []
            if not children:
                return found
            child_ref = image.with_digest(children[0]["digest"])
            body = json.loads(self.writer.get_manifest(child_ref).body)
            found = _base_keys(body.get("annotations"))
            if found.get(BASE_DIGEST):
                return found
            image = child_ref
        config = body.get("config") or {}
        if not config.get("digest"):
            return found
        labels = (json.loads(self.writer.get_blob(image, config["digest"])).get("config") or {}).get("Labels")
        return _base_keys(labels) or found
