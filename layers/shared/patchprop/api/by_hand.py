"""People stay in charge: promote a rebuild, roll an image back, patch a base now."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.metrics import MetricUnit

from patchprop import wiring
from patchprop.config import ApiEnv, env_vars
from patchprop.domain.models import TaggedImage
from patchprop.logic.base_check import PatchNowAnswer, patch_now
from patchprop.logic.by_hand import (
    PromoteAnswer,
    PromoteRequest,
    RollbackAnswer,
    RollbackRequest,
    promote_by_hand,
    rollback,
)
from patchprop.web import caller
from patchprop.web import error_responses as _errors
from patchprop.web import json_answer as _answer
from patchprop.web import ok_response as _ok

logger = Logger(child=True)
metrics = Metrics()
router = Router()


@router.post(
    "/rebuilds/<rebuild_id>/promote",
    summary="Promote a rebuild by hand",
    operation_id="promoteRebuild",
    responses={
        **_ok(PromoteAnswer, "The image's tag is on the rebuild's digest"),
        **_errors(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT),
    },
)
def promote_rebuild(rebuild_id: str, request: Annotated[PromoteRequest, Body()]) -> Response[PromoteAnswer]:
    """Moves the tag to a finished rebuild's digest the gate held back, records who, when and why,
    tells it, and continues its cascade. 404: no such rebuild; 409: still running, promoted
    already, no image, or a newer image is on the tag (nothing changed)."""
    adapters = wiring.adapters(env_vars(ApiEnv))
    who = caller(router)
    rebuild, released = promote_by_hand(
        rebuild_id,
        who=who,
        reason=request.reason,
        store=adapters.store,
        tag_mover=adapters.tag_mover,
        topic=adapters.topic,
        rebuild_queue=adapters.rebuild_queue,
        builds=None,
        evidence=adapters.evidence,
        bus=adapters.bus,
    )
    logger.info("promoted by hand", extra={"rebuild_id": rebuild_id, "by": who})
    metrics.add_metric("PromotedByHand", MetricUnit.Count, 1)
    if rebuild.signed is False and adapters.signer is not None:  # promoted all the same; told why
        metrics.add_metric("SigningFailed", MetricUnit.Count, 1)
    return _answer(HTTPStatus.OK, PromoteAnswer.of(rebuild, who, released))


@router.post(
    "/dependents/rollback",
    summary="Roll an image's tag back",
    operation_id="rollbackDependent",
    responses={
        **_ok(RollbackAnswer, "The tag is on the earlier digest"),
        **_errors(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT),
    },
)
def rollback_dependent(
    image: Annotated[TaggedImage, Query(description="The registered image")],
    request: Annotated[RollbackRequest, Body()],
) -> Response[RollbackAnswer]:
    """Moves the tag back to the digest it had before the promotion on it now (or to `to`); the
    images built on it are patched onto that digest (once per move). 404: not registered; 409: no
    earlier promoted digest, or the tag is not patchprop's."""
    env = env_vars(ApiEnv)
    adapters = wiring.adapters(env)
    who = caller(router)
    done = rollback(
        image,
        request.to,
        who=who,
        store=adapters.store,
        tag_mover=adapters.tag_mover,
        topic=adapters.topic,
        patches=adapters.patch_queue if env.PATCH_QUEUE_URL else None,
        bus=adapters.bus,
    )
    patched = done.patch.cascade_id if done.patch else None
    logger.info("rolled back", extra={"image": image, "to": done.to_digest, "by": who, "patch": patched})
    metrics.add_metric("RolledBack", MetricUnit.Count, 1)
    answer = RollbackAnswer(
        image=image,
        from_digest=done.from_digest,
        to_digest=done.to_digest,
        rolled_back_by=who,
        dependents_patch=patched,
    )
    return _answer(HTTPStatus.OK, answer)


@router.post(
    "/bases/patch",
    summary="Rebuild what is built on a base now",
    operation_id="patchBaseNow",
    responses={
        **_ok(PatchNowAnswer, "Sent to the planner, forced now"),
        **_errors(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT),
    },
)
def patch_base_now(base: Annotated[TaggedImage, Query(description="The tracked base")]) -> PatchNowAnswer:
    """The base's current digest rebuilds its dependents at once, whatever its urgency (batched,
    skipped); a base whose signature failed stays refused. 404: not tracked; 409: no digest yet."""
    adapters = wiring.adapters(env_vars(ApiEnv))
    patch = patch_now(base, store=adapters.store, patches=adapters.patch_queue)
    logger.info("base patched now", extra={"base": base, "digest": patch.digest, "by": caller(router)})
    return PatchNowAnswer.of(patch)
