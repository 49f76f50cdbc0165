"""Notice that a base moved: from a Docker Hub webhook or a registry poll, the same way."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from patchprop.domain.errors import InvalidReference, RegistryError
from patchprop.domain.events import DockerHubPush
from patchprop.domain.models import Base, PatchRequest
from patchprop.domain.refs import dockerhub_ref, parse_ref
from patchprop.ports import Queue, Registry, Store

logger = logging.getLogger(__name__)


class Seen(StrEnum):
    UNTRACKED = "untracked"  # nobody builds on it: nothing to do
    UNCHANGED = "unchanged"  # same digest as last time
    BASELINE = "baseline"  # first digest we learn for it: recorded, nothing to rebuild
    MOVED = "moved"  # new digest: a patch was enqueued
    ERROR = "error"  # the registry could not tell; the next poll tries again


@dataclass(frozen=True)
class BaseCheck:
    base: str
    seen: Seen
    digest: str | None = None
    previous_digest: str | None = None


def token_matches(given: str, valid: Iterable[str]) -> bool:
    """Constant-time check of a URL token against every valid one (rotation keeps two)."""
    given_hash = hashlib.sha256(given.encode()).digest()
    matched = False
    for token in valid:
        # Compare fixed-length hashes, and always compare them all, so timing says nothing.
        matched |= hmac.compare_digest(given_hash, hashlib.sha256(token.encode()).digest())
    return matched and bool(given)


def check_push(push: DockerHubPush, *, store: Store, registry: Registry, patches: Queue) -> BaseCheck:
    """A Docker Hub push names a tag; the registry tells what it points at now."""
    try:
        ref = str(dockerhub_ref(push.repository.repo_name, push.push_data.tag))
    except InvalidReference as exc:
        raise InvalidReference(str(exc), field="repository.repo_name") from exc
    base = store.get_base(ref)
    if base is None:
        return BaseCheck(ref, Seen.UNTRACKED)
    pushed = push.push_data.pushed_at
    pushed_at = datetime.fromtimestamp(pushed, UTC) if pushed else None
    return check_base(
        base, store=store, registry=registry, patches=patches, detected_by="webhook", pushed_at=pushed_at
    )


def check_base(
    base: Base,
    *,
    store: Store,
    registry: Registry,
    patches: Queue,
    detected_by: Literal["webhook", "poller", "ecr"],
    pushed_at: datetime | None = None,
) -> BaseCheck:
    """Resolve the base's tag (one HEAD) and, if it moved, enqueue the patch, then record it.

    Enqueue first, record second: a crash in between makes the next webhook or poll enqueue
    again (the planner is idempotent), where the other order could lose the patch.
    """
    digest = registry.resolve_digest(parse_ref(base.ref))
    if digest == base.digest:
        return BaseCheck(base.ref, Seen.UNCHANGED, digest, base.digest)
    if base.digest is None:
        store.record_digest(base.ref, None, digest)
        return BaseCheck(base.ref, Seen.BASELINE, digest)
    patches.send(
        PatchRequest(
            base=base.ref,
            digest=digest,
            previous_digest=base.digest,
            detected_by=detected_by,
            pushed_at=pushed_at,
        )
    )
    store.record_digest(base.ref, base.digest, digest)
    return BaseCheck(base.ref, Seen.MOVED, digest, base.digest)


def poll_bases(*, store: Store, registry: Registry, patches: Queue) -> list[BaseCheck]:
    """Check each tracked base; a registry failure on one base does not stop the others."""
    checks = []
    for base in store.list_bases():
        try:
            checks.append(
                check_base(base, store=store, registry=registry, patches=patches, detected_by="poller")
            )
        except (RegistryError, InvalidReference) as exc:  # a ref stored before it was refused, too
            logger.warning("could not check base %s: %s", base.ref, exc)
            checks.append(BaseCheck(base.ref, Seen.ERROR))
    return checks
