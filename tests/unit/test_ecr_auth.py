"""RegistryClient on Amazon ECR: the token from ecr:GetAuthorizationToken (moto), cached per
registry until shortly before it expires; denied or throttled is a registry error, never a skip."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import responses
from botocore.exceptions import ClientError
from moto import mock_aws

from patchprop.adapters.ecr_auth import TOKEN_MARGIN, EcrTokens, is_ecr_host
from patchprop.adapters.registry import RegistryClient
from patchprop.domain.errors import RegistryAuthError, RegistryRateLimited
from patchprop.domain.refs import parse_ref

ACCOUNT, OTHER = "123456789012", "210987654321"
HOST = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"
DIGEST = "sha256:" + "1" * 64
NOW = datetime(2026, 12, 2, tzinfo=UTC)


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeEcr:
    """An ECR API whose tokens expire 12 hours from NOW, or that answers with an error code."""

    def __init__(self, error: str | None = None) -> None:
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def get_authorization_token(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "test"}}, "GetAuthorizationToken")
        token = base64.b64encode(f"AWS:token-{len(self.calls)}".encode()).decode()
        return {"authorizationData": [{"authorizationToken": token, "expiresAt": NOW + timedelta(hours=12)}]}


def ecr_registry(rsps: responses.RequestsMock, host: str = HOST) -> list[str]:
    """An ECR-like registry: Basic challenge, accepts `AWS` with the tokens moto or FakeEcr issue."""
    seen: list[str] = []

    def manifest(request: Any) -> tuple[int, dict[str, str], str]:
        auth = request.headers.get("Authorization", "")
        seen.append(auth)
        user, _, password = base64.b64decode(auth.removeprefix("Basic ") or b"").decode().partition(":")
        if user == "AWS" and password.startswith((f"{ACCOUNT}-auth-token", "token-")):
            return 200, {"Docker-Content-Digest": DIGEST}, ""
        return 401, {"WWW-Authenticate": f'Basic realm="https://{host}/",service="ecr.amazonaws.com"'}, ""

    rsps.add_callback(responses.HEAD, re.compile(rf"https://{re.escape(host)}/v2/.*"), callback=manifest)
    return seen


def test_ecr_hosts_are_told_apart():
    assert is_ecr_host(HOST) and is_ecr_host("public.ecr.aws")
    assert is_ecr_host(f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn")
    assert not is_ecr_host("registry.example") and not is_ecr_host("dkr.ecr.eu-west-1.amazonaws.com")


def test_a_private_ecr_tag_resolves_with_moto_s_authorization_token():
    with mock_aws(), responses.RequestsMock() as rsps:
        seen = ecr_registry(rsps)
        client = RegistryClient()
        assert client.resolve_digest(parse_ref(f"{HOST}/team/golden:1")) == DIGEST
        assert client.resolve_digest(parse_ref(f"{HOST}/team/app:1")) == DIGEST
    assert len(seen) == 2 and all(s.startswith("Basic ") for s in seen)  # no 401 round trip
    assert client.ecr_tokens.fetches == 1  # one token for the registry, both repositories


def test_the_token_is_cached_per_registry_until_shortly_before_it_expires():
    ecr, clock = FakeEcr(), Clock()
    tokens = EcrTokens(clients=lambda service, region: ecr, clock=clock, wall_clock=lambda: NOW)
    client = RegistryClient(ecr_tokens=tokens)
    other = f"{OTHER}.dkr.ecr.us-west-2.amazonaws.com"
    with responses.RequestsMock() as rsps:
        ecr_registry(rsps)
        ecr_registry(rsps, other)
        client.resolve_digest(parse_ref(f"{HOST}/team/app:1"))
        clock.now += 12 * 3600 - TOKEN_MARGIN - 1  # still good
        client.resolve_digest(parse_ref(f"{HOST}/team/app:1"))
        assert [c["registryIds"] for c in ecr.calls] == [[ACCOUNT]]
        client.resolve_digest(parse_ref(f"{other}/team/app:1"))  # another account: its own token
        clock.now += 2  # within the margin: fetched again
        client.resolve_digest(parse_ref(f"{HOST}/team/app:1"))
    assert [c["registryIds"] for c in ecr.calls] == [[ACCOUNT], [OTHER], [ACCOUNT]]


def test_a_refused_token_is_forgotten_and_the_request_sent_again_with_a_new_one():
    ecr = FakeEcr()
    client = RegistryClient(ecr_tokens=EcrTokens(clients=lambda s, r: ecr, wall_clock=lambda: NOW))
    sent: list[str] = []
    with responses.RequestsMock() as rsps:

        def manifest(request: Any) -> tuple[int, dict[str, str], str]:
            sent.append(request.headers["Authorization"])
            if len(sent) == 1:  # the first token is refused (expired, say)
                return 401, {"WWW-Authenticate": f'Basic realm="https://{HOST}/"'}, ""
            return 200, {"Docker-Content-Digest": DIGEST}, ""

        rsps.add_callback(responses.HEAD, re.compile(rf"https://{HOST}/v2/.*"), callback=manifest)
        assert client.resolve_digest(parse_ref(f"{HOST}/team/app:1")) == DIGEST
    assert len(ecr.calls) == 2 and sent[0] != sent[1]


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("AccessDeniedException", RegistryAuthError),
        ("ThrottlingException", RegistryRateLimited),
    ],
)
def test_denied_or_throttled_is_a_registry_error_and_no_request_goes_out(code, error):
    client = RegistryClient(ecr_tokens=EcrTokens(clients=lambda s, r: FakeEcr(error=code)))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        seen = ecr_registry(rsps)
        with pytest.raises(error, match="GetAuthorizationToken"):
            client.resolve_digest(parse_ref(f"{HOST}/team/app:1"))
    assert seen == []


def test_credentials_in_the_secret_win_over_an_authorization_token():
    from patchprop.adapters.registry import Credentials

    ecr = FakeEcr()
    tokens = EcrTokens(clients=lambda s, r: ecr)
    client = RegistryClient({HOST: Credentials("AWS", "token-from-secret")}, ecr_tokens=tokens)
    with responses.RequestsMock() as rsps:
        ecr_registry(rsps)
        assert client.resolve_digest(parse_ref(f"{HOST}/team/app:1")) == DIGEST
    assert ecr.calls == []


def test_ecr_public_is_read_anonymously_when_its_token_is_refused():
    tokens = EcrTokens(clients=lambda s, r: FakeEcr(error="AccessDeniedException"))
    assert tokens.password("public.ecr.aws") is None
    assert tokens.password("registry.example") is None


def test_no_client_is_built_before_an_ecr_host_is_asked_for(monkeypatch: pytest.MonkeyPatch):
    built: list[str] = []
    monkeypatch.setattr(boto3, "client", lambda *a, **k: built.append(a[0]))
    RegistryClient()
    assert built == []
