"""What discovery finds in a Dockerfile, and how it says a file cannot be read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from patchprop.domain.errors import PatchpropError
from patchprop.domain.refs import parse_ref

BaseKind = Literal["from", "copy-from", "mount-from"]


class DiscoverError(PatchpropError, ValueError):
    """A Dockerfile patchprop cannot read its bases from; the message starts `<path>:<line>: `."""

    def __init__(self, path: object, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class FoundBase:
    """One image the Dockerfile builds on, and where."""

    ref: str  # normalized, in full: docker.io/library/node:22, …:22@sha256:…, …@sha256:…
    kind: BaseKind
    stage: str | int  # the stage it appears in: its name, or its index if it has none
    line: int
    runtime: bool = False  # the final stage's base, following stage aliases
    # The target platforms it is a base for, when it is not one on every platform discovered.
    platforms: tuple[str, ...] = ()

    @property
    def tracked(self) -> str | None:
        """The tag patchprop watches for moves (`name:tag@digest` → `name:tag`); None when the
        base is pinned by digest alone, as it cannot move."""
        ref = parse_ref(self.ref)
        if ref.digest and not ref.tag:
            return None
        return str(ref.without_digest())


@dataclass(frozen=True)
class Discovery:
    path: str
    bases: list[FoundBase]  # one per ref, in the order they first appear
    runtime_base: str | None  # None when the final stage is built FROM scratch
    platforms: tuple[str, ...] = ("linux/amd64",)  # the target platforms it was read for
    # The runtime base of each platform, when they are not all the same.
    runtime_by_platform: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was assumed or ignored, for people
    # Why its final stage reads the base's files (`RUN at line 4`); None: rebase-safe.
    rebase_unsafe: str | None = "not checked"

    @property
    def rebase_safe(self) -> bool:
        return self.rebase_unsafe is None

    # Why a rebuild cannot pin the runtime base (its FROM does not use ${BASE_IMAGE}); None: it can.
    pin_warning: str | None = None

    @property
    def refs(self) -> list[str]:
        return [base.ref for base in self.bases]

    def tracked_bases(self) -> list[str]:
        """The tags patchprop watches: `name:tag@digest` as `name:tag`, digest-only bases left out."""
        tags = [base.tracked for base in self.bases]
        return list(dict.fromkeys(tag for tag in tags if tag is not None))

    def pinned_bases(self) -> list[str]:
        """The bases pinned by digest alone: recorded, never tracked (they cannot move)."""
        return [base.ref for base in self.bases if base.tracked is None]

    @property
    def tracked_runtime_base(self) -> str | None:
        runtime = next((base for base in self.bases if base.runtime), None)
        return runtime.tracked if runtime else None
