"""The rebase planner on hand-made manifests and configs: what it writes, and every refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from patchprop.domain.oci import OCI_INDEX, OCI_MANIFEST, sha256_digest
from patchprop.domain.rebase import (
    BASE_DIGEST,
    DOCKER_MANIFEST,
    ImageParts,
    RebaseRefused,
    check_media_type,
    new_settings,
    old_base_digest,
    pick_platform,
    platform_entries,
    rebase_index,
    rebase_platform,
)

GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def d(name: str) -> str:
    return sha256_digest(name.encode())


def parts(
    layers: list[str],
    *,
    settings: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    media_type: str = OCI_MANIFEST,
    layer_type: str = GZ,
    arch: str = "amd64",
    annotations: dict[str, str] | None = None,
    diff_ids: list[str] | None = None,
) -> ImageParts:
    config = {
        "architecture": arch,
        "os": "linux",
        "config": settings or {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids or [d(f"diff-{n}") for n in layers]},
        "history": history if history is not None else [{"created_by": f"layer {n}"} for n in layers],
    }
    body = json.dumps(config).encode()
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(body)},
        "layers": [{"mediaType": layer_type, "digest": d(n), "size": 10} for n in layers],
    }
    if annotations:
        manifest["annotations"] = annotations
    return ImageParts(media_type, json.dumps(manifest).encode(), body)


OLD = parts(["b1", "b2"], settings={"Env": ["PATH=/bin", "V=1"], "Cmd": ["sh"], "Labels": {"base": "1"}})
NEW = parts(
    ["b1", "b3", "b4"],
    settings={"Env": ["PATH=/bin", "V=2", "NEW=x"], "Cmd": ["ash"], "Labels": {"base": "2"}},
)
APP = parts(
    ["b1", "b2", "own1", "own2"],
    settings={
        "Env": ["PATH=/bin", "V=1", "APP=1"],
        "Cmd": ["sh"],
        "User": "app",
        "Labels": {"base": "1", BASE_DIGEST: "sha256:old", "team": "a"},
    },
    annotations={BASE_DIGEST: "sha256:old", "org.opencontainers.image.base.name": "r/base:1"},
)
NEW_DIGEST = "sha256:" + "2" * 64


def test_the_rebased_image_is_the_new_base_s_layers_then_its_own_with_its_own_settings() -> None:
    # When the app is rebased from OLD to NEW
    done = rebase_platform(APP, OLD, NEW, base_digest=NEW_DIGEST)
    manifest, config = json.loads(done.manifest), json.loads(done.config)
    # Then the layers and diff_ids are the new base's, then its own, unchanged
    assert [layer["digest"] for layer in manifest["layers"]] == [
        d("b1"),
        d("b3"),
        d("b4"),
        d("own1"),
        d("own2"),
    ]
    assert config["rootfs"]["diff_ids"] == [d(f"diff-{n}") for n in ("b1", "b3", "b4", "own1", "own2")]
    assert [h["created_by"] for h in config["history"]] == [
        f"layer {n}" for n in ("b1", "b3", "b4", "own1", "own2")
    ]
    # And the settings it took from the base unchanged come from the new base; its own stay
    assert config["config"]["Env"] == ["PATH=/bin", "V=2", "APP=1", "NEW=x"]
    assert config["config"]["Cmd"] == ["ash"] and config["config"]["User"] == "app"
    assert config["config"]["Labels"] == {"base": "2", BASE_DIGEST: NEW_DIGEST, "team": "a"}
    # And the config descriptor names the new config; the base annotation names the new base
    assert manifest["config"]["digest"] == sha256_digest(done.config)
    assert manifest["config"]["size"] == len(done.config)
    assert manifest["annotations"][BASE_DIGEST] == NEW_DIGEST
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == "r/base:1"
    assert [layer["digest"] for layer in done.base_layers] == [
        d("b1"),
        d("b3"),
        d("b4"),
    ] and done.own_layers == 2


def test_an_env_entry_the_image_overrode_stays_and_one_the_new_base_dropped_goes() -> None:
    # Given the image overrode V and inherited GONE, which the new base no longer sets
    settings = new_settings(
        {"Env": ["V=mine", "GONE=1"], "WorkingDir": "/app"},
        {"Env": ["V=1", "GONE=1"]},
        {"Env": ["V=2"], "WorkingDir": "/", "StopSignal": "SIGTERM"},
    )
    # Then its own value stays, the dropped one goes, new base settings it did not have appear
    assert settings == {"Env": ["V=mine"], "WorkingDir": "/app", "StopSignal": "SIGTERM"}


def test_docker_layers_of_the_new_base_are_named_as_oci_layers_in_an_oci_image() -> None:
    new = parts(["b1", "b3"], media_type=DOCKER_MANIFEST, layer_type=DOCKER_GZ)
    done = rebase_platform(APP, OLD, new, base_digest=NEW_DIGEST)
    assert {layer["mediaType"] for layer in json.loads(done.manifest)["layers"]} == {GZ}


@pytest.mark.parametrize(
    ("image", "old", "new", "reason"),
    [
        (parts(["x1", "b2", "own"]), OLD, NEW, "first layers are not the old base's"),
        (
            parts(["b1", "b2", "own"], diff_ids=[d("diff-b1"), d("other"), d("diff-own")]),
            OLD,
            NEW,
            "diff_ids",
        ),
        (parts(["b1", "b2", "own"], history=[{"created_by": "x"}]), OLD, NEW, "history"),
        (parts(["b1", "b2", "own"], diff_ids=[d("a")]), OLD, NEW, "2 layers|3 layers"),
        (APP, OLD, parts(["b1"], arch="arm64"), "new base is linux/arm64"),
        (APP, OLD, parts(["b1"], layer_type="application/vnd.example.unknown"), "media type"),
        (
            APP,
            OLD,
            parts(["b1"], layer_type="application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
            "foreign",
        ),
        (
            ImageParts("application/vnd.docker.distribution.manifest.v1+json", b"{}", b"{}"),
            OLD,
            NEW,
            "not one",
        ),
        (ImageParts(OCI_MANIFEST, b"{}", b"not json"), OLD, NEW, "config is not JSON"),
    ],
)
def test_a_rebase_that_would_not_be_exact_is_refused_with_why(
    image: ImageParts, old: ImageParts, new: ImageParts, reason: str
) -> None:
    with pytest.raises(RebaseRefused, match=reason):
        rebase_platform(image, old, new, base_digest=NEW_DIGEST)


def test_the_old_base_digest_is_the_image_s_annotation_else_the_base_s_previous_else_refused() -> None:
    assert old_base_digest({BASE_DIGEST: "sha256:a"}, "sha256:b") == "sha256:a"
    assert old_base_digest({}, "sha256:b") == "sha256:b"
    with pytest.raises(RebaseRefused, match="old base digest is unknown"):
        old_base_digest({}, None)


def test_an_unknown_manifest_media_type_is_refused() -> None:
    check_media_type(OCI_INDEX, "x")
    with pytest.raises(RebaseRefused, match=r"application/vnd\.example"):
        check_media_type("application/vnd.example", "the image")


def entry(digest: str, arch: str, **extra: Any) -> dict[str, Any]:
    return {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": 1,
        "platform": {"os": "linux", "architecture": arch},
        **extra,
    }


def test_a_new_base_that_drops_a_platform_the_image_has_is_refused() -> None:
    entries = platform_entries({"manifests": [entry(d("a"), "amd64")]}, "the new base")
    assert pick_platform(entries, "linux/amd64", "the new base")["digest"] == d("a")
    with pytest.raises(RebaseRefused, match="no linux/arm64 manifest"):
        pick_platform(entries, "linux/arm64", "the new base")


def test_an_index_with_an_attestation_or_nothing_in_it_is_refused() -> None:
    attestation = entry(
        d("att"), "unknown", annotations={"vnd.docker.reference.type": "attestation-manifest"}
    )
    with pytest.raises(RebaseRefused, match="attestation"):
        platform_entries({"manifests": [entry(d("a"), "amd64"), attestation]}, "the image")
    with pytest.raises(RebaseRefused, match="no image manifest"):
        platform_entries({"manifests": []}, "the image")


def test_the_index_lists_the_rebased_manifests_in_place_of_the_old_ones() -> None:
    # Given a two-platform index and both platforms rebased
    amd = rebase_platform(APP, OLD, NEW, base_digest=NEW_DIGEST)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry(d("m1"), "amd64")],
             "annotations": {BASE_DIGEST: "sha256:old"}}  # fmt: skip
    body = rebase_index(json.dumps(index).encode(), OCI_INDEX, {d("m1"): amd}, base_digest=NEW_DIGEST)
    value = json.loads(body)
    # Then each entry names its rebased manifest, platform kept; the base annotation moved
    assert value["manifests"][0]["digest"] == amd.digest and value["manifests"][0]["size"] == len(
        amd.manifest
    )
    assert value["manifests"][0]["platform"]["architecture"] == "amd64"
    assert value["annotations"][BASE_DIGEST] == NEW_DIGEST
    with pytest.raises(RebaseRefused, match="no rebased manifest"):
        rebase_index(json.dumps(index).encode(), OCI_INDEX, {}, base_digest=NEW_DIGEST)
