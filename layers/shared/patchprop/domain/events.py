"""What other services send: Docker Hub webhooks, CodeBuild state changes, a build's result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError

from patchprop.domain.errors import PatchpropError
from patchprop.domain.models import Digest, DomainModel
from patchprop.domain.validation import first_problem

# ---- in: Docker Hub webhook -------------------------------------------------------------


class DockerHubPushData(DomainModel):
    tag: str = Field(min_length=1, max_length=128)
    pushed_at: float | None = None
    pusher: str | None = None


class DockerHubRepository(DomainModel):
    repo_name: str = Field(min_length=1, max_length=255)
    namespace: str | None = None
    name: str | None = None


class DockerHubPush(DomainModel):
    """The body Docker Hub posts. A hint only: it is unsigned and carries no digest."""

    push_data: DockerHubPushData
    repository: DockerHubRepository


# ---- in: CodeBuild state change (EventBridge) ------------------------------------------


class EnvironmentVariable(DomainModel):
    name: str
    value: str = ""
    type: str = "PLAINTEXT"


class BuildEnvironment(DomainModel):
    environment_variables: list[EnvironmentVariable] = Field(
        default_factory=list, alias="environment-variables"
    )


class BuildLogs(DomainModel):
    deep_link: str | None = Field(default=None, alias="deep-link")


class BuildAdditionalInformation(DomainModel):
    environment: BuildEnvironment = Field(default_factory=BuildEnvironment)
    logs: BuildLogs | None = None
    build_start_time: str | None = Field(default=None, alias="build-start-time")


class BuildStateChange(DomainModel):
    """`detail` of a "CodeBuild Build State Change" event."""

    build_status: str = Field(alias="build-status")
    build_id: str = Field(alias="build-id")
    project_name: str = Field(alias="project-name")
    additional_information: BuildAdditionalInformation = Field(
        default_factory=BuildAdditionalInformation, alias="additional-information"
    )

    @property
    def build_key(self) -> str:
        """The build id as StartBuild returns it (`project:uuid`); events carry the build ARN."""
        return self.build_id.rsplit(":build/", 1)[-1]

    def env(self, name: str) -> str | None:
        for var in self.additional_information.environment.environment_variables:
            if var.name == name:
                return var.value
        return None


# ---- in: what a rebuild leaves behind (buildspec/rebuild.sh) -----------------------------


class SmokeResult(DomainModel):
    """The image's smoke test (PATCHPROP_TEST_COMMAND) as the build ran it."""

    passed: bool
    exit: int | None = None
    timed_out: bool = False
    tail: str = ""  # the last 4 KB of its output


class BuildFailure(DomainModel):
    """Why the rebuild script failed: the step, its exit code, its message, its output's last lines."""

    step: str = ""
    exit: int | None = None
    message: str = ""
    tail: str = ""

    @property
    def reason(self) -> str:
        """One reason for the record, the tables and the alert's "Why:" line."""
        why = self.message or f"{self.step or 'the build'} failed with exit code {self.exit}"
        if self.step and self.step not in why:
            why = f"{self.step}: {why}"
        tail = self.tail.strip()
        return f"{why}\nLast lines of the build log:\n{tail}" if tail else why


class BuildResult(DomainModel):
    """The rebuild script's result: the pushed image and where its scan reports are.

    CodeBuild exports it as PATCHPROP_RESULT (BatchGetBuilds); the local CodeBuild reads the file.
    """

    image: str | None = None
    digest: Digest | None = None
    base: str | None = None
    scanned: bool = False
    report: str | None = None  # s3:// in AWS, file:// locally
    base_report: str | None = None
    sbom: str | None = None
    candidate: bool = False  # pushed by digest only: the tag moves when the gate promotes it
    smoke: SmokeResult | None = None
    failure: BuildFailure | None = None  # the script failed: the step and why (rebuild.sh's EXIT trap)


NO_RESULT = "the build left no result (PATCHPROP_RESULT)"


class UnreadableResult(PatchpropError):
    """The build left a result that is not one (a field missing or wrong); the message says which."""


def parse_build_result(raw: Mapping[str, Any] | None) -> BuildResult | None:
    """What a builder read back (CodeBuild's PATCHPROP_RESULT, the local result file) as a
    BuildResult; None when there is none. Raises UnreadableResult naming the first bad field."""
    if raw is None:
        return None
    try:
        return BuildResult.model_validate(dict(raw))
    except ValidationError as exc:
        raise UnreadableResult(
            f"the build's result cannot be read ({first_problem(exc, default='result')})"
        ) from None
