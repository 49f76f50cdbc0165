"""Start a rebuild on CodeBuild, pinned to the new base digest, exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from patchprop.domain.errors import BuildStartFailed, BuildThrottled, CapReached, CoolingDown, RegistryError
from patchprop.domain.models import RebuildRequest, utcnow
from patchprop.domain.records import NodeStatus, Rebuild
from patchprop.logic.promote import tag_now
from patchprop.logic.rebase import choose_method
from patchprop.logic.reconcile import CAP_WAIT_RECONCILE_AFTER, reconcile_slots
from patchprop.ports import Builds, Rebasing, Store, TagMover

log = logging.getLogger(__name__)
CAP_WAIT = 30  # seconds before a rebuild waiting for a slot of the cap looks again


def cooldown_left(request: RebuildRequest, *, store: Store) -> float:
    """Seconds until the image's cooldown allows another rebuild (0: now)."""
    if not request.cooldown_seconds:
        return 0.0
    last = store.last_rebuild(request.image)
    if last is None or last.started_at is None:
        return 0.0
    return max(0.0, request.cooldown_seconds - (utcnow() - last.started_at).total_seconds())


def build_env(request: RebuildRequest) -> dict[str, str]:
    """What the build sees: the base pinned by digest, the target, and ids for correlation."""
    env = {
        "BASE_IMAGE": request.pinned_base,
        "BASE_IMAGE_NAME": request.base,
        "BASE_IMAGE_DIGEST": request.base_digest,
        "TARGET_IMAGE": request.image,
        "PATCHPROP_REBUILD_ID": request.rebuild_id,
    }
    if request.test_command:
        env["PATCHPROP_TEST_COMMAND"] = request.test_command
    if request.base_report:  # the base was scanned once, before the cascade: not again here
        env["PATCHPROP_BASE_REPORT"] = request.base_report
    for name, value in sorted(request.build_args.items()):
        env[f"BUILD_ARG_{name}"] = value
    return env


def claim_slot(
    request: RebuildRequest,
    *,
    store: Store,
    builds: Builds,
    projects: Collection[str],
    cap: int,
    on_released: Callable[[int], None] = lambda _n: None,
) -> bool:
    """A slot of the cap; after CAP_WAIT_RECONCILE_AFTER waits, the counter is reconciled first.

    A rebuild waiting that long on a full cap may be waiting on a slot leaked by a rebuilder that
    died after its claim: the counter is checked against the builds really running, then claimed.
    """
    if store.claim_build_slot(cap):
        return True
    if request.waits + 1 < CAP_WAIT_RECONCILE_AFTER:
        return False
    done = reconcile_slots(slots=store, builds=builds, projects=projects)
    if not done.released:
        return False
    log.warning("cap counter reconciled on a long wait", extra={"reconciled": done.as_dict()})
    on_released(done.released)
    return store.claim_build_slot(cap)


def start_rebuild(
    request: RebuildRequest,
    *,
    store: Store,
    builds: Builds,
    allowed_projects: Collection[str],
    cap: int | None = None,
    cap_wait: float = CAP_WAIT,
    tag_mover: TagMover | None = None,
    on_released: Callable[[int], None] = lambda _n: None,
    rebaser: Rebasing | None = None,
) -> Rebuild | None:
    """Start the build unless it was started before; BuildThrottled means "try again later".

    A rebased image (logic/rebase.py) starts the same build, to verify its candidate only.
    None: a newer digest of the cascade's base superseded it before it started.
    """
    existing = store.get_rebuild(request.rebuild_id)
    if existing is not None:
        return existing
    if request.cascade:
        node = store.get_node(request.cascade, request.image)
        if node is not None and node.status is NodeStatus.SUPERSEDED:
            return None
    wait = cooldown_left(request, store=store)
    if wait > 0:
        raise CoolingDown(f"{request.image} was rebuilt less than {request.cooldown_seconds} s ago", wait)
    if request.cascade:
        store.set_node_status(request.cascade, request.image, NodeStatus.RUNNING, expect=(NodeStatus.READY,))
    if request.project not in allowed_projects:
        reason = (
            f"CodeBuild project {request.project!r} is not one this stack may start "
            f"(allowed: {', '.join(sorted(allowed_projects)) or 'none'})"
        )
        return store.record_not_started(Rebuild.not_started(request, reason))
    # What the tag holds now: the promotion moves it only from there (a registry failure retries).
    tag_digest, checked = None, False
    if tag_mover is not None:
        try:
            tag_digest, checked = tag_now(request.image, tag_mover), True
        except RegistryError as exc:  # the rebuild goes on; its promotion checks the tag then
            log.warning("the tag of %s could not be read at start: %s", request.image, exc)
    # Cascade rebuilds run under the concurrency cap; a full cap is "try again later".
    capped = bool(request.cascade and cap)
    if capped and not claim_slot(
        request, store=store, builds=builds, projects=allowed_projects, cap=cap or 0, on_released=on_released
    ):
        raise CapReached(f"{cap} patchprop builds already running (ConcurrencyCap)", cap_wait)
    try:
        method = choose_method(request, rebaser=rebaser, tag_digest=tag_digest)
        if method.refused:
            raise BuildStartFailed(method.refused)
        build_id = builds.start_build(
            request.project,
            {**build_env(request), **method.env},
            idempotency_token=request.rebuild_id,
            source_version=request.source_version,
            source_location=request.source_location,
        )
    except (BuildStartFailed, BuildThrottled) as exc:
        if capped:
            store.release_build_slot()
        if isinstance(exc, BuildThrottled):
            raise
        failed = Rebuild.not_started(request, str(exc))
        if request.patch_by == "rebase":
            failed = failed.model_copy(update={"method": "rebased"})
        return store.record_not_started(failed)
    started = Rebuild.started(request, build_id, tag_digest).model_copy(
        update={"tag_checked": checked, **method.fields}
    )
    return store.record_started(started)
