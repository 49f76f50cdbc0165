"""Record a base's current digest when an image is registered on it, so its first move patches.

Without it, the first push after registering is only a "baseline" (the first digest patchprop
learns), and the image built on the older digest is never rebuilt. A registry that cannot tell
(the base not pushed yet, no credentials) is a warning, not a refusal: the first poll or webhook
then records the digest, as before.
"""

from __future__ import annotations

import logging

from patchprop.domain.errors import InvalidReference, RegistryError
from patchprop.domain.models import Dependent
from patchprop.domain.refs import parse_ref
from patchprop.ports import Registry, Store

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
