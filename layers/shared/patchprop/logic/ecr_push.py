"""An ECR push event: the same "base moved" path as a Docker Hub webhook.

ECR announces every push on EventBridge with its account, region, repository and tag. It is a
hint, as a webhook is: the tag's digest is resolved from the registry (one HEAD) before acting,
so duplicates, an older event arriving after a newer push, and a tag patchprop promoted itself
(recorded as the image's digest when its cascade moved on) all come out `unchanged`.
"""

from __future__ import annotations

from datetime import datetime

from patchprop.domain.ecr_events import EcrImageAction, ecr_host
from patchprop.domain.errors import InvalidReference
from patchprop.domain.refs import parse_ref
from patchprop.logic.detect import BaseCheck, Seen, check_base
from patchprop.ports import Queue, Registry, Store


def pushed_ref(detail: EcrImageAction, account: str, region: str, registry_host: str = "") -> str:
    """The tag pushed, as patchprop stores references (`registry_host` overrides ECR's host:
    `patchprop local` serves ECR-like repositories from its own registry)."""
    host = registry_host or ecr_host(account, region)
    try:
        return str(parse_ref(f"{host}/{detail.repository_name}:{detail.image_tag}"))
    except InvalidReference as exc:
        raise InvalidReference(str(exc), field="detail.repository-name") from exc


def check_ecr_push(
    detail: EcrImageAction,
    *,
    account: str,
    region: str,
    store: Store,
    registry: Registry,
    patches: Queue,
    registry_host: str = "",
    pushed_at: datetime | None = None,
) -> BaseCheck:
    """A tracked base whose tag was pushed is checked (and, if it moved, patched) now; anything
    else (untracked, a push by digest only, a failed push) writes and enqueues nothing. The patch
    is detected by `ecr`, pushed at the event's time (ECR puts it on the bus once the push is done)."""
    if not detail.tagged_push:
        return BaseCheck(f"{detail.repository_name}@{detail.image_digest}", Seen.UNTRACKED)
    ref = pushed_ref(detail, account, region, registry_host)
    base = store.get_base(ref)
    if base is None:
        return BaseCheck(ref, Seen.UNTRACKED)
    return check_base(
        base, store=store, registry=registry, patches=patches, detected_by="ecr", pushed_at=pushed_at
    )
