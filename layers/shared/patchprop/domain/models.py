"""Domain models: the catalog (bases, dependents) and the messages between functions.

What is stored of a rebuild, a patch and a cascade is in `records`; what other services send
in `events`. Pydantic at every boundary."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, GetCoreSchemaHandler, WithJsonSchema
from pydantic_core import core_schema

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


# ---- limits: what one registration may hold (README "Limits", and openapi.json from these) ----
# Each is far above real use and keeps one dependent, its edges and their write within
# DynamoDB's limits (an item under 400 KB, a transaction under 100 actions and 4 MB).
MAX_REF_LENGTH = 384  # Docker: a repository with its registry under 256, a tag up to 128
MAX_BASES = 20
MAX_BUILD_ARGS = 50
MAX_BUILD_ARG_NAME = 128
MAX_BUILD_ARG_VALUE = 1024
MAX_OWNER_LENGTH = 128
MAX_SOURCE_LOCATION = 2048
MAX_SOURCE_VERSION = 256
MAX_POLICY_LENGTH = 4096
MAX_COOLDOWN_SECONDS = 30 * 24 * 3600
# A build argument reaches the build as the environment variable BUILD_ARG_<NAME>, and
# buildspec/rebuild.sh passes on only those a shell can name: the ARG names that work.
BUILD_ARG_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# One line of printable text: no control characters (NUL, newline, escape...).
ONE_LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
# A build argument's value may span lines, but holds no NUL (no environment variable can).
NO_NUL_PATTERN = r"^[^\x00]*$"

# An image reference, normalized the way Docker does (docker.io/library/node:22).
ImageName = Annotated[str, Field(max_length=MAX_REF_LENGTH), AfterValidator(_normalized)]
# Docker's reference grammar (distribution/reference) without a digest, ASCII only: in the schema,
# so a client (or a fuzzer) reading it knows what a reference looks like; parse_ref enforces it,
# with a message that says what is wrong rather than this pattern.
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
TAGGED_REF_PATTERN = (
    rf"^(?:(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?/)?"
    rf"{_PATH_PART}(?:/{_PATH_PART})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?$"
)
# A tag-form reference (no digest): what a dependent is built FROM and what patchprop watches.
TaggedImage = Annotated[
    str,
    Field(max_length=MAX_REF_LENGTH, json_schema_extra={"pattern": TAGGED_REF_PATTERN}),
    AfterValidator(_tagged),
]
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
# When a rebuild is promoted: `fail_on=critical,high;ignore_unfixed=true` or the JSON form.
PolicyText = Annotated[str | None, Field(max_length=MAX_POLICY_LENGTH), AfterValidator(_policy)]
# The dependent's fields, as its registration and a partial update both take them.
ProjectName = Annotated[str, Field(min_length=2, max_length=150, pattern=r"^[A-Za-z0-9][A-Za-z0-9\-_]*$")]
BaseRefs = Annotated[list[TaggedImage], Field(min_length=1, max_length=MAX_BASES)]
OwnerName = Annotated[str, Field(max_length=MAX_OWNER_LENGTH, pattern=ONE_LINE_PATTERN)]
SourceLocation = Annotated[str, Field(max_length=MAX_SOURCE_LOCATION, pattern=ONE_LINE_PATTERN)]
SourceVersion = Annotated[str, Field(max_length=MAX_SOURCE_VERSION, pattern=ONE_LINE_PATTERN)]
BuildArgName = Annotated[str, Field(max_length=MAX_BUILD_ARG_NAME, pattern=BUILD_ARG_NAME_PATTERN)]
BuildArgValue = Annotated[str, Field(max_length=MAX_BUILD_ARG_VALUE, pattern=NO_NUL_PATTERN)]
# Its schema says the name's rule under propertyNames, so a client generating from it knows it.
BuildArgs = Annotated[
    dict[BuildArgName, BuildArgValue],
    Field(max_length=MAX_BUILD_ARGS),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_BUILD_ARGS,
            "propertyNames": {
                "type": "string",
                "maxLength": MAX_BUILD_ARG_NAME,
                "pattern": BUILD_ARG_NAME_PATTERN,
            },
            "additionalProperties": {
                "type": "string",
                "maxLength": MAX_BUILD_ARG_VALUE,
                "pattern": NO_NUL_PATTERN,
            },
        }
    ),
]
Cooldown = Annotated[int, Field(ge=0, le=MAX_COOLDOWN_SECONDS)]
# How a dependent is patched when a base moves: rebuilt, rebased (its own layers put on the new
# base with the registry API, no build), or rebased when that is known to be exact (auto).
PatchBy = Literal["rebuild", "rebase", "auto"]
RebaseReason = Annotated[str, Field(max_length=1024, pattern=ONE_LINE_PATTERN)]


class DomainModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# ---- the catalog ------------------------------------------------------------------------


class Base(DomainModel):
    """A tracked base image tag and the digest it pointed to when last seen."""

    ref: TaggedImage
    digest: Digest | None = None
    previous_digest: Digest | None = None
    changed_at: datetime | None = None


class Dependent(DomainModel):
    """An image of the user's, built FROM one or more tracked bases, and how to rebuild it."""

    # Each field's description is the one the API's schema and the CLI's --help show.
    image: TaggedImage = Field(
        description="The image patchprop rebuilds, as it is pushed (a tag, not a digest)."
    )
    project: ProjectName = Field(
        description="The CodeBuild project that rebuilds it: one of the stack's RebuildProjects.",
    )
    bases: BaseRefs = Field(
        description=f"The images it is built FROM (tags), 1 to {MAX_BASES}; each becomes a tracked base."
    )
    owner: OwnerName | None = Field(
        default=None,
        description="Team or person told about its rebuilds (the `owner` attribute of alerts).",
    )
    source_location: SourceLocation | None = Field(
        default=None, description="Overrides the project's source location for this image."
    )
    source_version: SourceVersion | None = Field(
        default=None, description="Branch, tag or commit CodeBuild builds."
    )
    build_args: BuildArgs = Field(
        default_factory=dict,
        description=(
            f"Passed to the build as BUILD_ARG_<NAME> environment variables: at most {MAX_BUILD_ARGS}, "
            f"each NAME a shell variable name (letters, digits, _; not starting with a digit) of at most "
            f"{MAX_BUILD_ARG_NAME} characters, each value at most {MAX_BUILD_ARG_VALUE}."
        ),
    )
    auto_rebuild: bool = Field(
        default=True, description="Rebuild it by itself when a base moves; off: tracked only."
    )
    cooldown_seconds: Cooldown = Field(
        default=0, description="The least number of seconds between two rebuilds of it (0: no limit)."
    )
    policy: PolicyText = Field(
        default=None,
        description=(
            "When a rebuild of it is promoted, e.g. `fail_on=critical,high;ignore_unfixed=true` or the "
            "JSON form; default: blocked by any new CRITICAL or HIGH finding of its own."
        ),
    )
    test_command: str | None = Field(
        default=None,
        max_length=4096,
        description=(
            "A smoke test run inside the rebuilt image (`sh -c`) before it may be promoted; a "
            "non-zero exit or a timeout fails the rebuild and leaves the tag where it was."
        ),
    )
    patch_by: PatchBy = Field(
        default="auto",
        description=(
            "How it is patched when a base moves: `rebuild` (a build), `rebase` (its own layers put on "
            "the new base with the registry API, no build), `auto` (rebase when `patchprop discover` "
            "found it rebase-safe and its layers match the old base's, else rebuild)."
        ),
    )
    rebase_safe: bool | None = Field(
        default=None,
        description=(
            "Set by `patchprop discover`: true when its final stage only copies files and sets "
            "metadata (no RUN), so a rebase gives what a rebuild would; null: not known."
        ),
    )
    rebase_unsafe_reason: RebaseReason | None = Field(
        default=None, description="Why it is not rebase-safe, e.g. `RUN at line 4` (set by discover)."
    )


class CascadeId(str):
    """The patch a cascade belongs to, `<base>@<digest>`: the base that moved, and to what."""

    __slots__ = ()

    @classmethod
    def of(cls, base: str, digest: str) -> CascadeId:
        return cls(f"{base}@{digest}")

    @property
    def base(self) -> str:
        return self.rpartition("@")[0]

    @property
    def digest(self) -> str:
        return self.rpartition("@")[2]

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls, core_schema.str_schema(pattern=r"^.+@sha256:[0-9a-f]{64}$")
        )


def rebuild_id_for(image: str, base: str, base_digest: str, rollback_of: str | None = None) -> str:
    """One rebuild per (dependent, base, base digest): the same inputs give the same id. A patch
    started by a rollback (`rollback_of`, the rebuild whose promotion it undid) has its own ids:
    the dependents may have been built on that digest before, and are rebuilt onto it again."""
    key = f"{image}\n{base}\n{base_digest}".encode()
    if rollback_of:
        key += f"\nrollback:{rollback_of}".encode()
    return "rb-" + hashlib.sha256(key).hexdigest()[:32]


# ---- messages between functions -------------------------------------------------------


class PatchRequest(DomainModel):
    """A base moved: `base` now points at `digest` instead of `previous_digest`."""

    base: TaggedImage
    digest: Digest
    previous_digest: Digest | None = None
    detected_by: Literal["webhook", "poller", "cascade", "person", "ecr"]  # ecr: an ECR push event
    detected_at: datetime = Field(default_factory=utcnow)
    # When the registry says the base was pushed (a Docker Hub webhook's pushed_at); None: unknown.
    pushed_at: datetime | None = None
    # The base check released it (now, or its batch window or soak ended): plan it, check no more.
    admitted: bool = False
    force_now: bool = False  # an owner asked for it at once (`patchprop patch BASE --now`)
    # A rollback moved the base back to `digest`, undoing this rebuild's promotion: its dependents
    # are patched onto `digest` again (planned anew, with their own rebuild ids).
    rollback_of: str | None = None
    # Sent back when the check-only scan of its digest ended (domain/base_scan.py): check it now,
    # scan no more; and why that scan gave no report, when it failed or was stopped.
    base_scanned: bool = False
    base_scan_failure: str | None = None

    @property
    def cascade_id(self) -> CascadeId:
        return CascadeId.of(self.base, self.digest)


class RebuildFields(DomainModel):
    """What a rebuild request and a stored rebuild both say: which image, on which base digest."""

    rebuild_id: str
    image: TaggedImage
    base: TaggedImage
    base_digest: Digest
    previous_digest: Digest | None = None
    project: str
    owner: str | None = None
    policy: str | None = None
    detected_at: datetime
    # The patch whose cascade this rebuild belongs to, if any.
    cascade: CascadeId | None = None
    # The base's one scan report (the base check's, or the rebuilt parent's): no rebuild scans it.
    base_report: str | None = None
    # Why it was started when no base moved, e.g. "own packages have fixes: …" (logic/rescan.py).
    trigger: str | None = None

    @property
    def pinned_base(self) -> str:
        """`registry/repository@sha256:…`: what the build's FROM resolves to."""
        return parse_ref(self.base).with_digest(self.base_digest).pinned

    @property
    def patch(self) -> CascadeId:
        """The patch this rebuild counts toward: its cascade's (the base that moved), else its own."""
        return self.cascade or CascadeId.of(self.base, self.base_digest)

    def common(self) -> dict[str, Any]:
        """The fields every rebuild model shares, to build another from this one."""
        return {name: getattr(self, name) for name in RebuildFields.model_fields}


class RebuildRequest(RebuildFields):
    """Rebuild `image` on `base` pinned to `base_digest`. Sent once per dependent per patch."""

    source_location: str | None = None
    source_version: str | None = None
    build_args: dict[str, str] = Field(default_factory=dict)
    cooldown_seconds: int = 0
    test_command: str | None = None
    waits: int = 0  # times it was sent again to wait (a full cap, a cooldown): logic/start.py
    # The dependent's patch method (logic/rebase.py); "rebuild" for requests sent before it existed.
    patch_by: PatchBy = "rebuild"
    rebase_safe: bool | None = None
    rebase_unsafe_reason: str | None = None

    @classmethod
    def for_dependent(
        cls,
        dependent: Dependent,
        patch: PatchRequest,
        cascade: CascadeId | None = None,
        base_report: str | None = None,
    ) -> RebuildRequest:
        return cls(
            base_report=base_report,
            cascade=cascade,
            cooldown_seconds=dependent.cooldown_seconds,
            rebuild_id=rebuild_id_for(dependent.image, patch.base, patch.digest, patch.rollback_of),
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
            test_command=dependent.test_command,
            detected_at=patch.detected_at,
            patch_by=dependent.patch_by,
            rebase_safe=dependent.rebase_safe,
            rebase_unsafe_reason=dependent.rebase_unsafe_reason,
        )
