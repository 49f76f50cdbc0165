"""The dependency graph as people manage it: register with the checks, show, list, the affected set.

Edges run from a base to the images built FROM it. An image can itself be a base (a golden
image), so a base's affected set is followed transitively.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from patchprop.domain.errors import NotFound, PatchpropError
from patchprop.domain.models import (
    Base,
    BaseRefs,
    BuildArgs,
    Cooldown,
    Dependent,
    OwnerName,
    PatchBy,
    PolicyText,
    ProjectName,
    RebaseReason,
    SourceLocation,
    SourceVersion,
)
from patchprop.domain.records import Rebuild, RebuildStatus
from patchprop.domain.validation import problems
from patchprop.ports import Store

RECENT_REBUILDS = 10  # shown with one dependent


class CycleError(PatchpropError):
    """Registering would make an image built, through its bases, on itself."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("cycle: " + " -> ".join(cycle))


class InvalidChanges(PatchpropError, ValueError):
    """A partial update that would leave the dependent invalid; `errors` as pydantic reports them."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{p['field']}: {p['error']}" for p in problems(errors)))


class ProjectNotAllowed(PatchpropError):
    """The dependent names a CodeBuild project the stack may not start."""

    def __init__(self, project: str, allowed: Collection[str]) -> None:
        self.project = project
        names = ", ".join(sorted(allowed)) or "none"
        super().__init__(f"CodeBuild project {project} is not one this stack may start (allowed: {names})")


# ---- in ----------------------------------------------------------------------------------


def _describe_fields(schema: dict[str, Any]) -> None:
    """The changes' fields described as the dependent's are (domain.models.Dependent)."""
    for name, prop in schema.get("properties", {}).items():
        known = Dependent.model_fields.get(name)
        if known is not None and known.description:
            prop["description"] = known.description


class DependentRegistration(Dependent):
    """A dependent as registered through the API: every field of it, and nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DependentChanges(BaseModel):
    """A partial update of a dependent: the fields given replace the registered ones."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_describe_fields)

    # The same types as Dependent's, so a bad change is refused before it is merged.
    project: ProjectName | None = None
    bases: BaseRefs | None = None
    owner: OwnerName | None = None
    source_location: SourceLocation | None = None
    source_version: SourceVersion | None = None
    build_args: BuildArgs | None = None
    auto_rebuild: bool | None = None
    cooldown_seconds: Cooldown | None = None
    policy: PolicyText = None
    test_command: str | None = Field(default=None, max_length=4096)
    patch_by: PatchBy | None = None
    rebase_safe: bool | None = None
    rebase_unsafe_reason: RebaseReason | None = None


# ---- out ---------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Registration(_Out):
    dependent: Dependent
    created: bool = Field(description="False when an existing registration was replaced.")
    warnings: list[str] = Field(
        default_factory=list, description="What could not be checked (e.g. a base the registry lacks)."
    )
    baselined: list[str] = Field(
        default_factory=list, description="Bases whose current digest was recorded at registration."
    )
    behind: list[str] = Field(
        default_factory=list, description="Bases the image is built on an older digest of (see warnings)."
    )


class Removal(_Out):
    removed: str


class BaseSummary(Base):
    """A tracked base, its last digest and when it moved, and how many images are built on it."""

    dependents: int = Field(default=0, description="Images registered directly on this base.")


class DependentDetail(_Out):
    dependent: Dependent
    bases: list[Base] = Field(description="Its bases, with the digest each had when last seen.")
    built_on_it: list[str] = Field(description="Images registered with this one as a base.")
    rebuilds: list[Rebuild] = Field(description="Its most recent rebuilds, newest first.")


class DependentList(_Out):
    dependents: list[Dependent]


class BaseList(_Out):
    bases: list[BaseSummary]


class RebuildList(_Out):
    rebuilds: list[Rebuild]


class GraphNode(_Out):
    ref: str
    is_base: bool = Field(description="Images are registered on it (it may be a dependent too).")
    is_dependent: bool
    digest: str | None = None
    changed_at: datetime | None = None
    owner: str | None = None
    auto_rebuild: bool | None = None
    last_rebuild: Rebuild | None = None


class GraphEdge(_Out):
    base: str
    image: str = Field(description="Built FROM `base`.")


class Graph(_Out):
    root: str | None = Field(
        default=None, description="The base whose affected set this is; null: whole graph."
    )
    nodes: list[GraphNode]
    edges: list[GraphEdge]


# ---- logic -------------------------------------------------------------------------------


def register(dependent: Dependent, *, store: Store, allowed_projects: Collection[str]) -> Registration:
    """Register or replace a dependent, unless its project is not allowed or it would close a cycle."""
    if dependent.project not in allowed_projects:
        raise ProjectNotAllowed(dependent.project, allowed_projects)
    return _save(dependent, store=store)


def update(
    image: str, changes: DependentChanges, *, store: Store, allowed_projects: Collection[str]
) -> Registration:
    """Change some fields of a registered dependent; NotFound if it is not registered."""
    current = store.get_dependent(image)
    if current is None:
        raise NotFound(f"no dependent image {image}", field="image")
    given = changes.model_dump(exclude_unset=True)
    try:
        merged = Dependent.model_validate({**current.model_dump(), **given})
    except ValidationError as exc:  # e.g. a required field set to null
        raise InvalidChanges([dict(e) for e in exc.errors()]) from exc
    # A project that is no longer allowed does not stop other changes (turning auto-rebuild off).
    if "project" in given and merged.project not in allowed_projects:
        raise ProjectNotAllowed(merged.project, allowed_projects)
    return _save(merged, store=store)


def _save(dependent: Dependent, *, store: Store) -> Registration:
    cycle = find_cycle(dependent.image, dependent.bases, store=store)
    if cycle:
        raise CycleError(cycle)
    existed = store.get_dependent(dependent.image) is not None
    stored = Dependent.model_validate(dependent.model_dump())  # the stored model, not the input one
    store.put_dependent(stored)
    return Registration(dependent=stored, created=not existed)


def find_cycle(image: str, bases: Iterable[str], *, store: Store) -> list[str] | None:
    """The cycle that building `image` FROM `bases` would close, as `image -> its base -> ... -> image`
    (each built FROM the next), or None."""
    targets = set(bases)
    if image in targets:
        return [image, image]
    reached_from: dict[str, str] = {}  # image -> the base it was reached through
    queue = deque([image])
    while queue:
        current = queue.popleft()
        for child in store.dependents_of(current):
            if child.image == image or child.image in reached_from:
                continue
            reached_from[child.image] = current
            if child.image in targets:
                chain = [child.image]
                while chain[-1] != image:
                    chain.append(reached_from[chain[-1]])
                return [image, *chain]
            queue.append(child.image)
    return None


def describe(image: str, *, store: Store, rebuilds: int = RECENT_REBUILDS) -> DependentDetail:
    dependent = store.get_dependent(image)
    if dependent is None:
        raise NotFound(f"no dependent image {image}", field="image")
    return DependentDetail(
        dependent=dependent,
        bases=[store.get_base(ref) or Base(ref=ref) for ref in dependent.bases],
        built_on_it=sorted(d.image for d in store.dependents_of(image)),
        rebuilds=list(store.recent_rebuilds(image, limit=rebuilds)),
    )


def remove(image: str, *, store: Store) -> Removal:
    store.remove_dependent(image)
    return Removal(removed=image)


def list_dependents(*, store: Store) -> DependentList:
    return DependentList(dependents=list(store.list_dependents()))


def list_bases(*, store: Store) -> BaseList:
    counts = Counter(ref for dependent in store.list_dependents() for ref in dependent.bases)
    return BaseList(
        bases=[BaseSummary(**base.model_dump(), dependents=counts[base.ref]) for base in store.list_bases()]
    )


def rebuild_history(
    *,
    store: Store,
    image: str | None = None,
    base: str | None = None,
    status: RebuildStatus | None = None,
    limit: int = 50,
) -> RebuildList:
    """Rebuilds, newest first, of one image, of the images directly on `base`, or of every image."""
    if image:
        images = [image]
    elif base:
        images = sorted({d.image for d in store.dependents_of(base)})
    else:
        images = sorted(d.image for d in store.list_dependents())
    found: list[Rebuild] = []
    for name in images:
        matching = 0
        for rebuild in store.recent_rebuilds(name):
            if (base and rebuild.base != base) or (status and rebuild.status != status):
                continue
            found.append(rebuild)
            matching += 1
            if matching >= limit:  # newest first: older ones of this image cannot make the cut
                break
    found.sort(key=lambda r: (r.detected_at, r.rebuild_id), reverse=True)
    return RebuildList(rebuilds=found[:limit])


def affected_set(base: str, *, store: Store) -> tuple[list[Dependent], list[GraphEdge]]:
    """Every image rebuilt when `base` moves, transitively, and the edges between them."""
    dependents: dict[str, Dependent] = {}
    edges: list[GraphEdge] = []
    queue = deque([base])
    seen = {base}
    while queue:
        current = queue.popleft()
        for child in store.dependents_of(current):
            edges.append(GraphEdge(base=current, image=child.image))
            if child.image not in seen:
                seen.add(child.image)
                dependents[child.image] = child
                queue.append(child.image)
    return list(dependents.values()), edges


def graph(*, store: Store, base: str | None = None) -> Graph:
    """The whole graph, or the affected set of one base, with each image's last rebuild."""
    tracked = {b.ref: b for b in store.list_bases()}
    if base is None:
        dependents = list(store.list_dependents())
        edges = [GraphEdge(base=ref, image=d.image) for d in dependents for ref in d.bases]
        refs = {d.image for d in dependents} | {e.base for e in edges}
    else:
        dependents, edges = affected_set(base, store=store)
        root = store.get_dependent(base)  # a golden image is a base and an image of the user's
        if not dependents and root is None and base not in tracked:
            raise NotFound(f"{base} is neither a tracked base nor a registered image", field="base")
        dependents += [root] if root else []
        refs = {base} | {d.image for d in dependents}
    by_image = {d.image: d for d in dependents}
    has_children = {e.base for e in edges}
    nodes = []
    for ref in sorted(refs):
        dependent = by_image.get(ref)
        seen = tracked.get(ref)
        nodes.append(
            GraphNode(
                ref=ref,
                is_base=ref in has_children or (dependent is None and seen is not None),
                is_dependent=dependent is not None,
                digest=seen.digest if seen else None,
                changed_at=seen.changed_at if seen else None,
                owner=dependent.owner if dependent else None,
                auto_rebuild=dependent.auto_rebuild if dependent else None,
                last_rebuild=store.last_rebuild(ref) if dependent else None,
            )
        )
    edges.sort(key=lambda e: (e.base, e.image))
    return Graph(root=base, nodes=nodes, edges=edges)
