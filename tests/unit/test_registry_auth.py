"""RegistryClient against a fake registry (the `responses` library): auth, retries, errors."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests
import responses
from responses.registries import OrderedRegistry

from patchprop.adapters.registry import (
    MANIFEST_MEDIA_TYPES,
    Credentials,
    RegistryClient,
    credentials_from_json,
    is_loopback,
    parse_challenge,
    parse_retry_after,
)
from patchprop.domain.errors import (
    ManifestNotFound,
    RegistryAuthError,
    RegistryRateLimited,
    RegistryUnavailable,
)
from patchprop.domain.refs import parse_ref

HOST = "registry.example"
REF = parse_ref(f"{HOST}/team/app:1")
MANIFEST_URL = f"https://{HOST}/v2/team/app/manifests/1"
REALM = "https://auth.example/token"
DIGEST = "sha256:" + "1" * 64
PASSWORD = "pa55-w0rd-never-shown"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTokenRegistry:
    """A registry that wants a Bearer token from its realm, like Docker Hub."""

    def __init__(
        self,
        rsps: responses.RequestsMock,
        scope: str = "repository:team/app:pull",
        token_body: dict[str, Any] | None = None,
        accept_tokens: bool = True,
    ) -> None:
        self.scope = scope
        self.token_body = token_body if token_body is not None else {"expires_in": 300}
        self.accept_tokens = accept_tokens
        self.issued: list[str] = []
        self.token_requests: list[Any] = []
        self.manifest_requests: list[Any] = []
        rsps.add_callback(responses.HEAD, re.compile(rf"https://{HOST}/v2/.*"), callback=self.manifest)
        rsps.add_callback(responses.GET, re.compile(re.escape(REALM) + r".*"), callback=self.token)

    def manifest(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.manifest_requests.append(request)
        valid = self.accept_tokens and bool(self.issued)
        if not valid or request.headers.get("Authorization") != f"Bearer {self.issued[-1]}":
            challenge = f'Bearer realm="{REALM}",service="{HOST}",scope="{self.scope}"'
            return 401, {"WWW-Authenticate": challenge}, ""
        return 200, {"Docker-Content-Digest": DIGEST}, ""

    def token(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.token_requests.append(request)
        self.issued.append(f"tok-{len(self.issued) + 1}")
        body = {"token": self.issued[-1], **self.token_body}
        if "access_token" in self.token_body:
            del body["token"]
            body["access_token"] = self.issued[-1]
        return 200, {"Content-Type": "application/json"}, json.dumps(body)


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# --- Bearer token flow -------------------------------------------------------------------


@responses.activate
def test_bearer_challenge_fetches_token_anonymously_and_retries() -> None:
    # Given a registry that challenges for a Bearer token and no credentials
    fake = FakeTokenRegistry(responses.mock)
    client = RegistryClient()
    # When the digest is resolved
    digest = client.resolve_digest(REF)
    # Then the token came from the realm with service and scope, anonymously,
    # and the HEAD was retried once with it
    assert digest == DIGEST
    (token_request,) = fake.token_requests
    assert token_request.params == {"service": HOST, "scope": "repository:team/app:pull"}
    assert "Authorization" not in token_request.headers
    assert [r.headers.get("Authorization") for r in fake.manifest_requests] == [None, "Bearer tok-1"]


@responses.activate
def test_token_request_uses_basic_auth_when_credentials_are_configured() -> None:
    # Given credentials for that registry
    fake = FakeTokenRegistry(responses.mock)
    client = RegistryClient(credentials={HOST: Credentials("robot", PASSWORD)})
    # When the digest is resolved
    client.resolve_digest(REF)
    # Then the realm was asked with HTTP basic auth
    assert fake.token_requests[0].headers["Authorization"] == basic("robot", PASSWORD)


@responses.activate
def test_docker_hub_credentials_are_keyed_by_docker_io() -> None:
    # Given credentials keyed "docker.io" as written in references
    challenge = f'Bearer realm="{REALM}",service="registry.docker.io",scope="repository:library/node:pull"'
    responses.add(
        responses.HEAD,
        "https://registry-1.docker.io/v2/library/node/manifests/22",
        status=401,
        headers={"WWW-Authenticate": challenge},
    )
    responses.add(responses.GET, REALM, json={"token": "t"})
    responses.add(
        responses.HEAD,
        "https://registry-1.docker.io/v2/library/node/manifests/22",
        headers={"Docker-Content-Digest": DIGEST},
    )
    client = RegistryClient(credentials={"docker.io": Credentials("me", PASSWORD)})
    # When node:22 is resolved
    digest = client.resolve_digest(parse_ref("node:22"))
    # Then the Docker Hub credentials were used at the realm
    assert digest == DIGEST
    assert responses.calls[1].request.headers["Authorization"] == basic("me", PASSWORD)


@responses.activate
def test_token_is_reused_until_it_expires_then_refetched() -> None:
    # Given a token valid for 300 s and a controllable clock
    fake = FakeTokenRegistry(responses.mock, token_body={"expires_in": 300})
    clock = FakeClock()
    client = RegistryClient(clock=clock)
    client.resolve_digest(REF)
    # When resolving again well within the lifetime
    clock.now += 200
    client.resolve_digest(REF)
    # Then the cached token is sent straight away: no new challenge, no new token
    assert fake.issued == ["tok-1"]
    assert len(fake.manifest_requests) == 3
    assert fake.manifest_requests[-1].headers["Authorization"] == "Bearer tok-1"
    # When resolving after the token expired
    clock.now += 200
    client.resolve_digest(REF)
    # Then a new token is fetched and used
    assert fake.issued == ["tok-1", "tok-2"]
    assert fake.manifest_requests[-1].headers["Authorization"] == "Bearer tok-2"


@responses.activate
def test_token_without_expires_in_lives_60_seconds_minus_margin() -> None:
    # Given a token service that does not say how long tokens live, answering `access_token`
    fake = FakeTokenRegistry(responses.mock, token_body={"access_token": None})
    clock = FakeClock()
    client = RegistryClient(clock=clock)
    client.resolve_digest(REF)
    # When resolving 50 s later
    clock.now += 50
    client.resolve_digest(REF)
    # Then the token is still used
    assert fake.issued == ["tok-1"]
    # When resolving 58 s after issue (inside the safety margin of the 60 s default)
    clock.now += 8
    client.resolve_digest(REF)
    # Then it is refetched
    assert fake.issued == ["tok-1", "tok-2"]


@responses.activate
def test_tokens_are_cached_per_scope() -> None:
    # Given a token obtained for one repository
    fake = FakeTokenRegistry(responses.mock)
    client = RegistryClient(clock=FakeClock())
    client.resolve_digest(REF)
    # When another repository of the same registry is resolved
    fake.scope = "repository:team/other:pull"
    client.resolve_digest(parse_ref(f"{HOST}/team/other:1"))
    # Then a token for the other scope is fetched
    assert [r.params["scope"] for r in fake.token_requests] == [
        "repository:team/app:pull",
        "repository:team/other:pull",
    ]


@responses.activate
def test_scope_with_commas_is_passed_whole() -> None:
    # Given a challenge whose quoted scope contains a comma
    fake = FakeTokenRegistry(responses.mock, scope="repository:team/app:pull,push")
    # When the digest is resolved
    RegistryClient().resolve_digest(REF)
    # Then the realm got the whole scope
    assert fake.token_requests[0].params["scope"] == "repository:team/app:pull,push"


def test_parse_challenge_handles_quotes_commas_and_spacing() -> None:
    # Given challenges as different registries write them
    header = 'Bearer realm="https://a.example/token", service="reg", scope="repository:a/b:pull,push",error=x'
    # When parsed
    scheme, params = parse_challenge(header)
    # Then every parameter comes out whole
    assert scheme == "bearer"
    assert params == {
        "realm": "https://a.example/token",
        "service": "reg",
        "scope": "repository:a/b:pull,push",
        "error": "x",
    }
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


@responses.activate
def test_refused_after_authenticating_is_an_auth_error() -> None:
    # Given a registry that rejects every token (e.g. private repository, no access)
    FakeTokenRegistry(responses.mock, accept_tokens=False)
    client = RegistryClient(credentials={HOST: Credentials("robot", PASSWORD)})
    # When the digest is resolved
    with pytest.raises(RegistryAuthError) as caught:
        client.resolve_digest(REF)
    # Then the error names the reference and holds neither password nor token
    assert str(REF) in str(caught.value)
    assert PASSWORD not in str(caught.value) + repr(caught.value)
    assert "tok-1" not in str(caught.value) + repr(caught.value)


@responses.activate
def test_realm_refusing_credentials_is_an_auth_error() -> None:
    # Given a token service that refuses the configured credentials
    challenge = f'Bearer realm="{REALM}",service="{HOST}",scope="repository:team/app:pull"'
    responses.add(responses.HEAD, MANIFEST_URL, status=401, headers={"WWW-Authenticate": challenge})
    responses.add(responses.GET, REALM, status=401, json={"details": "incorrect username or password"})
    client = RegistryClient(credentials={HOST: Credentials("robot", PASSWORD)})
    # When the digest is resolved
    with pytest.raises(RegistryAuthError) as caught:
        client.resolve_digest(REF)
    # Then it is an auth error without the password
    assert PASSWORD not in str(caught.value)


@responses.activate
def test_basic_challenge_uses_credentials() -> None:
    # Given a registry with a Basic challenge (htpasswd) and credentials for it
    responses.add(responses.HEAD, MANIFEST_URL, status=401, headers={"WWW-Authenticate": 'Basic realm="r"'})
    responses.add(responses.HEAD, MANIFEST_URL, headers={"Docker-Content-Digest": DIGEST})
    client = RegistryClient(credentials={HOST: Credentials("robot", PASSWORD)})
    # When the digest is resolved
    digest = client.resolve_digest(REF)
    # Then the retry carried basic auth
    assert digest == DIGEST
    assert responses.calls[1].request.headers["Authorization"] == basic("robot", PASSWORD)


@responses.activate
def test_basic_challenge_without_credentials_is_an_auth_error() -> None:
    # Given a Basic challenge and no credentials
    responses.add(responses.HEAD, MANIFEST_URL, status=401, headers={"WWW-Authenticate": 'Basic realm="r"'})
    # When the digest is resolved
    # Then it fails as an auth problem without a pointless retry
    with pytest.raises(RegistryAuthError, match="credentials"):
        RegistryClient().resolve_digest(REF)
    assert len(responses.calls) == 1


# --- Rate limits ----------------------------------------------------------------------------


def test_small_retry_after_is_waited_then_retried_once() -> None:
    # Given a 429 with Retry-After: 1 then success
    slept: list[float] = []
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        rsps.add(responses.HEAD, MANIFEST_URL, status=429, headers={"Retry-After": "1"})
        rsps.add(responses.HEAD, MANIFEST_URL, headers={"Docker-Content-Digest": DIGEST})
        # When the digest is resolved
        digest = RegistryClient(sleep=slept.append).resolve_digest(REF)
    # Then the client slept exactly that long and got the digest
    assert digest == DIGEST
    assert slept == [1.0]


def test_large_retry_after_raises_rate_limited_without_sleeping() -> None:
    # Given a 429 asking to come back in two minutes
    slept: list[float] = []
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        rsps.add(responses.HEAD, MANIFEST_URL, status=429, headers={"Retry-After": "120"})
        # When the digest is resolved
        with pytest.raises(RegistryRateLimited) as caught:
            RegistryClient(sleep=slept.append, max_retry_wait=2.0).resolve_digest(REF)
        # Then the caller learns when to come back, and nothing waited or retried
        assert caught.value.retry_after == 120.0
        assert slept == []
        assert len(rsps.calls) == 1


def test_still_rate_limited_after_one_retry_raises() -> None:
    # Given a registry answering 429 twice
    slept: list[float] = []
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        rsps.add(responses.HEAD, MANIFEST_URL, status=429, headers={"Retry-After": "0.5"})
        rsps.add(responses.HEAD, MANIFEST_URL, status=429, headers={"Retry-After": "1.5"})
        # When the digest is resolved
        with pytest.raises(RegistryRateLimited) as caught:
            RegistryClient(sleep=slept.append).resolve_digest(REF)
    # Then it retried only once and reports the latest Retry-After
    assert slept == [0.5]
    assert caught.value.retry_after == 1.5


def test_retry_after_as_http_date() -> None:
    # Given Retry-After values as an HTTP date, in the future and in the past
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=120), usegmt=True)
    # When parsed
    # Then they become seconds from now, never negative; garbage falls back to the default
    assert 110 <= parse_retry_after(later) <= 121
    assert parse_retry_after(earlier) == 0.0
    assert parse_retry_after("soon", default=42.0) == 42.0
    assert parse_retry_after(None, default=42.0) == 42.0


# --- Other failures ----------------------------------------------------------------------


@responses.activate
def test_server_error_is_unavailable() -> None:
    # Given a registry answering 503
    responses.add(responses.HEAD, MANIFEST_URL, status=503)
    # When the digest is resolved
    # Then the registry is reported unavailable
    with pytest.raises(RegistryUnavailable, match="503"):
        RegistryClient().resolve_digest(REF)


@pytest.mark.parametrize("error", [requests.ConnectionError("refused"), requests.Timeout("slow")])
@responses.activate
def test_connection_errors_and_timeouts_are_unavailable(error: Exception) -> None:
    # Given a registry that cannot be reached
    responses.add(responses.HEAD, MANIFEST_URL, body=error)
    # When the digest is resolved
    # Then the registry is reported unavailable
    with pytest.raises(RegistryUnavailable, match=HOST):
        RegistryClient().resolve_digest(REF)


@responses.activate
def test_unknown_tag_is_manifest_not_found_naming_the_ref() -> None:
    # Given a registry without that tag
    responses.add(responses.HEAD, MANIFEST_URL, status=404)
    # When the digest is resolved
    with pytest.raises(ManifestNotFound) as caught:
        RegistryClient().resolve_digest(REF)
    # Then the error names the reference
    assert str(REF) in str(caught.value)


@responses.activate
def test_every_request_carries_the_timeout() -> None:
    # Given a token flow and a client with a specific timeout
    FakeTokenRegistry(responses.mock)
    # When the digest is resolved
    RegistryClient(timeout=3.5).resolve_digest(REF)
    # Then the HEADs and the token GET all had that timeout
    assert len(responses.calls) == 3
    timeouts = {call.request.req_kwargs["timeout"] for call in responses.calls}  # type: ignore[attr-defined]
    assert timeouts == {3.5}


@responses.activate
def test_head_asks_for_indexes_and_manifests() -> None:
    # Given a registry
    responses.add(responses.HEAD, MANIFEST_URL, headers={"Docker-Content-Digest": DIGEST})
    # When the digest is resolved
    RegistryClient().resolve_digest(REF)
    # Then the Accept header lists the OCI and Docker index and manifest types
    accept = responses.calls[0].request.headers["Accept"]
    assert [t.strip() for t in accept.split(",")] == list(MANIFEST_MEDIA_TYPES)


@responses.activate
def test_head_without_digest_header_falls_back_to_get_and_hashes_the_body() -> None:
    # Given a registry whose HEAD has no Docker-Content-Digest
    body = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
    responses.add(responses.HEAD, MANIFEST_URL)
    responses.add(responses.GET, MANIFEST_URL, body=body)
    # When the digest is resolved
    digest = RegistryClient().resolve_digest(REF)
    # Then it is the sha256 of the manifest bytes
    assert digest == "sha256:" + hashlib.sha256(body).hexdigest()


# --- Scheme ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "insecure", "url"),
    [
        ("node:22", (), "https://registry-1.docker.io/v2/library/node/manifests/22"),
        ("dhi.io/python:3.13", (), "https://dhi.io/v2/python/manifests/3.13"),
        ("127.0.0.1:5000/a/b:1", (), "http://127.0.0.1:5000/v2/a/b/manifests/1"),
        ("localhost:5000/a:1", (), "http://localhost:5000/v2/a/manifests/1"),
        ("[::1]:5000/a:1", (), "http://[::1]:5000/v2/a/manifests/1"),
        ("registry.lan:5000/a:1", ("registry.lan:5000",), "http://registry.lan:5000/v2/a/manifests/1"),
        ("registry.lan:5000/a:1", (), "https://registry.lan:5000/v2/a/manifests/1"),
        (f"dhi.io/python@{DIGEST}", (), f"https://dhi.io/v2/python/manifests/{DIGEST}"),
    ],
)
@responses.activate
def test_url_and_scheme(text: str, insecure: tuple[str, ...], url: str) -> None:
    # Given a reference and the configured insecure registries
    responses.add(responses.HEAD, url, headers={"Docker-Content-Digest": DIGEST})
    # When the digest is resolved
    RegistryClient(insecure_registries=insecure).resolve_digest(parse_ref(text))
    # Then the request went to the API host, over http only for loopback or insecure registries
    assert responses.calls[0].request.url == url


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1", True),
        ("127.1.2.3:80", True),
        ("[::1]:5000", True),
        ("[::1]", True),
        ("128.0.0.1:5000", False),
        ("localhost.example.com", False),
        ("dhi.io", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    # Given a registry host
    # When asked whether it is loopback
    # Then only localhost, 127.0.0.0/8 and ::1 are
    assert is_loopback(host) is expected


# --- Credentials ----------------------------------------------------------------------------


def test_credentials_never_show_the_password() -> None:
    # Given credentials
    creds = Credentials("robot", PASSWORD)
    # When printed
    # Then the user is visible and the password is not
    assert "robot" in repr(creds)
    assert PASSWORD not in repr(creds)
    assert PASSWORD not in str(creds)


def test_credentials_from_json_parses_every_registry() -> None:
    # Given a secret with two registries
    text = (
        '{"docker.io": {"username": "me", "password": "p1"}, "dhi.io": {"username": "u", "password": "p2"}}'
    )
    # When parsed
    creds = credentials_from_json(text)
    # Then both are there, keyed by host
    assert creds == {"docker.io": Credentials("me", "p1"), "dhi.io": Credentials("u", "p2")}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (json.dumps({"docker.io": {"username": "me"}}), "docker.io"),
        (json.dumps({"dhi.io": {"username": "me", "password": 5}}), "dhi.io"),
        (json.dumps({"dhi.io": {"username": "", "password": PASSWORD}}), "dhi.io"),
        (json.dumps({"ghcr.io": PASSWORD}), "ghcr.io"),
        (json.dumps([PASSWORD]), "JSON object"),
        (json.dumps({"docker.io": {"password": PASSWORD}})[:-2], "not valid JSON"),
    ],
)
def test_credentials_from_json_rejects_malformed_input(text: str, named: str) -> None:
    # Given a malformed secret
    # When parsed
    with pytest.raises(ValueError) as caught:
        credentials_from_json(text)
    # Then the error names the bad key and never echoes the password
    assert named in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert caught.value.__cause__ is None


@responses.activate
def test_credentials_are_never_sent_to_a_plain_http_realm() -> None:
    # Given a registry whose token service is plain http on another host, and credentials
    challenge = f'Bearer realm="http://auth.example/token",service="{HOST}",scope="repository:team/app:pull"'
    responses.add(responses.HEAD, MANIFEST_URL, status=401, headers={"WWW-Authenticate": challenge})
    client = RegistryClient(credentials={HOST: Credentials("robot", PASSWORD)})
    # When the digest is resolved
    with pytest.raises(RegistryAuthError, match="plain-http"):
        client.resolve_digest(REF)
    # Then the token service was never called
    assert [call.request.method for call in responses.calls] == ["HEAD"]


@responses.activate
def test_rate_limited_token_service_is_rate_limited() -> None:
    # Given a token service answering 429
    challenge = f'Bearer realm="{REALM}",service="{HOST}",scope="repository:team/app:pull"'
    responses.add(responses.HEAD, MANIFEST_URL, status=401, headers={"WWW-Authenticate": challenge})
    responses.add(responses.GET, REALM, status=429, headers={"Retry-After": "30"})
    # When the digest is resolved
    with pytest.raises(RegistryRateLimited) as caught:
        RegistryClient().resolve_digest(REF)
    # Then the caller learns when to come back
    assert caught.value.retry_after == 30.0


@responses.activate
def test_revoked_cached_token_is_replaced() -> None:
    # Given a cached token that the registry no longer accepts (e.g. revoked early)
    fake = FakeTokenRegistry(responses.mock, token_body={"expires_in": 300})
    client = RegistryClient(clock=FakeClock())
    client.resolve_digest(REF)
    fake.issued.append("tok-revoked-elsewhere")
    # When resolving again
    digest = client.resolve_digest(REF)
    # Then the 401 leads to a fresh token and success
    assert digest == DIGEST
    assert fake.manifest_requests[-1].headers["Authorization"] == f"Bearer {fake.issued[-1]}"
    assert len(fake.token_requests) == 2


@responses.activate
def test_malformed_digest_header_falls_back_to_get() -> None:
    # Given a registry (or proxy) whose HEAD carries a malformed Docker-Content-Digest
    body = b'{"schemaVersion":2}'
    responses.add(responses.HEAD, MANIFEST_URL, headers={"Docker-Content-Digest": "sha256:not-hex"})
    responses.add(responses.GET, MANIFEST_URL, body=body)
    # When the digest is resolved
    digest = RegistryClient().resolve_digest(REF)
    # Then the digest is computed from the manifest bytes instead
    assert digest == "sha256:" + hashlib.sha256(body).hexdigest()
