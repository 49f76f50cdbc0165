"""The management API from the command line: SigV4-signed against AWS, plain against `patchprop local`.

The API's URL comes from `--api-url` or PATCHPROP_API_URL (the stack's ApiUrl output), else from
`.patchprop/local.json`, which `patchprop local` writes while it runs.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import click
import requests
from pydantic import BaseModel, ValidationError

API_URL_ENV = "PATCHPROP_API_URL"
LOCAL_STATE = Path(".patchprop") / "local.json"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TIMEOUT = 30.0  # seconds; API Gateway gives up after 29
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class ApiError(click.ClickException):
    """The API refused a request: its status, message and the field it named."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field

    def format_message(self) -> str:
        return f"{self.message} (HTTP {self.status})"


def find_local_state(state_file: Path = LOCAL_STATE) -> Path | None:
    """`.patchprop/local.json` here or in the nearest folder above, as git finds `.git`."""
    if state_file.is_absolute():
        return state_file if state_file.is_file() else None
    here = Path.cwd()
    return next((d / state_file for d in (here, *here.parents) if (d / state_file).is_file()), None)


def resolve_api_url(api_url: str | None = None, state_file: Path = LOCAL_STATE) -> str:
    """The API to talk to: the one given, PATCHPROP_API_URL, or the running `patchprop local`'s
    (its `.patchprop/` found here or in a folder above)."""
    url = api_url or os.environ.get(API_URL_ENV)
    state_file = (find_local_state(state_file) or state_file) if not url else state_file
    if not url and state_file.is_file():
        try:
            url = json.loads(state_file.read_text(encoding="utf-8")).get("api_url")
        except (ValueError, AttributeError) as exc:
            raise click.ClickException(f"{state_file} is not patchprop local's state file: {exc}") from exc
    if not url:
        raise click.UsageError(
            "no API to talk to: pass --api-url (the stack's ApiUrl output) or set PATCHPROP_API_URL, "
            "or start `patchprop local` in this directory (or one above it)"
        )
    return url.rstrip("/")


def is_local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOCAL_HOSTS


def region_of(url: str) -> str | None:
    """The region in an execute-api host name, if it is one."""
    found = _EXECUTE_API_HOST.match(urlsplit(url).hostname or "")
    return found.group(1) if found else None


class ApiClient:
    """JSON over HTTP to the management API; requests are SigV4-signed for execute-api when `sign`."""

    def __init__(
        self, base_url: str, sign: bool, region: str | None = None, timeout: float = TIMEOUT
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.sign = sign
        self.region = region
        self.timeout = timeout

    @classmethod
    def for_url(cls, api_url: str | None = None) -> ApiClient:
        """A client for the resolved API URL: plain on 127.0.0.1/localhost, signed anywhere else."""
        url = resolve_api_url(api_url)
        return cls(url, sign=not is_local(url), region=region_of(url))

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Mapping[str, Any], **params: Any) -> Any:
        return self.request("PATCH", path, params=params, body=body)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params=params)

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """The answer's JSON; ApiError for a 4xx/5xx, ClickException when the API cannot be reached."""
        url = self.base_url + path
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        if query:
            # Encoded once, here, exactly as signed: image references hold '/' and ':'.
            url += "?" + urlencode(sorted(query.items()), quote_via=quote)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.sign:
            headers = self._signed_headers(method, url, data, headers)
        try:
            answer = requests.request(method, url, data=data, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise click.ClickException(f"cannot reach the API at {self.base_url}: {exc}") from exc
        return _json_or_error(answer)

    def _signed_headers(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> dict[str, str]:
        import boto3
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        session = boto3.Session()
        credentials = session.get_credentials()
        if credentials is None:
            raise click.ClickException(
                "no AWS credentials to sign the request with (aws configure, AWS_PROFILE, or an SSO login)"
            )
        region = self.region or session.region_name
        if not region:
            raise click.ClickException("no AWS region to sign for: set AWS_REGION or AWS_DEFAULT_REGION")
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
        return dict(request.headers.items())


def _json_or_error(answer: requests.Response) -> Any:
    try:
        data = answer.json()
    except ValueError:
        data = None
    if answer.status_code < 400:
        if data is None:
            raise click.ClickException(
                f"the API answered {answer.status_code} without JSON: {answer.text[:200]}"
            )
        return data
    if isinstance(data, dict):
        # Ours: {"error", "field"}; API Gateway's own (IAM denials, throttling): {"message"}.
        message = str(data.get("error") or data.get("message") or data)
        field = data.get("field")
        raise ApiError(answer.status_code, message, str(field) if field else None)
    raise ApiError(answer.status_code, _one_line(answer))


def _one_line(answer: requests.Response) -> str:
    """A non-JSON error page (a proxy's or a load balancer's HTML) as one line: its title or its
    first words, never the raw page."""
    text = answer.text or ""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title:
        text = title.group(1)
    elif "<" in text:
        text = re.sub(r"<[^>]+>", " ", re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text))
    words = " ".join(html.unescape(text).split())
    reason = words[:200] + ("…" if len(words) > 200 else "")
    where = f"{answer.url}" if answer.url else "the API"
    return f"{reason or answer.reason or 'no answer'} (not the API's JSON: is {where} the patchprop API?)"


def register_dependent(
    image: str,
    bases: list[str],
    project: str,
    owner: str | None,
    build_args: Mapping[str, str],
    source_location: str | None = None,
    source_version: str | None = None,
    *,
    auto_rebuild: bool = True,
    cooldown_seconds: int = 0,
    policy: str | None = None,
    test_command: str | None = None,
    api_url: str | None = None,
    client: ApiClient | None = None,
    patch_by: str = "auto",
    rebase_safe: bool | None = None,
    rebase_unsafe_reason: str | None = None,
) -> dict[str, Any]:
    """Register (or replace) a dependent through the API; returns `{"dependent": …, "created": …}`."""
    body: dict[str, Any] = {
        "image": image,
        "bases": list(bases),
        "project": project,
        "owner": owner,
        "build_args": dict(build_args),
        "source_location": source_location,
        "source_version": source_version,
        "auto_rebuild": auto_rebuild,
        "cooldown_seconds": cooldown_seconds,
    }
    if policy:
        body["policy"] = policy
    if test_command:
        body["test_command"] = test_command
    if patch_by != "auto":
        body["patch_by"] = patch_by
    if rebase_safe is not None:  # what `patchprop discover` found (patchprop_cli.discover.rebase_safe)
        body["rebase_safe"] = rebase_safe
        if rebase_unsafe_reason:
            body["rebase_unsafe_reason"] = rebase_unsafe_reason
    from patchprop.logic.catalog import DependentRegistration

    check_request(DependentRegistration, body)
    answer: dict[str, Any] = (client or ApiClient.for_url(api_url)).post("/dependents", body)
    return answer


def check_request(model: type[BaseModel], body: Mapping[str, Any]) -> None:
    """The API's own checks (the same model, the same limits), before any request is sent: a
    refusal is the ApiError the API would answer, naming the field."""
    try:
        model.model_validate(dict(body))
    except ValidationError as exc:
        from patchprop.domain.validation import problems

        first = problems(exc)[0]
        raise ApiError(400, f"{first['field']}: {first['error']}", first["field"]) from exc
