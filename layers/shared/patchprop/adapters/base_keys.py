"""A base's public key, where BASE_CHECKS says it is (domain/key_ref.py): PEM text, a file, an
SSM parameter (SecureString, decrypted), a Secrets Manager secret, or a KMS key (GetPublicKey).

Read on each check (a rotation takes effect at the next one); clients are made on the call, in
the region of an ARN when one is given. A key that cannot be read is a SignatureError naming the
reference, never the key's text: the check fails closed for that base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.hazmat.primitives import serialization

from patchprop.domain.base_check import SignatureError
from patchprop.domain.key_ref import KeyRef, KeyRefError, parse_key_ref


def read_key(key: str) -> bytes:
    """The PEM public key `key` names (see the module)."""
    try:
        ref = parse_key_ref(key)
    except KeyRefError as exc:
        raise SignatureError(f"the key reference does not read: {exc}") from exc
    try:
        pem = _fetch(ref, key)
    except OSError as exc:
        raise SignatureError(f"{ref.said} cannot be read: {exc.strerror or type(exc).__name__}") from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        why = f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
        raise SignatureError(f"{ref.said} cannot be read: {why}") from exc
    except BotoCoreError as exc:
        raise SignatureError(f"{ref.said} cannot be read: {type(exc).__name__}") from exc
    try:
        serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{ref.said} is not a PEM public key") from exc
    return pem


def _fetch(ref: KeyRef, key: str) -> bytes:
    if ref.scheme == "pem":
        return key.strip().encode()
    if ref.scheme == "file":
        return Path(ref.name).read_bytes()
    client = _client(ref)
    if ref.scheme == "ssm":
        answer = client.get_parameter(Name=ref.name, WithDecryption=True)
        return str(answer["Parameter"]["Value"]).strip().encode()
    if ref.scheme == "secretsmanager":
        secret = client.get_secret_value(SecretId=ref.name)
        text = secret.get("SecretString")
        return text.strip().encode() if text is not None else bytes(secret["SecretBinary"])
    der = client.get_public_key(KeyId=ref.name)["PublicKey"]  # awskms: SubjectPublicKeyInfo, DER
    public = serialization.load_der_public_key(bytes(der))
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _client(ref: KeyRef) -> Any:
    service = {"ssm": "ssm", "secretsmanager": "secretsmanager", "awskms": "kms"}[ref.scheme]
    parts = ref.name.split(":")
    region = parts[3] if ref.name.startswith("arn:") and len(parts) > 4 and parts[3] else None
    return boto3.client(service, region_name=region) if region else boto3.client(service)  # type: ignore[call-overload]
