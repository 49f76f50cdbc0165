"""CodeBuild adapter. moto's CodeBuild is a stub, so everything above this sees only `Builds`."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from patchprop.domain.errors import BuildStartFailed, BuildThrottled, PatchpropError
from patchprop.domain.events import BuildResult, parse_build_result

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
# The exported variable the buildspec fills with the rebuild script's result (compact JSON).
RESULT_VARIABLE = "PATCHPROP_RESULT"


class BuildLookupFailed(PatchpropError):
    """CodeBuild could not say what a build left behind (retry the event)."""


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

    def build_result(self, build_id: str) -> BuildResult | None:
        """The build's exported PATCHPROP_RESULT; None if it exported none (or not JSON).
        Raises UnreadableResult when it is JSON but not a result."""
        try:
            answer = self.client.batch_get_builds(ids=[build_id])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise BuildLookupFailed(f"CodeBuild BatchGetBuilds of {build_id}: {code}") from exc
        for build in answer.get("builds", []):
            for variable in build.get("exportedEnvironmentVariables", []):
                if variable.get("name") == RESULT_VARIABLE:
                    return parse_build_result(_json_object(variable.get("value", "")))
        return None

    def running_builds(self, projects: Collection[str]) -> int:
        """Builds of `projects` patchprop started that are IN_PROGRESS (for the cap's reconciler)."""
        return running_patchprop_builds(self.client, projects)


PAGES = 5  # ListBuildsForProject pages (100 ids each, newest first) looked at per project


def running_patchprop_builds(client: CodeBuildClient, projects: Collection[str]) -> int:
    """Builds IN_PROGRESS in `projects` that patchprop started (they carry PATCHPROP_REBUILD_ID)."""
    running = 0
    for project in sorted(projects):
        kwargs: dict = {"projectName": project, "sortOrder": "DESCENDING"}
        for _ in range(PAGES):
            try:
                page = client.list_builds_for_project(**kwargs)
                ids = page.get("ids", [])
                builds = client.batch_get_builds(ids=ids).get("builds", []) if ids else []
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                raise BuildLookupFailed(f"CodeBuild builds of {project}: {code}") from exc
            running += sum(1 for build in builds if _ours_running(build))
            if not page.get("nextToken") or not any(b.get("buildStatus") == "IN_PROGRESS" for b in builds):
                break
            kwargs["nextToken"] = page["nextToken"]
    return running


def _ours_running(build: Any) -> bool:
    variables = build.get("environment", {}).get("environmentVariables", [])
    return build.get("buildStatus") == "IN_PROGRESS" and any(
        v.get("name") == "PATCHPROP_REBUILD_ID" for v in variables
    )


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
