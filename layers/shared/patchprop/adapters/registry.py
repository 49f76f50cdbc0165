"""Registry adapter: resolve image tags to digests over the OCI distribution API.

The only module that talks to registries. It speaks just enough of the protocol for
patchprop: a manifest HEAD (free on Docker Hub), the Bearer token dance and Basic auth
(for Amazon ECR, with a token from ecr:GetAuthorizationToken: adapters/ecr_auth.py), and
maps every failure onto the domain errors in `patchprop.domain.errors`.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests

from patchprop.adapters.ecr_auth import EcrTokens, is_ecr_host, is_private_ecr_host
from patchprop.domain.errors import (
    ManifestNotFound,
    RegistryAuthError,
    RegistryError,
    RegistryRateLimited,
    RegistryUnavailable,
)
from patchprop.domain.refs import ImageRef

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, when the token service does not say (distribution spec)
TOKEN_MARGIN = 5.0  # refetch a token this many seconds before it expires
DEFAULT_RETRY_AFTER = 60.0  # seconds, for a 429 without a usable Retry-After
_DIGEST = re.compile(r"sha(256:[0-9a-f]{64}|512:[0-9a-f]{128})")
_CHALLENGE_PARAM = re.compile(r'([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True)
class Credentials:
    """A registry user name and password (or access token); the password is never shown."""

    username: str
    password: str = field(repr=False)


def credentials_from_json(text: str) -> dict[str, Credentials]:
    """Parse `{"<registry host>": {"username": ..., "password": ...}, ...}`.

    Raises ValueError naming the offending key; never echoes a password.
    """
    try:
        data = json.loads(text)
    except (ValueError, TypeError):
        raise ValueError("registry credentials are not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError("registry credentials must be a JSON object keyed by registry host")
    result: dict[str, Credentials] = {}
    for host, entry in data.items():
        if not host or not isinstance(entry, dict):
            raise ValueError(f"registry credentials for {host!r} must be an object")
        for key in ("username", "password"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ValueError(f"registry credentials for {host!r}: {key!r} missing or not a string")
        result[host] = Credentials(entry["username"], entry["password"])
    return result


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split a `WWW-Authenticate` value into its scheme (lower case) and parameters."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): (m.group(2).replace('\\"', '"') if m.group(2) is not None else m.group(3))
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


def parse_retry_after(value: str | None, default: float = DEFAULT_RETRY_AFTER) -> float:
    """Seconds to wait from a `Retry-After` value (delta seconds or an HTTP date)."""
    if not value:
        return default
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and [::1], with or without a port."""
    hostname = urlsplit(f"//{host}").hostname or ""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _basic(creds: Credentials) -> str:
    pair = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


class RegistryClient:
    """Reads manifests' digests from OCI registries, with token caching and polite retries."""

    def __init__(
        self,
        credentials: Mapping[str, Credentials] | None = None,
        session: requests.Session | None = None,
        timeout: float = 5.0,
        insecure_registries: Iterable[str] = (),
        max_retry_wait: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        ecr_tokens: EcrTokens | None = None,
    ) -> None:
        self.credentials = dict(credentials or {})
        self.ecr_tokens = ecr_tokens or EcrTokens()  # for ECR hosts the secret does not name
        self.session = session or requests.Session()
        self.timeout = timeout
        self.insecure_registries = frozenset(insecure_registries)
        self.max_retry_wait = max_retry_wait
        self.clock = clock
        self.sleep = sleep
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}  # (host, scope) -> (token, expiry)
        self._scopes: dict[tuple[str, str], str] = {}  # (host, repository) -> scope last asked for
        self._basic_hosts: set[str] = set()  # hosts that asked for Basic auth

    def resolve_digest(self, ref: ImageRef) -> str:
        """The digest the registry currently serves for `ref` (an index digest for multi-arch)."""
        response = self._manifest_request("HEAD", ref)
        digest = response.headers.get("Docker-Content-Digest", "")
        if _DIGEST.fullmatch(digest):
            return digest
        response = self._manifest_request("GET", ref)
        return "sha256:" + hashlib.sha256(response.content).hexdigest()

    def base_url(self, ref: ImageRef) -> str:
        host = ref.api_host
        insecure = is_loopback(host) or {host, ref.registry} & self.insecure_registries
        return f"{'http' if insecure else 'https'}://{host}"

    def _manifest_request(self, method: str, ref: ImageRef) -> requests.Response:
        url = f"{self.base_url(ref)}/v2/{ref.repository}/manifests/{ref.tag or ref.digest}"
        response = self._authorized(method, url, ref)
        if response.status_code == 429:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            if wait > self.max_retry_wait:
                raise RegistryRateLimited(f"{ref.registry} rate limited {ref}; retry after {wait:g}s", wait)
            self.sleep(wait)
            response = self._authorized(method, url, ref)
            if response.status_code == 429:
                wait = parse_retry_after(response.headers.get("Retry-After"))
                raise RegistryRateLimited(f"{ref.registry} still rate limits {ref}", wait)
        if response.status_code == 404:
            raise ManifestNotFound(f"no manifest for {ref} in {ref.registry}")
        if response.status_code >= 500:
            raise RegistryUnavailable(f"{ref.registry} answered {response.status_code} for {ref}")
        if response.status_code >= 300:
            raise RegistryError(f"{ref.registry} answered {response.status_code} for {ref}")
        return response

    def _authorized(self, method: str, url: str, ref: ImageRef) -> requests.Response:
        """Send with cached auth; on a 401 challenge authenticate and retry once."""
        host = ref.api_host
        headers = {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
        sent_auth = self._cached_auth(ref, headers)
        response = self._send(method, url, headers)
        if response.status_code == 401:
            if sent_auth:
                self.ecr_tokens.forget(host)  # an expired ECR token: the retry gets a new one
            self._authenticate(ref, response.headers.get("WWW-Authenticate", ""), headers)
            sent_auth = True
            response = self._send(method, url, headers)
        if response.status_code in (401, 403):
            self._tokens.pop((host, self._scopes.get((host, ref.repository), "")), None)
            self.ecr_tokens.forget(host)
            how = "with" if sent_auth else "without"
            raise RegistryAuthError(
                f"{ref.registry} refused access to {ref} {how} credentials "
                f"({response.status_code}; the repository may not exist or may need credentials)"
            )
        return response

    def _cached_auth(self, ref: ImageRef, headers: dict[str, str]) -> bool:
        host = ref.api_host
        creds = self._credentials_for(ref)
        if creds and (host in self._basic_hosts or is_private_ecr_host(host)):
            headers["Authorization"] = _basic(creds)
            return True
        scope = self._scopes.get((host, ref.repository))
        cached = self._tokens.get((host, scope)) if scope is not None else None
        if cached and self.clock() < cached[1]:
            headers["Authorization"] = f"Bearer {cached[0]}"
            return True
        return False

    def _authenticate(self, ref: ImageRef, challenge: str, headers: dict[str, str]) -> None:
        scheme, params = parse_challenge(challenge)
        creds = self._credentials_for(ref)
        if scheme == "basic":
            if not creds:
                raise RegistryAuthError(f"{ref.registry} needs credentials for {ref}; none configured")
            self._basic_hosts.add(ref.api_host)
            headers["Authorization"] = _basic(creds)
            return
        if scheme != "bearer" or not params.get("realm", "").startswith(("https://", "http://")):
            raise RegistryAuthError(f"{ref.registry} sent an unusable auth challenge for {ref}")
        scope = params.get("scope", "")
        self._scopes[(ref.api_host, ref.repository)] = scope
        query = {k: params[k] for k in ("service", "scope") if params.get(k)}
        realm = params["realm"]
        # Never send a password in clear text, except to this machine.
        if creds and not (realm.startswith("https://") or is_loopback(urlsplit(realm).netloc)):
            raise RegistryAuthError(f"{ref.registry} wants credentials sent to a plain-http token service")
        try:
            answer = self.session.get(
                realm,
                params=query,
                auth=(creds.username, creds.password) if creds else None,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise RegistryUnavailable(
                f"token service of {ref.registry} unreachable: {type(exc).__name__}"
            ) from exc
        if answer.status_code == 429:
            wait = parse_retry_after(answer.headers.get("Retry-After"))
            raise RegistryRateLimited(f"token service of {ref.registry} rate limited us", wait)
        if answer.status_code >= 500:
            raise RegistryUnavailable(f"token service of {ref.registry} answered {answer.status_code}")
        try:
            body = answer.json() if answer.status_code == 200 else {}
        except ValueError:
            body = {}
        token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryAuthError(
                f"token service of {ref.registry} gave no token for {ref} ({answer.status_code})"
            )
        try:
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME
        # Expiry is measured from when we received the token, on our own (monotonic) clock:
        # the server's issued_at is wall-clock time and may be skewed from ours.
        self._tokens[(ref.api_host, scope)] = (token, self.clock() + lifetime - TOKEN_MARGIN)
        headers["Authorization"] = f"Bearer {token}"

    def _credentials_for(self, ref: ImageRef) -> Credentials | None:
        """The secret's credentials for the registry; for an ECR host it does not name, `AWS`
        with an ECR authorization token (GetAuthorizationToken's errors are registry errors)."""
        found = self.credentials.get(ref.registry) or self.credentials.get(ref.api_host)
        if found is None and is_ecr_host(ref.api_host):
            password = self.ecr_tokens.password(ref.api_host)
            return Credentials("AWS", password) if password else None
        return found

    def _send(self, method: str, url: str, headers: dict[str, str]) -> requests.Response:
        try:
            return self.session.request(method, url, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            host = urlsplit(url).netloc
            raise RegistryUnavailable(f"registry {host} unreachable: {type(exc).__name__}") from exc
