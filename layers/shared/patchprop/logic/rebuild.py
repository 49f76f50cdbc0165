"""Start a rebuild on CodeBuild, pinned to the new base digest, exactly once."""

from __future__ import annotations

from collections.abc import Collection

from patchprop.builds import Builds
from patchprop.errors import BuildStartFailed
from patchprop.models import Rebuild, RebuildRequest
from patchprop.store import Store


def build_env(request: RebuildRequest) -> dict[str, str]:
    """What the build sees: the base pinned by digest, the target, and ids for correlation."""
    env = {
        "BASE_IMAGE": request.pinned_base,
        "BASE_IMAGE_NAME": request.base,
        "BASE_IMAGE_DIGEST": request.base_digest,
        "TARGET_IMAGE": request.image,
        "PATCHPROP_REBUILD_ID": request.rebuild_id,
    }
    for name, value in sorted(request.build_args.items()):
        env[f"BUILD_ARG_{name}"] = value
    return env


def start_rebuild(
    request: RebuildRequest, *, store: Store, builds: Builds, allowed_projects: Collection[str]
) -> Rebuild:
    """Start the build unless it was started before; BuildThrottled means "try again later"."""
    existing = store.get_rebuild(request.rebuild_id)
    if existing is not None:
        return existing
    if request.project not in allowed_projects:
        return store.record_not_started(
            request,
            f"CodeBuild project {request.project!r} is not one this stack may start "
            f"(allowed: {', '.join(sorted(allowed_projects)) or 'none'})",
        )
    try:
        build_id = builds.start_build(
            request.project,
            build_env(request),
            idempotency_token=request.rebuild_id,
            source_version=request.source_version,
            source_location=request.source_location,
        )
    except BuildStartFailed as exc:
        return store.record_not_started(request, str(exc))
    return store.record_started(request, build_id)
