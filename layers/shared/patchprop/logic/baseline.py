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
from patchprop.domain.rebase import BASE_DIGEST, BASE_NAME
from patchprop.domain.refs import parse_ref
from patchprop.logic.detect import Seen, check_base, poll_bases
from patchprop.ports import BuiltOn, Queue, Registry, Store

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


def behind_bases(dependent: Dependent, *, store: Store, built_on: BuiltOn) -> tuple[list[str], list[str]]:
    """The bases `dependent` is built on an older digest of than patchprop knows now, from the
    image's own base.digest annotation (its base.name picks the base; one base needs no name).

    Returns (those bases, one warning each). An image without the annotation, or one the registry
    cannot read, says nothing: its next move rebuilds it as before."""
    try:
        annotations = built_on.base_annotations(parse_ref(dependent.image))
    except (RegistryError, InvalidReference, ValueError) as exc:
        logger.info("could not read what %s is built on: %s", dependent.image, exc)
        return [], []
    digest = annotations.get(BASE_DIGEST)
    if not digest:
        return [], []
    named = annotations.get(BASE_NAME)
    candidates = [ref for ref in dependent.bases if named and _same_image(ref, named)]
    if not candidates and len(dependent.bases) == 1:
        candidates = list(dependent.bases)
    behind: list[str] = []
    warnings: list[str] = []
    for ref in candidates:
        base = store.get_base(ref)
        if base is None or not base.digest or base.digest == digest:
            continue
        behind.append(ref)
        warnings.append(
            f"bases: {dependent.image} is built on {ref}@{digest}, but {ref} is at {base.digest} now: "
            "it is behind, and the base's next move rebuilds it"
        )
    return behind, warnings


def _same_image(ref: str, named: str) -> bool:
    try:
        a, b = parse_ref(ref), parse_ref(named)
    except InvalidReference:
        return False
    return (a.name, a.tag) == (b.name, b.tag)


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
