"""Choose how a dependent is patched, and rebase it when that is the way.

`auto` rebases an image `patchprop discover` found rebase-safe (its final stage only copies
files and sets metadata) whose first layers are the old base's; anything else is rebuilt, with
the reason. `rebase` rebases or fails with the reason; `rebuild` always builds.

A rebased candidate then goes through the same build project in a verify-only mode (the
candidate's digest in PATCHPROP_CANDIDATE_DIGEST: smoke test, SBOM and scan, no build), so its
build events reach the same gate, promotion, alerts and cascade as a rebuilt image's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from patchprop.domain.errors import BuildThrottled, RegistryError, RegistryRateLimited, RegistryUnavailable
from patchprop.domain.models import RebuildRequest
from patchprop.domain.rebase import RebaseRefused
from patchprop.domain.records import Rebuild
from patchprop.domain.refs import parse_ref
from patchprop.ports import Rebasing

log = logging.getLogger(__name__)
CANDIDATE_VAR = "PATCHPROP_CANDIDATE_DIGEST"
REBUILT, REBASED = "rebuilt", "rebased"


@dataclass(frozen=True)
class Method:
    """How this rebuild patches its image, and why not the other way."""

    method: str  # REBUILT or REBASED
    fallback_reason: str | None = None  # why a rebase was not done when the method allowed one
    candidate: str | None = None  # the rebased candidate's digest
    refused: str | None = None  # patch_by=rebase and the rebase was refused: the rebuild fails

    @property
    def env(self) -> dict[str, str]:
        """What the build sees beyond build_env: the candidate to verify instead of a build."""
        return {CANDIDATE_VAR: self.candidate} if self.candidate else {}

    @property
    def fields(self) -> dict[str, str | None]:
        return {"method": self.method, "fallback_reason": self.fallback_reason}


def choose_method(request: RebuildRequest, *, rebaser: Rebasing | None, tag_digest: str | None) -> Method:
    """Rebase when the request's method says so and the rebase is exact; else rebuild (and why).

    Raises BuildThrottled when the registry fails for now under `rebase` (retried later).
    """
    if request.patch_by == "rebuild":
        return Method(REBUILT)
    if request.patch_by == "auto" and request.rebase_safe is None:
        return Method(REBUILT)  # never marked (registered without `discover`): nothing fell back
    if request.patch_by == "auto" and request.rebase_safe is False:
        return _fallback(request, f"not rebase-safe: {request.rebase_unsafe_reason or 'not known'}")
    if rebaser is None:
        return _fallback(request, "this rebuilder has no registry access to rebase with")
    image = parse_ref(request.image)
    if tag_digest:  # exactly what the tag held at start: the promotion moves it only from there
        image = image.with_digest(tag_digest)
    try:
        done = rebaser.rebase(image, parse_ref(request.base), request.base_digest, request.previous_digest)
    except RebaseRefused as exc:
        return _fallback(request, f"rebase refused: {exc}")
    except (ValueError, KeyError, TypeError) as exc:  # a manifest or config of an unexpected shape
        return _fallback(request, f"rebase refused: a manifest or config could not be read ({exc!r})")
    except (RegistryUnavailable, RegistryRateLimited) as exc:
        if request.patch_by == "rebase":
            raise BuildThrottled(f"the registry failed the rebase for now: {exc}") from exc
        return _fallback(request, f"the registry failed the rebase: {exc}")
    except RegistryError as exc:
        return _fallback(request, f"the registry refused the rebase: {exc}")
    log.info("rebased %s onto %s: %s", request.image, request.base_digest, done)
    return Method(REBASED, candidate=done.digest)


def _fallback(request: RebuildRequest, reason: str) -> Method:
    if request.patch_by == "rebase":
        return Method(REBASED, refused=f"{reason}; --patch-by rebase: not rebuilding")
    return Method(REBUILT, fallback_reason=reason)


def method_note(rebuild: Rebuild) -> list[str]:
    """What an alert says about how the image was patched."""
    if rebuild.method == REBASED:
        return ["Rebased: its own layers were put on the new base with the registry API (no build)."]
    if rebuild.method == REBUILT and rebuild.fallback_reason:
        return [f"Rebuilt, not rebased: {rebuild.fallback_reason}."]
    return []
