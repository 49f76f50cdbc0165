"""Domain models: what comes in, what is stored, what goes out. Pydantic at every boundary."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from patchprop.domain.gate import parse_policy
from patchprop.domain.refs import parse_ref


def utcnow() -> datetime:
    return datetime.now(UTC)


def _normalized(text: str) -> str:
    return str(parse_ref(text))


def _policy(text: str | None) -> str | None:
    """A promotion policy as given, once it is known to read (patchprop.domain.gate syntax)."""
    if text is None or not text.strip():
        return None
    parse_policy(text)  # PolicyError is a ValueError: pydantic reports it against the field
    return text.strip()


def _tagged(text: str) -> str:
    ref = parse_ref(text)
    if ref.digest:
        raise ValueError(f"{text!r} must name a tag, not a digest: patchprop tracks tags that move")
    return str(ref)


# An image reference, normalized the way Docker does (docker.io/library/node:22).
ImageName = Annotated[str, AfterValidator(_normalized)]
# A tag-form reference (no digest): what a dependent is built FROM and what patchprop watches.
TaggedImage = Annotated[str, AfterValidator(_tagged)]
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
# When a rebuild is promoted: `fail_on=critical,high;ignore_unfixed=true` or the JSON form.
PolicyText = Annotated[str | None, Field(max_length=4096), AfterValidator(_policy)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# ---- in: Docker Hub webhook -------------------------------------------------------------


class DockerHubPushData(_Model):
    tag: str = Field(min_length=1, max_length=128)
    pushed_at: float | None = None
    pusher: str | None = None


class DockerHubRepository(_Model):
    repo_name: str = Field(min_length=1, max_length=255)
    namespace: str | None = None
    name: str | None = None


class DockerHubPush(_Model):
    """The body Docker Hub posts. A hint only: it is unsigned and carries no digest."""

    push_data: DockerHubPushData
    repository: DockerHubRepository


# ---- stored ------------------------------------------------------------------------------


class Base(_Model):
    """A tracked base image tag and the digest it pointed to when last seen."""

    ref: TaggedImage
    digest: Digest | None = None
    previous_digest: Digest | None = None
    changed_at: datetime | None = None


class Dependent(_Model):
    """An image of the user's, built FROM one or more tracked bases, and how to rebuild it."""

    image: TaggedImage
    project: str = Field(min_length=2, max_length=150, pattern=r"^[A-Za-z0-9][A-Za-z0-9\-_]*$")
    bases: list[TaggedImage] = Field(min_length=1)
    owner: str | None = Field(default=None, max_length=128)
    source_location: str | None = None
    source_version: str | None = None
    build_args: dict[str, str] = Field(default_factory=dict)
    auto_rebuild: bool = True
    # Policy: the least number of seconds between two rebuilds of this image (0: no limit).
    cooldown_seconds: int = Field(default=0, ge=0)
    # Policy: when a rebuild is promoted (None: the default, fail on new CRITICAL or HIGH).
    policy: PolicyText = None


class RebuildStatus(StrEnum):
    STARTED = "STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    # CodeBuild refused the build for good (unknown or forbidden project, bad input).
    NOT_STARTED = "NOT_STARTED"

    @property
    def final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {RebuildStatus.SUCCEEDED, RebuildStatus.FAILED, RebuildStatus.STOPPED, RebuildStatus.NOT_STARTED}
)


def rebuild_id_for(image: str, base: str, base_digest: str) -> str:
    """One rebuild per (dependent, base, base digest): the same inputs give the same id."""
    key = f"{image}\n{base}\n{base_digest}".encode()
    return "rb-" + hashlib.sha256(key).hexdigest()[:32]


# ---- messages between functions -------------------------------------------------------


class PatchRequest(_Model):
    """A base moved: `base` now points at `digest` instead of `previous_digest`."""

    base: TaggedImage
    digest: Digest
    previous_digest: Digest | None = None
    detected_by: Literal["webhook", "poller", "cascade"]
    detected_at: datetime = Field(default_factory=utcnow)

    @property
    def patch_id(self) -> str:
        return f"{self.base}@{self.digest}"


class _OnBaseDigest(_Model):
    base: TaggedImage
    base_digest: Digest

    @property
    def pinned_base(self) -> str:
        """`registry/repository@sha256:…`: what the build's FROM resolves to."""
        return parse_ref(self.base).with_digest(self.base_digest).pinned


class RebuildRequest(_OnBaseDigest):
    """Rebuild `image` on `base` pinned to `base_digest`. Sent once per dependent per patch."""

    rebuild_id: str
    image: TaggedImage
    previous_digest: Digest | None = None
    project: str
    owner: str | None = None
    source_location: str | None = None
    source_version: str | None = None
    build_args: dict[str, str] = Field(default_factory=dict)
    policy: str | None = None
    detected_at: datetime
    # The patch (`base@digest`) whose cascade this rebuild belongs to, if any.
    cascade: str | None = None
    cooldown_seconds: int = 0

    @classmethod
    def for_dependent(
        cls, dependent: Dependent, patch: PatchRequest, cascade: str | None = None
    ) -> RebuildRequest:
        return cls(
            cascade=cascade,
            cooldown_seconds=dependent.cooldown_seconds,
            rebuild_id=rebuild_id_for(dependent.image, patch.base, patch.digest),
            image=dependent.image,
            base=patch.base,
            base_digest=patch.digest,
            previous_digest=patch.previous_digest,
            project=dependent.project,
            owner=dependent.owner,
            source_location=dependent.source_location,
            source_version=dependent.source_version,
            build_args=dependent.build_args,
            policy=dependent.policy,
            detected_at=patch.detected_at,
        )


class Rebuild(_OnBaseDigest):
    """A rebuild as stored: what was asked, and what CodeBuild made of it."""

    rebuild_id: str
    image: TaggedImage
    previous_digest: Digest | None = None
    project: str
    owner: str | None = None
    status: RebuildStatus
    build_id: str | None = None
    reason: str | None = None
    log_url: str | None = None
    detected_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    notified: bool = False
    cascade: str | None = None
    policy: str | None = None
    # The verdict once it finished: promoted, blocked, failed, succeeded (not scanned) or
    # stopped, why, and the scan report it was judged on.
    outcome: str | None = None
    reasons: list[str] = Field(default_factory=list)
    report_uri: str | None = None
    # The digest the rebuilt image was pushed at (from the build's result).
    image_digest: Digest | None = None


# ---- in: CodeBuild state change (EventBridge) ------------------------------------------


class EnvironmentVariable(_Model):
    name: str
    value: str = ""
    type: str = "PLAINTEXT"


class BuildEnvironment(_Model):
    environment_variables: list[EnvironmentVariable] = Field(
        default_factory=list, alias="environment-variables"
    )


class BuildLogs(_Model):
    deep_link: str | None = Field(default=None, alias="deep-link")


class BuildAdditionalInformation(_Model):
    environment: BuildEnvironment = Field(default_factory=BuildEnvironment)
    logs: BuildLogs | None = None
    build_start_time: str | None = Field(default=None, alias="build-start-time")


class BuildStateChange(_Model):
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


class BuildResult(_Model):
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
