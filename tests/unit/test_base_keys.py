"""Base keys read from SSM, Secrets Manager and KMS (moto), and from PEM text or a file; a key
that cannot be read names its reference and never its text."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from moto import mock_aws

from patchprop.adapters.base_keys import read_key
from patchprop.domain.base_check import SignatureError

REGION = "us-east-1"


def keypair() -> tuple[bytes, bytes]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secret = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return public, secret


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def test_a_key_in_an_ssm_secure_string_is_read_decrypted(aws) -> None:
    public, _ = keypair()
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/patchprop/keys/python", Value=public.decode(), Type="SecureString")
    assert read_key("ssm:/patchprop/keys/python") == public.strip()
    arn = ssm.get_parameter(Name="/patchprop/keys/python")["Parameter"]["ARN"]
    assert read_key(f"ssm:{arn}") == public.strip()


def test_a_key_in_secrets_manager_is_read_by_name_or_arn_string_or_binary(aws) -> None:
    public, _ = keypair()
    sm = boto3.client("secretsmanager", region_name=REGION)
    arn = sm.create_secret(Name="patchprop/python.pub", SecretString=public.decode())["ARN"]
    sm.create_secret(Name="patchprop/binary.pub", SecretBinary=public)
    assert read_key("secretsmanager:patchprop/python.pub") == public.strip()
    assert read_key(f"secretsmanager:{arn}") == public.strip()
    assert read_key("secretsmanager:patchprop/binary.pub") == public


def test_a_kms_key_is_read_as_its_public_key(aws) -> None:
    kms = boto3.client("kms", region_name=REGION)
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    pem = read_key(f"awskms:///{key['Arn']}")
    der = kms.get_public_key(KeyId=key["KeyId"])["PublicKey"]
    assert serialization.load_pem_public_key(pem) == serialization.load_der_public_key(der)


def test_a_key_that_cannot_be_read_names_its_reference_never_its_text(aws, tmp_path: Path) -> None:
    public, private = keypair()
    with pytest.raises(SignatureError, match=r"ssm:/patchprop/missing cannot be read: ParameterNotFound"):
        read_key("ssm:/patchprop/missing")
    with pytest.raises(SignatureError, match=r"secretsmanager:nope cannot be read: ResourceNotFound"):
        read_key("secretsmanager:nope")
    # A secret that holds something else (here a private key): said, its text not shown
    sm = boto3.client("secretsmanager", region_name=REGION)
    sm.create_secret(Name="patchprop/wrong", SecretString=private.decode())
    with pytest.raises(SignatureError) as wrong:
        read_key("secretsmanager:patchprop/wrong")
    assert "secretsmanager:patchprop/wrong is not a PEM public key" in str(wrong.value)
    assert "PRIVATE" not in str(wrong.value) and private.decode()[40:80] not in str(wrong.value)
    # Pasted PEM text that is not a key: the message does not repeat it
    garbled = public.decode().replace("A", "%")
    with pytest.raises(SignatureError) as pasted:
        read_key(garbled)
    assert str(pasted.value) == "the PEM key in BASE_CHECKS is not a PEM public key"
    with pytest.raises(SignatureError, match=r"the key file:.*none\.pub cannot be read"):
        read_key(str(tmp_path / "none.pub"))
    (tmp_path / "k.pub").write_bytes(public)
    assert read_key(f"file://{tmp_path / 'k.pub'}") == public
