"""Image references, normalized the way Docker does (`node:22` = `docker.io/library/node:22`)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from docker_image import reference as _reference

from patchprop.domain.errors import InvalidReference

DOCKER_HUB = "docker.io"
# Where Docker Hub's registry API actually lives.
DOCKER_HUB_API = "registry-1.docker.io"


@dataclass(frozen=True, order=True)
class ImageRef:
    """A normalized image reference: registry host, repository path, tag and/or digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`registry/repository`, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host that serves the registry API for this reference."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    def with_digest(self, digest: str) -> ImageRef:
        """This reference pinned to `digest` (the tag kept for readers)."""
        return ImageRef(self.registry, self.repository, self.tag, digest)

    def without_digest(self) -> ImageRef:
        return ImageRef(self.registry, self.repository, self.tag or "latest", None)

    @property
    def pinned(self) -> str:
        """`registry/repository@digest`: what a build pins to."""
        if not self.digest:
            raise InvalidReference(f"{self} has no digest to pin to")
        return f"{self.name}@{self.digest}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_ref(text: str) -> ImageRef:
    """Parse and normalize an image reference; no tag and no digest means `latest`.

    Raises InvalidReference with the reason on anything Docker would refuse.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidReference("image reference is empty")
    if text != text.strip():
        raise InvalidReference(f"image reference {text!r} has surrounding white space")
    try:
        parsed = _reference.Reference.parse_normalized_named(text)
    except _reference.InvalidReference as exc:
        raise InvalidReference(f"invalid image reference {text!r}: {exc}") from exc
    except Exception as exc:  # the library raises a few unrelated types on odd input
        raise InvalidReference(f"invalid image reference {text!r}: {exc}") from exc
    full_name: str = parsed["name"]
    registry, _, repository = full_name.partition("/")
    if registry.startswith("["):  # the library takes any [...] as an IPv6 host: no URL can hold `[e]`
        _ipv6_host(text, registry)
    tag = parsed["tag"]
    digest = parsed["digest"]
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)


def _ipv6_host(text: str, registry: str) -> None:
    host = registry[1:].partition("]")[0]
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise InvalidReference(f"invalid image reference {text!r}: [{host}] is not an IPv6 address") from None


def dockerhub_ref(repo_name: str, tag: str) -> ImageRef:
    """The reference a Docker Hub webhook names: `repository.repo_name` and `push_data.tag`."""
    return parse_ref(f"{repo_name}:{tag}")
