"""Promoted digests signed in AWS with a KMS key (adapters/kms_signer.py): moto's KMS, the real
local registry, and patchprop's own cosign verifier (adapters/base_sources.py) with the key's
public half from KMS GetPublicKey."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from support import FakeBuilds, drain
from test_base_sources_registry import sign as cosign_sign
from test_by_hand import promote
from test_scan_gate import finish, report

from patchprop import config, wiring
from patchprop.adapters.base_sources import BaseRegistry, BaseSourcesAdapter
from patchprop.adapters.dynamodb import Store
from patchprop.adapters.kms_signer import KmsSigner, public_pem
from patchprop.adapters.registry_write import RegistryWriter
from patchprop.adapters.sqs import Queue
from patchprop.domain.base_check import SignatureError
from patchprop.domain.cosign import signature_ref
from patchprop.domain.errors import ManifestNotFound
from patchprop.domain.models import Dependent, PatchRequest, RebuildRequest
from patchprop.domain.records import Finish, Outcome, Rebuild, RebuildStatus
from patchprop.domain.refs import ImageRef, parse_ref
from patchprop_local import oci
from patchprop_local.registry_server import LocalRegistry

pytestmark = pytest.mark.integration


def unique(name: str) -> str:
    return f"k{datetime.now(UTC).strftime('%H%M%S%f')}/{name}"


def kms_key(usage: str = "SIGN_VERIFY", spec: str = "ECC_NIST_P256") -> str:
    kms = boto3.client("kms", region_name="us-east-1")
    return str(kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["Arn"])


def verifies(image: ImageRef, pem: bytes) -> bool:
    try:
        BaseSourcesAdapter(BaseRegistry(), reports=None, reports_root=None).verify(image, pem.decode())  # type: ignore[arg-type]
    except SignatureError:
        return False
    return True


def signature_layers(image: ImageRef) -> list[dict[str, Any]]:
    try:
        manifest = RegistryWriter().get_manifest(signature_ref(image)).json()
    except ManifestNotFound:
        return []
    return list(manifest["layers"])


@pytest.fixture
def signing_key(aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A KMS P-256 signing key, named to the handlers as the template does (SIGNING_KEY_ARN)."""
    arn = kms_key()
    monkeypatch.setenv("SIGNING_KEY_ARN", arn)
    config.env_vars.cache_clear()
    wiring.reset()
    yield arn
    config.env_vars.cache_clear()
    wiring.reset()


def test_a_kms_signature_is_cosigns_format_verifies_and_is_not_added_twice(
    aws, local_registry: LocalRegistry
) -> None:
    # Given a pushed image, a KMS signing key and its public half as PEM (GetPublicKey)
    repo = unique("app")
    digest = oci.push_image(local_registry.address, repo, "1", {"etc/app": b"v1"})
    image = parse_ref(f"{local_registry.address}/{repo}@{digest}")
    arn = kms_key()
    pem = public_pem(boto3.client("kms", region_name="us-east-1"), arn)
    # When the digest is signed
    where = KmsSigner(arn, RegistryWriter()).sign(image)
    # Then its signature is under cosign's tag, one simple-signing layer of cosign's exact payload
    assert where == f"{image.name}:sha256-{digest.removeprefix('sha256:')}.sig"
    (layer,) = signature_layers(image)
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = RegistryWriter().get_blob(image, layer["digest"])
    expected = {
        "critical": {
            "identity": {"docker-reference": image.name},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    assert payload == json.dumps(expected, separators=(",", ":")).encode()  # Go's json.Marshal, in order
    # And patchprop's verifier accepts it with the KMS key, and refuses it with another key
    assert verifies(image, pem)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert not verifies(
        image, other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    # And signing it again (a redelivered promotion) appends nothing
    KmsSigner(arn, RegistryWriter()).sign(image)
    assert signature_layers(image) == [layer]


def test_a_kms_signature_is_appended_to_the_signatures_already_there(
    aws, local_registry: LocalRegistry
) -> None:
    # Given a digest someone signed with cosign and their own key
    repo = unique("app")
    digest = oci.push_image(local_registry.address, repo, "1", {"etc/app": b"v2"})
    image = parse_ref(f"{local_registry.address}/{repo}@{digest}")
    theirs = ec.generate_private_key(ec.SECP256R1())
    cosign_sign(local_registry.address, repo, digest, theirs)
    # When patchprop signs it with its KMS key
    arn = kms_key()
    KmsSigner(arn, RegistryWriter()).sign(image)
    # Then both signatures are there, and each verifies with its own key
    assert len(signature_layers(image)) == 2
    their_pem = theirs.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert verifies(image, their_pem)
    assert verifies(image, public_pem(boto3.client("kms", region_name="us-east-1"), arn))
    # And the signature's base64 annotation decodes (a DER ECDSA signature from KMS)
    annotation = signature_layers(image)[1]["annotations"]["dev.cosignproject.cosign/signature"]
    assert base64.b64decode(annotation)[0] == 0x30


def _started(stack, builds: FakeBuilds, address: str, names: list[str]) -> list[tuple[RebuildRequest, str]]:
    """Each image on its tag in the local registry, a candidate pushed by digest, its rebuild started."""
    store = Store(stack.refs["PatchpropTable"])
    patch = PatchRequest(base=f"{address}/k/base:1", digest="sha256:" + "1" * 64, detected_by="webhook")
    started = []
    for name in names:
        repo = unique(name)
        oci.push_image(address, repo, "1", {"etc/app": b"old"})
        candidate = oci.push_image(address, repo, "candidate-scratch", {"etc/app": b"new"})
        policy = "fail_on=critical" if name == "lenient" else None
        dependent = Dependent(
            image=f"{address}/{repo}:1", project="patchprop-rebuild", bases=[patch.base], policy=policy
        )
        store.put_dependent(dependent)
        started.append((RebuildRequest.for_dependent(dependent, patch), candidate))
    store.record_patch(patch, rebuilds=len(started))
    Queue(stack.refs["RebuildQueue"]).send_batch([r for r, _ in started])
    drain(stack, "RebuildQueue", "rebuilder")
    return started


def test_the_gate_signs_the_digest_it_promoted_and_never_a_blocked_candidate(
    aws, builds: FakeBuilds, local_registry: LocalRegistry, signing_key: str
) -> None:
    # Given two candidates pushed by digest, one whose policy lets a new HIGH through
    (lenient, promoted), (strict, blocked) = _started(
        aws, builds, local_registry.address, ["lenient", "strict"]
    )
    # When both builds end with the same new HIGH
    for request, candidate in ((lenient, promoted), (strict, blocked)):
        finish(builds, request, report=report("rebuilt.trivy.json"), digest=candidate, candidate=True)
    store = Store(aws.refs["PatchpropTable"])
    assert store.get_rebuild(lenient.rebuild_id).outcome is Outcome.PROMOTED
    assert store.get_rebuild(strict.rebuild_id).outcome is Outcome.BLOCKED
    # Then the promoted digest is signed with the KMS key, and its rebuild says so
    pem = public_pem(boto3.client("kms", region_name="us-east-1"), signing_key)
    assert verifies(parse_ref(lenient.image).with_digest(promoted), pem)
    assert store.get_rebuild(lenient.rebuild_id).signed is True
    # And the blocked candidate has no signature at all
    assert signature_layers(parse_ref(strict.image).with_digest(blocked)) == []


@pytest.fixture
def held(aws, local_registry: LocalRegistry) -> dict[str, Any]:
    """A finished rebuild the gate blocked: the tag on the old digest, its candidate by digest."""
    address, repo = local_registry.address, unique("golden")
    old = oci.push_image(address, repo, "1", {"etc/golden": b"old"})
    new = oci.push_image(address, repo, "candidate-scratch", {"etc/golden": b"new"})
    store = Store(aws.refs["PatchpropTable"])
    dependent = Dependent(
        image=f"{address}/{repo}:1", bases=[f"{address}/k/base:1"], project="patchprop-rebuild"
    )
    store.put_dependent(dependent)
    request = RebuildRequest.for_dependent(
        dependent, PatchRequest(base=dependent.bases[0], digest="sha256:" + "2" * 64, detected_by="poller")
    )
    build_id = f"patchprop-rebuild:{request.rebuild_id}"
    store.record_started(Rebuild.started(request, build_id, tag_digest=old))
    finished = Finish(
        status=RebuildStatus.SUCCEEDED,
        build_id=build_id,
        outcome=Outcome.BLOCKED,
        reasons=["x"],
        image_digest=new,
    )
    store.record_finished(request.rebuild_id, finished)
    return {"image": parse_ref(dependent.image), "new": new, "rebuild_id": request.rebuild_id, "store": store}


def test_a_kms_refusal_leaves_the_promotion_by_hand_standing_and_says_why(
    held: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a key KMS will not sign with (an encryption key)
    monkeypatch.setenv("SIGNING_KEY_ARN", kms_key(usage="ENCRYPT_DECRYPT", spec="SYMMETRIC_DEFAULT"))
    config.env_vars.cache_clear()
    wiring.reset()
    # When a person promotes the held rebuild
    status, answer = promote(held["rebuild_id"], "accepted")
    # Then it is promoted all the same, unsigned, and its reasons say signing failed
    assert status == 200, answer
    rebuild = held["store"].get_rebuild(held["rebuild_id"])
    assert rebuild.on_tag and rebuild.signed is False
    assert any(r.startswith("Signing ") and "failed" in r for r in rebuild.reasons), rebuild.reasons
    assert signature_layers(held["image"].with_digest(held["new"])) == []
    # And it is counted (the handler's metrics, as CloudWatch's embedded format)
    assert '"SigningFailed"' in capsys.readouterr().out


def test_promoting_by_hand_signs_the_promoted_digest(held: dict[str, Any], signing_key: str) -> None:
    # Given the held rebuild's candidate, unsigned
    candidate = held["image"].with_digest(held["new"])
    assert signature_layers(candidate) == []
    # When a person promotes it
    assert promote(held["rebuild_id"], "accepted")[0] == 200
    # Then the digest now on the tag is signed with the KMS key
    assert verifies(candidate, public_pem(boto3.client("kms", region_name="us-east-1"), signing_key))
    assert held["store"].get_rebuild(held["rebuild_id"]).signed is True
