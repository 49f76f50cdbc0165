"""A base's SLSA provenance, as its publisher attaches it: read into a small, stable summary.

BuildKit (docker buildx, Docker Hardened Images) puts an in-toto statement in an attestation
manifest of the image index; others attach one as an OCI referrer, sometimes in a DSSE envelope.
The summary is who built it (the builder id), from what (the source repository and revision),
when, and from which materials. It is read, not verified: BuildKit's statements are unsigned,
and a change of builder or source repository between two digests is what is worth telling.
Pure: the reader takes bytes, the adapter fetches them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from patchprop.domain.errors import PatchpropError

SLSA_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_V1 = "https://slsa.dev/provenance/v1"
SLSA_TYPES = (SLSA_V02, SLSA_V1)
MAX_PROVENANCE_BYTES = 8 * 2**20  # a mode=max statement carries the build's LLB: a few MB at most
MAX_MATERIALS = 20
BUILDKIT_METADATA = "https://mobyproject.org/buildkit@v1#metadata"
ProvenanceState = Literal["published", "none", "unreadable"]


class ProvenanceError(PatchpropError):
    """A provenance statement that is too large, not JSON, or not SLSA provenance."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Provenance(BaseModel):
    """What one digest's provenance says; `state` none when it publishes none, unreadable (why in
    `reason`) when it cannot be read."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    state: ProvenanceState = "none"
    reason: str = ""
    where: str = ""  # e.g. "attestation manifest sha256:… (linux/amd64)"
    predicate_type: str = ""
    builder_id: str = ""
    build_type: str = ""
    source_uri: str = ""  # e.g. https://github.com/acme/base.git#refs/heads/main
    source_revision: str = ""  # the commit the build was made from
    materials: list[str] = Field(default_factory=list)  # "uri@digest", at most MAX_MATERIALS
    started_on: str = ""
    finished_on: str = ""

    @property
    def source_repository(self) -> str:
        """The source without its ref (`#…`, `@…` after the path) or `git+`, for comparing."""
        uri = self.source_uri.removeprefix("git+").split("#", 1)[0]
        scheme, _, rest = uri.rpartition("://")
        path = rest.split("@", 1)[0] if "/" in rest.split("@", 1)[0] else rest
        return f"{scheme}://{path}".removesuffix(".git") if scheme else path.removesuffix(".git")

    def said(self) -> str:
        """One line for the message."""
        if self.state == "none":
            return "no provenance published"
        if self.state == "unreadable":
            return f"unreadable: {self.reason}"
        builder = self.builder_id or "an unnamed builder"
        source = self.source_uri or "an unnamed source"
        if self.source_revision:
            source += f"@{self.source_revision}"
        when = f", finished {self.finished_on}" if self.finished_on else ""
        return f"built by {builder} from {source}{when}"


def read_statement(data: bytes, max_bytes: int = MAX_PROVENANCE_BYTES) -> Provenance:
    """The summary of an in-toto statement (or a DSSE envelope of one) with an SLSA predicate."""
    if len(data) > max_bytes:
        raise ProvenanceError(f"the statement is {len(data):,} bytes, more than {max_bytes:,}")
    statement = _json(data, "the statement")
    if isinstance(statement.get("payload"), str) and "payloadType" in statement:  # DSSE envelope
        try:
            statement = _json(base64.b64decode(statement["payload"]), "the envelope's payload")
        except ValueError as exc:
            raise ProvenanceError(f"the envelope's payload is not base64: {exc}") from exc
    kind = str(statement.get("predicateType") or "")
    predicate = statement.get("predicate")
    if kind not in SLSA_TYPES:
        raise ProvenanceError(f"the predicate type is {kind or '(none)'!r}, not SLSA provenance")
    if not isinstance(predicate, dict):
        raise ProvenanceError("the statement has no predicate object")
    return _v02(predicate) if kind == SLSA_V02 else _v1(predicate)


def _v02(predicate: Mapping[str, Any]) -> Provenance:
    invocation = _obj(predicate, "invocation")
    config = _obj(invocation, "configSource")
    metadata = _obj(predicate, "metadata")
    vcs = _obj(_obj(metadata, BUILDKIT_METADATA), "vcs")
    return Provenance(
        state="published",
        predicate_type=SLSA_V02,
        builder_id=_text(_obj(predicate, "builder").get("id")),
        build_type=_text(predicate.get("buildType")),
        source_uri=_text(config.get("uri")) or _text(vcs.get("source")),
        source_revision=_revision(config.get("digest")) or _text(vcs.get("revision")),
        materials=_materials(predicate.get("materials")),
        started_on=_text(metadata.get("buildStartedOn")),
        finished_on=_text(metadata.get("buildFinishedOn")),
    )


def _v1(predicate: Mapping[str, Any]) -> Provenance:
    definition = _obj(predicate, "buildDefinition")
    external = _obj(definition, "externalParameters")
    run = _obj(predicate, "runDetails")
    metadata = _obj(run, "metadata")
    vcs = _obj(_obj(metadata, "buildkit_metadata"), "vcs")
    config = _obj(external, "configSource")
    workflow = _obj(external, "workflow")  # GitHub's generator: {repository, ref, path}
    source = _text(config.get("uri")) or _text(workflow.get("repository")) or _text(vcs.get("source"))
    if workflow.get("ref") and not config.get("uri") and source == _text(workflow.get("repository")):
        source += f"#{_text(workflow.get('ref'))}"
    dependencies = definition.get("resolvedDependencies")
    revision = _revision(config.get("digest")) or _text(vcs.get("revision"))
    if not revision and isinstance(dependencies, list):  # the source's own entry carries its commit
        repository = Provenance(source_uri=source).source_repository
        revision = next(
            (
                _revision(d.get("digest"))
                for d in dependencies
                if isinstance(d, dict) and repository and repository in _text(d.get("uri"))
            ),
            "",
        )
    return Provenance(
        state="published",
        predicate_type=SLSA_V1,
        builder_id=_text(_obj(run, "builder").get("id")),
        build_type=_text(definition.get("buildType")),
        source_uri=source,
        source_revision=revision,
        materials=_materials(dependencies),
        started_on=_text(metadata.get("startedOn")),
        finished_on=_text(metadata.get("finishedOn")),
    )


def provenance_changes(new: Provenance | None, old: Provenance | None) -> list[str]:
    """Lines for the message when the builder or the source repository changed between digests."""
    if new is None or old is None or old.state != "published":
        return []
    if new.state == "none":
        return ["Provenance changed: the previous digest published provenance, this one does not."]
    if new.state != "published":
        return []
    lines = []
    if new.builder_id != old.builder_id:
        lines.append(
            f"Provenance changed: builder {old.builder_id or '(unnamed)'} -> {new.builder_id or '(unnamed)'}."
        )
    if new.source_repository != old.source_repository:
        before, after = old.source_repository or "(unnamed)", new.source_repository or "(unnamed)"
        lines.append(f"Provenance changed: source repository {before} -> {after}.")
    return lines


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise ProvenanceError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ProvenanceError(f"{what} is not a JSON object")
    return value


def _obj(value: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    found = value.get(key)
    return found if isinstance(found, dict) else {}


def _text(value: Any) -> str:
    return value[:500] if isinstance(value, str) else ""


def _revision(digest: Any) -> str:
    if not isinstance(digest, dict):
        return ""
    for algorithm in ("gitCommit", "sha1", "sha256", *digest):
        if isinstance(digest.get(algorithm), str):
            return _text(digest[algorithm])
    return ""


def _materials(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    listed = []
    for item in items[:MAX_MATERIALS]:
        if isinstance(item, dict) and _text(item.get("uri")):
            revision = _revision(item.get("digest"))
            listed.append(_text(item["uri"]) + (f"@{revision}" if revision else ""))
    return listed
