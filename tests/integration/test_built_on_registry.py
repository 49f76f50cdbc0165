"""BuiltOnReader against a real docker-registry: the base annotations an image was pushed with."""

from __future__ import annotations

import pytest

from patchprop.adapters.built_on import BuiltOnReader
from patchprop.adapters.registry_write import RegistryWriter
from patchprop.domain.rebase import BASE_DIGEST, BASE_NAME
from patchprop.domain.refs import parse_ref
from patchprop_local import oci
from patchprop_local.registry_server import LocalRegistry

pytestmark = pytest.mark.integration

D0 = "sha256:" + "0" * 64


def test_the_base_annotations_of_a_pushed_image_are_read(local_registry: LocalRegistry) -> None:
    # Given an image pushed with patchprop's base annotations (and one without)
    address = local_registry.address
    base = f"{address}/it/built-on-base:1"
    marks = {BASE_NAME: base, BASE_DIGEST: D0, "org.example.other": "x"}
    oci.push_image(address, "it/built-on", "1", {"etc/app": b"a"}, annotations=marks)
    oci.push_image(address, "it/built-on", "plain", {"etc/app": b"b"})
    reader = BuiltOnReader(RegistryWriter(timeout=5.0))
    # When they are read through the registry API
    annotated = reader.base_annotations(parse_ref(f"{address}/it/built-on:1"))
    plain = reader.base_annotations(parse_ref(f"{address}/it/built-on:plain"))
    # Then only the base keys come back, and nothing for the plain image
    assert dict(annotated) == {BASE_NAME: base, BASE_DIGEST: D0}
    assert dict(plain) == {}
