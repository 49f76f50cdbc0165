"""CodeBuild adapter. moto's CodeBuild is a stub, so everything above this sees only `Builds`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import boto3
from botocore.exceptions import ClientError

from patchprop.errors import BuildStartFailed, BuildThrottled

if TYPE_CHECKING:
    from mypy_boto3_codebuild import CodeBuildClient

# CodeBuild says "not now" with these; anything else is final.
_RETRYABLE = {
    "ThrottlingException",
    "AccountLimitExceededException",
    "TooManyRequestsException",
    "ServiceUnavailableException",
    "InternalFailure",
    "ServiceQuotaExceededException",
}


def source_override(location: str) -> dict[str, str]:
    """StartBuild's source overrides for a dependent's source location (one project, many repos)."""
    kinds = [
        ("s3://", "S3"),
        ("https://github.com/", "GITHUB"),
        ("https://gitlab.com/", "GITLAB"),
        ("https://bitbucket.org/", "BITBUCKET"),
        ("https://git-codecommit.", "CODECOMMIT"),
    ]
    for prefix, kind in kinds:
        if location.startswith(prefix):
            # S3 locations are written bucket/key, without the scheme.
            return {
                "sourceTypeOverride": kind,
                "sourceLocationOverride": location.removeprefix("s3://") if kind == "S3" else location,
            }
    return {"sourceLocationOverride": location}


class Builds(Protocol):
    """Starts builds. Implemented by CodeBuild here and by the local builder in `patchprop local`."""

    def start_build(
        self,
        project: str,
        env: Mapping[str, str],
        idempotency_token: str,
        source_version: str | None = None,
        source_location: str | None = None,
    ) -> str: ...


class CodeBuild:
    """AWS CodeBuild."""

    def __init__(self, client: CodeBuildClient | None = None) -> None:
        self.client = client or boto3.client("codebuild")

    def start_build(
        self,
        project: str,
        env: Mapping[str, str],
        idempotency_token: str,
        source_version: str | None = None,
        source_location: str | None = None,
    ) -> str:
        """Start a build and return its id; the same token within 5 minutes returns the same build."""
        kwargs: dict = {
            "projectName": project,
            "environmentVariablesOverride": [
                {"name": k, "value": v, "type": "PLAINTEXT"} for k, v in env.items()
            ],
            "idempotencyToken": idempotency_token,
        }
        if source_version:
            kwargs["sourceVersion"] = source_version
        if source_location:
            kwargs.update(source_override(source_location))
        try:
            answer = self.client.start_build(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _RETRYABLE:
                raise BuildThrottled(f"CodeBuild {code} starting {project}") from exc
            raise BuildStartFailed(f"CodeBuild refused to start {project}: {code}") from exc
        return answer["build"]["id"]
