"""Poll every tracked base once: how bases that send no webhooks stay current."""

from __future__ import annotations

import logging

from patchprop.errors import RegistryError
from patchprop.logic.detect import BaseCheck, Resolver, Seen, check_base
from patchprop.queues import Queue
from patchprop.store import Store

logger = logging.getLogger(__name__)


def poll_bases(*, store: Store, registry: Resolver, patches: Queue) -> list[BaseCheck]:
    """Check each tracked base; a registry failure on one base does not stop the others."""
    checks = []
    for base in store.list_bases():
        try:
            checks.append(
                check_base(base, store=store, registry=registry, patches=patches, detected_by="poller")
            )
        except RegistryError as exc:
            logger.warning("could not check base %s: %s", base.ref, exc)
            checks.append(BaseCheck(base.ref, Seen.ERROR))
    return checks
