"""The tag mover and referrers patchprop promotes with: ECR's API for ECR repositories, the OCI
distribution API (RegistryWriter) for every other registry."""

from __future__ import annotations

from collections.abc import Callable

from patchprop.adapters.ecr import EcrTagMover
from patchprop.adapters.registry_write import RegistryWriter
from patchprop.domain.refs import ImageRef


def is_ecr(ref: ImageRef) -> bool:
    return ".dkr.ecr." in ref.registry and ref.registry.endswith(".amazonaws.com")


class TagMovers:
    """`TagMover` for any registry: each call goes to ECR's or the OCI registry's mover."""

    def __init__(self, writer: RegistryWriter, ecr: Callable[[], EcrTagMover] = EcrTagMover) -> None:
        self.writer = writer
        self._ecr_factory = ecr
        self._ecr: EcrTagMover | None = None

    def _for(self, ref: ImageRef) -> EcrTagMover | RegistryWriter:
        if not is_ecr(ref):
            return self.writer
        if self._ecr is None:
            self._ecr = self._ecr_factory()
        return self._ecr

    def tag_digest(self, repository: ImageRef, tag: str) -> str | None:
        return self._for(repository).tag_digest(repository, tag)

    def move_tag(self, repository: ImageRef, tag: str, digest: str, expect_current: str | None) -> bool:
        return self._for(repository).move_tag(repository, tag, digest, expect_current)
