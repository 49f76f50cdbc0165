"""Amazon ECR registry credentials: `AWS` and a token from ecr:GetAuthorizationToken.

Private ECR (`<account>.dkr.ecr.<region>.amazonaws.com`) takes the token as a Basic password;
ECR Public (`public.ecr.aws`) takes it as the credentials for its Bearer token service (the
token comes from ecr-public, in us-east-1 only). A token is good for 12 hours: it is cached per
registry host (account and region) until TOKEN_MARGIN before it expires. Denied or throttled is
a registry error the caller retries (the poller's next round, Lambda's retry), never a skip;
except that ECR Public, which serves public images to anyone, is read anonymously when the role
may not get its token (logged: it is the lower anonymous pull rate).
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from patchprop.domain.errors import RegistryAuthError, RegistryRateLimited, RegistryUnavailable

logger = logging.getLogger(__name__)
PRIVATE_HOST = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr(-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$"
)
PUBLIC_HOST = "public.ecr.aws"
PUBLIC_REGION = "us-east-1"  # ecr-public's API lives there only
TOKEN_MARGIN = 300.0  # seconds before expiry a token is fetched again
DEFAULT_LIFETIME = 3600.0  # when expiresAt is missing or already past (a skewed clock)
THROTTLE_WAIT = 5.0  # seconds to come back after a throttled GetAuthorizationToken
_THROTTLED = {"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
_DENIED = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidParameterException",
}


def is_ecr_host(host: str) -> bool:
    return host == PUBLIC_HOST or PRIVATE_HOST.match(host) is not None


def is_private_ecr_host(host: str) -> bool:
    """A private ECR registry: Basic auth always, so no request needs its 401 first."""
    return PRIVATE_HOST.match(host) is not None


ClientFactory = Callable[[str, str], Any]  # (service, region) -> boto3 client


def _boto3_client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region)  # type: ignore[call-overload]


class EcrTokens:
    """Gets and caches ECR authorization tokens per registry host."""

    def __init__(
        self,
        clients: ClientFactory = _boto3_client,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._clients = clients
        self._clock = clock
        self._wall = wall_clock
        self._cache: dict[str, tuple[str, float]] = {}  # host -> (password, monotonic expiry)
        self._lock = threading.Lock()
        self.fetches = 0  # GetAuthorizationToken calls made (the cache's figure)

    def password(self, host: str) -> str | None:
        """The token to use as the `AWS` user's password on `host`; None for a non-ECR host (and
        for ECR Public when its token is refused: read anonymously)."""
        if not is_ecr_host(host):
            return None
        with self._lock:
            cached = self._cache.get(host)
            if cached and self._clock() < cached[1]:
                return cached[0]
            try:
                password, lifetime = self._fetch(host)
            except RegistryAuthError as exc:
                if host != PUBLIC_HOST:
                    raise
                logger.warning("reading %s anonymously: %s", host, exc)
                return None
            self._cache[host] = (password, self._clock() + max(lifetime - TOKEN_MARGIN, 0.0))
            return password

    def forget(self, host: str) -> None:
        """Drop the cached token of `host` (the registry refused it)."""
        with self._lock:
            self._cache.pop(host, None)

    def _fetch(self, host: str) -> tuple[str, float]:
        found = PRIVATE_HOST.match(host)
        service, region = ("ecr", found.group("region")) if found else ("ecr-public", PUBLIC_REGION)
        self.fetches += 1
        try:
            client = self._clients(service, region)
            if found:
                answer = client.get_authorization_token(registryIds=[found.group("account")])
                data = (answer.get("authorizationData") or [{}])[0]
            else:
                data = client.get_authorization_token().get("authorizationData") or {}
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _THROTTLED:
                raise RegistryRateLimited(
                    f"{service}:GetAuthorizationToken for {host} throttled", THROTTLE_WAIT
                ) from exc
            if code in _DENIED:
                raise RegistryAuthError(
                    f"{service}:GetAuthorizationToken for {host} refused: {code}"
                ) from exc
            raise RegistryUnavailable(f"{service}:GetAuthorizationToken for {host} failed: {code}") from exc
        except BotoCoreError as exc:
            raise RegistryUnavailable(f"{service} unreachable for {host}: {type(exc).__name__}") from exc
        return self._password(host, data), self._lifetime(data)

    def _password(self, host: str, data: dict[str, Any]) -> str:
        try:
            user, _, password = base64.b64decode(str(data["authorizationToken"])).decode().partition(":")
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            raise RegistryAuthError(f"GetAuthorizationToken for {host} gave no usable token") from exc
        if user != "AWS" or not password:
            raise RegistryAuthError(f"GetAuthorizationToken for {host} gave no usable token")
        return password

    def _lifetime(self, data: dict[str, Any]) -> float:
        expires = data.get("expiresAt")
        if not isinstance(expires, datetime):
            return DEFAULT_LIFETIME
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        left = (expires - self._wall()).total_seconds()
        # Past already: our clock or theirs is off. A refused token is forgotten (RegistryClient).
        return left if left > 0 else DEFAULT_LIFETIME
