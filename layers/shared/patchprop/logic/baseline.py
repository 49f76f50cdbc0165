"""Record a base's current digest when an image is registered on it, so its first move patches.

Without it, the first push after registering is only a "baseline" (the first digest patchprop
learns), and the image built on the older digest is never rebuilt. A registry that cannot tell
(the base not pushed yet, no credentials) is a warning, not a refusal: the first poll or webhook
then records the digest, as before.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field

from patchprop.domain.errors import InvalidReference, NotFound, RegistryError
from patchprop.domain.models import Dependent
from patchprop.domain.refs import parse_ref
from patchprop.logic.detect import Seen, check_base, poll_bases
from patchprop.ports import Queue, Registry, Store

logger = logging.getLogger(__name__)


def record_baselines(
    dependent: Dependent, *, store: Store, registry: Registry
) -> tuple[list[str], list[str]]:
    """Resolve each base of `dependent` patchprop knows no digest of yet, and record it.

    Returns (the bases recorded, the warnings: one per base the registry could not tell)."""
    recorded: list[str] = []
    warnings: list[str] = []
    for ref in dependent.bases:
        base = store.get_base(ref)
        if base is not None and base.digest:
            continue  # tracked already: its moves are seen from the digest recorded
        try:
            digest = registry.resolve_digest(parse_ref(ref))
        except (RegistryError, InvalidReference) as exc:
            logger.warning("could not resolve base %s at registration: %s", ref, exc)
            warnings.append(
                f"bases: the registry does not have {ref} yet ({exc}); the first poll or webhook "
                "records its digest, and only moves after that rebuild the image"
            )
            continue
        if store.record_digest(ref, None, digest):
            recorded.append(ref)
    return recorded, warnings


# ---- poll now: `patchprop poll [BASE]` (POST /bases/poll) ----------------------------------


class PolledBase(BaseModel):
    model_config = ConfigDict(frozen=True)

    base: str
    seen: Seen = Field(description="untracked, unchanged, baseline, moved (a patch enqueued) or error.")
    digest: str | None = None
    previous_digest: str | None = None


class PollAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    bases: list[PolledBase]


def poll_now(*, store: Store, registry: Registry, patches: Queue, base: str | None = None) -> PollAnswer:
    """Check one tracked base now (NotFound naming `base` if it is not tracked), or every one,
    as the scheduled poll does: a moved digest enqueues its patch."""
    if base is None:
        checks = poll_bases(store=store, registry=registry, patches=patches)
    else:
        tracked = store.get_base(base)
        if tracked is None:
            raise NotFound(f"{base} is not a tracked base (register an image on it first)", field="base")
        checks = [check_base(tracked, store=store, registry=registry, patches=patches, detected_by="poller")]
    return PollAnswer(bases=[PolledBase(**vars(c)) for c in checks])
