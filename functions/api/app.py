"""Management API: register, update and remove dependents; list bases, rebuilds and the graph;
promote a rebuild or roll an image back by hand.

Image references hold `/` and `:`, so they travel in the query string or the body, never the path.
AWS_IAM-authorized in AWS (API Gateway checks the SigV4 signature before this runs).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import ApiEnv, env_vars
from patchprop.domain.models import TaggedImage
from patchprop.domain.records import RebuildStatus
from patchprop.logic import catalog, report
from patchprop.logic.base_check import PatchNowAnswer, patch_now
from patchprop.logic.baseline import PollAnswer, behind_bases, poll_now, record_baselines
from patchprop.logic.by_hand import (
    PromoteAnswer,
    PromoteRequest,
    RollbackAnswer,
    RollbackRequest,
    promote_by_hand,
    rollback,
)
from patchprop.logic.catalog import (
    BaseList,
    DependentChanges,
    DependentDetail,
    DependentList,
    DependentRegistration,
    Graph,
    RebuildList,
    Registration,
    Removal,
)
from patchprop.logic.report import FleetStatus, Report
from patchprop.ports import Store
from patchprop.web import answer_errors, caller
from patchprop.web import error_responses as _errors
from patchprop.web import json_answer as _answer
from patchprop.web import ok_response as _ok

# Response bodies at DEBUG would repeat every registration in the logs; keep them above it.
for _noisy in ("botocore", "aws_lambda_powertools.event_handler"):
    logging.getLogger(_noisy).setLevel(logging.INFO)

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = answer_errors(APIGatewayRestResolver(enable_validation=True))


def _store() -> Store:
    return wiring.adapters(env_vars(ApiEnv)).store


# ---- routes ----------------------------------------------------------------------------------


@app.post(
    "/dependents",
    summary="Register or replace a dependent image",
    operation_id="registerDependent",
    responses={
        **_ok(Registration, "Replaced an existing registration"),
        **_ok(Registration, "Registered", HTTPStatus.CREATED),
        **_errors(HTTPStatus.BAD_REQUEST, HTTPStatus.FORBIDDEN, HTTPStatus.CONFLICT),
    },
)
def register_dependent(dependent: Annotated[DependentRegistration, Body()]) -> Response[Registration]:
    """The image, how CodeBuild rebuilds it, its bases, owner and policy. Refused with 403 when the
    CodeBuild project is not one the stack may start, and with 409 when it would close a cycle."""
    env = env_vars(ApiEnv)
    adapters = wiring.adapters(env)
    registration = catalog.register(dependent, store=adapters.store, allowed_projects=env.projects)
    recorded, warnings = record_baselines(dependent, store=adapters.store, registry=adapters.registry)
    behind, late = behind_bases(dependent, store=adapters.store, built_on=adapters.built_on)
    update = {"warnings": warnings + late, "baselined": recorded, "behind": behind}
    registration = registration.model_copy(update=update)
    logger.info("dependent registered", extra={"image": dependent.image, "new": registration.created})
    metrics.add_metric("DependentRegistered", MetricUnit.Count, 1)
    return _answer(HTTPStatus.CREATED if registration.created else HTTPStatus.OK, registration)


@app.patch(
    "/dependents",
    summary="Change some fields of a dependent image",
    operation_id="updateDependent",
    responses={
        **_ok(Registration, "Updated"),
        **_errors(HTTPStatus.BAD_REQUEST, HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT),
    },
)
def update_dependent(
    image: Annotated[TaggedImage, Query(description="The registered image")],
    changes: Annotated[DependentChanges, Body()],
) -> Response[Registration]:
    """Only the fields given change; 404 when the image is not registered."""
    env = env_vars(ApiEnv)
    registration = catalog.update(image, changes, store=_store(), allowed_projects=env.projects)
    return _answer(HTTPStatus.OK, registration)


@app.get(
    "/dependents",
    summary="List dependent images",
    operation_id="listDependents",
    responses={**_ok(DependentList, "Every registered image")},
)
def list_dependents() -> Response[DependentList]:
    return _answer(HTTPStatus.OK, catalog.list_dependents(store=_store()))


@app.get(
    "/dependents/one",
    summary="Show one dependent image",
    operation_id="showDependent",
    responses={
        **_ok(DependentDetail, "The image, its bases with their digests, and its last rebuilds"),
        **_errors(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND),
    },
)
def show_dependent(
    image: Annotated[TaggedImage, Query(description="The registered image")],
) -> Response[DependentDetail]:
    return _answer(HTTPStatus.OK, catalog.describe(image, store=_store()))


@app.delete(
    "/dependents",
    summary="Remove a dependent image",
    operation_id="removeDependent",
    responses={
        **_ok(Removal, "Removed"),
        **_errors(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND),
    },
)
def remove_dependent(
    image: Annotated[TaggedImage, Query(description="The registered image")],
) -> Response[Removal]:
    """Its bases stay tracked; images built on it keep their registrations."""
    removal = catalog.remove(image, store=_store())
    logger.info("dependent removed", extra={"image": image})
    metrics.add_metric("DependentRemoved", MetricUnit.Count, 1)
    return _answer(HTTPStatus.OK, removal)


@app.get(
    "/bases",
    summary="List tracked bases",
    operation_id="listBases",
    responses={**_ok(BaseList, "Each base with its last digest, when it moved, and its dependents")},
)
def list_bases() -> Response[BaseList]:
    return _answer(HTTPStatus.OK, catalog.list_bases(store=_store()))


@app.post(
    "/bases/poll",
    summary="Poll tracked bases now",
    operation_id="pollBases",
    responses={
        **_ok(PollAnswer, "What each base's tag holds now"),
        **_errors(HTTPStatus.NOT_FOUND),
    },
)
def poll_bases_now(
    base: Annotated[TaggedImage | None, Query(description="Only this tracked base")] = None,
) -> Response[PollAnswer]:
    """As the scheduled poll: one HEAD per base; a moved digest enqueues its patch."""
    adapters = wiring.adapters(env_vars(ApiEnv))
    answer = poll_now(
        store=adapters.store, registry=adapters.registry, patches=adapters.patch_queue, base=base
    )
    logger.info("polled by hand", extra={"bases": len(answer.bases), "base": base})
    return _answer(HTTPStatus.OK, answer)


@app.get(
    "/rebuilds",
    summary="Rebuild history",
    operation_id="listRebuilds",
    responses={
        **_ok(RebuildList, "Rebuilds, newest first"),
        **_errors(HTTPStatus.BAD_REQUEST),
    },
)
def list_rebuilds(
    image: Annotated[TaggedImage | None, Query(description="Only this image's rebuilds")] = None,
    base: Annotated[TaggedImage | None, Query(description="Only rebuilds on this (direct) base")] = None,
    status: Annotated[RebuildStatus | None, Query(description="Only rebuilds in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many")] = 50,
) -> Response[RebuildList]:
    history = catalog.rebuild_history(store=_store(), image=image, base=base, status=status, limit=limit)
    return _answer(HTTPStatus.OK, history)


@app.get(
    "/graph",
    summary="The dependency graph",
    operation_id="showGraph",
    responses={
        **_ok(Graph, "Nodes and edges (base -> image built FROM it)"),
        **_errors(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND),
    },
)
def show_graph(
    base: Annotated[
        TaggedImage | None, Query(description="Only what this base's move rebuilds, transitively")
    ] = None,
) -> Response[Graph]:
    """Every image and base, or one base's affected set; each image with its last rebuild."""
    return _answer(HTTPStatus.OK, catalog.graph(store=_store(), base=base))


@app.get(
    "/status",
    summary="The fleet's drift",
    operation_id="showStatus",
    responses={
        **_ok(FleetStatus, "Each image against its bases' current digests, worst first"),
        **_errors(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND),
    },
)
def show_status(
    owner: Annotated[str | None, Query(max_length=128, description="Only this owner's images")] = None,
    behind: Annotated[bool, Query(description="Only the images behind a moved base")] = False,
) -> Response[FleetStatus]:
    """404 (field `owner`) when no image has that owner."""
    return _answer(HTTPStatus.OK, report.status(store=_store(), owner=owner, behind_only=behind))


@app.get(
    "/report",
    summary="The patch report",
    operation_id="showReport",
    responses={
        **_ok(Report, "Time to patch, coverage, detection delay, outcomes, effort saved, compliance"),
        **_errors(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND),
    },
)
def show_report(
    since: Annotated[
        str | None, Query(max_length=64, description="The window: 30d, 12h, 2w or an ISO date (default 30d)")
    ] = None,
    owner: Annotated[str | None, Query(max_length=128, description="Only this owner's images")] = None,
    minutes_per_patch: Annotated[
        float, Query(gt=0, le=10000, description="Minutes a person spends patching one image by hand")
    ] = report.MINUTES_PER_MANUAL_PATCH,
) -> Response[Report]:
    """Each figure is defined in the README ("Fleet status and the patch report")."""
    answer = report.report(store=_store(), since=since, owner=owner, minutes_per_patch=minutes_per_patch)
    return _answer(HTTPStatus.OK, answer)


# ---- people stay in charge -------------------------------------------------------------------


@app.post(
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
    who = caller(app)
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
    return _answer(HTTPStatus.OK, PromoteAnswer.of(rebuild, who, released))


@app.post(
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
    """Moves the tag back to the digest it had before the promotion on it now (or to `to`).
    404: not registered; 409: no earlier promoted digest, or the tag is not patchprop's."""
    adapters = wiring.adapters(env_vars(ApiEnv))
    who = caller(app)
    before, after = rollback(
        image, request.to, who=who, store=adapters.store, tag_mover=adapters.tag_mover, topic=adapters.topic
    )
    logger.info("rolled back", extra={"image": image, "to": after, "by": who})
    metrics.add_metric("RolledBack", MetricUnit.Count, 1)
    return _answer(
        HTTPStatus.OK, RollbackAnswer(image=image, from_digest=before, to_digest=after, rolled_back_by=who)
    )


@app.post(
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
    logger.info("base patched now", extra={"base": base, "digest": patch.digest, "by": caller(app)})
    return PatchNowAnswer.of(patch)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
