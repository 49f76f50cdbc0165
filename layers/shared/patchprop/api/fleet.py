"""What is tracked and what happened: bases, polls, rebuilds, the graph, fleet status, the report."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, ConfigDict

from patchprop import wiring
from patchprop.config import ApiEnv, env_vars
from patchprop.domain.models import TaggedImage
from patchprop.domain.records import RebuildStatus
from patchprop.logic import catalog, report
from patchprop.logic.baseline import PollAnswer, poll_now
from patchprop.logic.catalog import BaseList, Graph, RebuildList
from patchprop.logic.report import FleetStatus, Report
from patchprop.logic.rescan import RescanAnswer, rescan_by_hand
from patchprop.ports import Store
from patchprop.web import error_responses as _errors
from patchprop.web import json_answer as _answer
from patchprop.web import ok_response as _ok

logger = Logger(child=True)
router = Router()


def _store() -> Store:
    return wiring.adapters(env_vars(ApiEnv)).store


@router.get(
    "/bases",
    summary="List tracked bases",
    operation_id="listBases",
    responses={
        **_ok(BaseList, "Each base with its last digest, when it moved, and its dependents"),
        **_errors(HTTPStatus.BAD_REQUEST),
    },
)
def list_bases() -> Response[BaseList]:
    return _answer(HTTPStatus.OK, catalog.list_bases(store=_store()))


@router.post(
    "/bases/poll",
    summary="Poll tracked bases now",
    operation_id="pollBases",
    responses={
        **_ok(PollAnswer, "What each base's tag holds now"),
        **_errors(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND),
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


@router.get(
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


@router.get(
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


@router.get(
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


@router.get(
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


class RescanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: TaggedImage | None = None  # None: what the tick would rescan now (within the budget)


@router.post(
    "/rescans",
    summary="Rescan promoted images now",
    operation_id="rescanImages",
    responses={
        **_ok(RescanAnswer, "Each image rescanned: its outcome, and the rebuild it started"),
        **_errors(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT),
    },
)
def rescan_images(request: Annotated[RescanRequest | None, Body()] = None) -> Response[RescanAnswer]:
    """The promoted digest's current findings (ECR's, or with ScanSource=trivy a scan-only build's:
    "scan started", judged when it ends): own packages with fixes rebuild the image alone, under
    the same gate. A named image ignores the day's budget; without one, what is due.
    404: not registered; 409: no rescans configured, tracked only, or nothing promoted."""
    image = request.image if request else None
    env = env_vars(ApiEnv)
    adapters = wiring.adapters(env)
    parts = adapters.rescan_parts(env.SCAN_SOURCE, env.projects)
    answer = rescan_by_hand(
        parts, per_day=env.OWN_PACKAGE_RESCANS_PER_DAY, scan_source=env.SCAN_SOURCE, image=image
    )
    logger.info("rescanned by hand", extra={"image": image, "rescanned": len(answer.rescanned)})
    return _answer(HTTPStatus.OK, answer)
