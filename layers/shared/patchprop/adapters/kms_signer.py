"""The `Signer` port in AWS: a promoted digest signed with a KMS key, in Python (Lambda has no cosign).

It writes what `cosign sign --key awskms:///<key>` writes (domain/cosign.py): the simple-signing
payload as a layer of the `sha256-<hex>.sig` manifest, its ECDSA P-256 SHA-256 signature from
KMS `Sign` in the layer's annotation, appended to the signatures already there. Nothing goes to a
transparency log (like `--tlog-upload=false`): verify with `cosign verify --key <public key>
--insecure-ignore-tlog=true`, or patchprop's own verifier (adapters/base_sources.py).

Signing the same digest again adds nothing when a signature of it by this key is there already
(a redelivered promotion). Registry writes go through the RegistryWriter that attaches
referrers (ECR's auth included).
"""

from __future__ import annotations

import base64
import re
from functools import cached_property
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.hazmat.primitives import serialization

from patchprop.adapters.base_sources import verify_payload
from patchprop.adapters.registry_write import RegistryWriter
from patchprop.domain.cosign import (
    SIGNATURE_ANNOTATION,
    payload,
    signature_config,
    signature_layer,
    signature_manifest,
    signature_ref,
    signed_digest,
)
from patchprop.domain.errors import ManifestNotFound, PatchpropError, RegistryError
from patchprop.domain.oci import OCI_MANIFEST
from patchprop.domain.refs import ImageRef

SIGNING_ALGORITHM = "ECDSA_SHA_256"
MAX_RAW_MESSAGE = 4096  # KMS Sign's limit for MessageType RAW
_KEY_REGION = re.compile(r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):")


class SigningFailed(PatchpropError):
    """KMS or the registry refused a signature; the promotion stands, the failure is told."""


class KmsSigner:
    """Signs `registry/repo@sha256:…` with the KMS key `key_id` (an ARN) in cosign's format."""

    def __init__(self, key_id: str, writer: RegistryWriter, kms: Any | None = None) -> None:
        self.key_id = key_id
        self.writer = writer
        self._kms = kms

    @cached_property
    def kms(self) -> Any:
        return self._kms if self._kms is not None else kms_client(self.key_id)

    @cached_property
    def public_pem(self) -> bytes:
        return public_pem(self.kms, self.key_id)

    def sign(self, image: ImageRef) -> str | None:
        """Sign the pinned `image`; returns the signature manifest's reference (`repo:sha256-….sig`)."""
        if not image.digest:
            raise ValueError(f"{image} is not pinned to a digest: only a promoted digest is signed")
        signed = payload(image)
        where = signature_ref(image)
        layers = self._existing_layers(where)
        if any(self._signs(image, layer, signed) for layer in layers):
            return str(where)  # signed by this key already: nothing appended
        layer = signature_layer(signed, self._kms_sign(signed))
        layers = [*layers, layer]
        config = signature_config(layers)
        self.writer.push_blob(image, signed)
        self.writer.push_blob(image, config)
        self.writer.put_manifest(where, where.tag or "", signature_manifest(layers, config), OCI_MANIFEST)
        return str(where)

    def _kms_sign(self, signed: bytes) -> str:
        if len(signed) > MAX_RAW_MESSAGE:
            raise SigningFailed(f"the payload is {len(signed)} bytes, over KMS Sign's {MAX_RAW_MESSAGE}")
        try:
            answer = self.kms.sign(
                KeyId=self.key_id, Message=signed, MessageType="RAW", SigningAlgorithm=SIGNING_ALGORITHM
            )
        except (ClientError, BotoCoreError) as exc:
            raise SigningFailed(f"KMS did not sign with {self.key_id}: {exc}") from exc
        return base64.b64encode(answer["Signature"]).decode()

    def _existing_layers(self, where: ImageRef) -> list[dict[str, Any]]:
        """The signature layers at the `.sig` tag now ([] when there is none)."""
        try:
            manifest = self.writer.get_manifest(where).json()
        except ManifestNotFound:
            return []
        layers = manifest.get("layers")
        if manifest.get("mediaType", OCI_MANIFEST) != OCI_MANIFEST or not isinstance(layers, list):
            raise RegistryError(f"{where} is not a signature manifest: not overwriting it")
        return [layer for layer in layers if isinstance(layer, dict)]

    def _signs(self, image: ImageRef, layer: dict[str, Any], signed: bytes) -> bool:
        """Whether `layer` is a signature of this payload by this key."""
        signature = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
        if not signature or layer.get("digest") != signature_layer(signed, "")["digest"]:
            return False
        blob = self.writer.get_blob(image, str(layer["digest"]))
        return signed_digest(blob) == image.digest and verify_payload(self.public_pem, blob, signature)


def kms_client(key_id: str) -> Any:
    """A KMS client in the key's own region (from its ARN), wherever the function runs."""
    match = _KEY_REGION.match(key_id)
    return boto3.client("kms", region_name=match["region"]) if match else boto3.client("kms")


def public_pem(kms: Any, key_id: str) -> bytes:
    """The public half of a KMS key (GetPublicKey, DER) as PEM: what `cosign verify --key` takes."""
    try:
        der = kms.get_public_key(KeyId=key_id)["PublicKey"]
    except (ClientError, BotoCoreError) as exc:
        raise SigningFailed(f"KMS did not give the public key of {key_id}: {exc}") from exc
    key = serialization.load_der_public_key(der)
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
