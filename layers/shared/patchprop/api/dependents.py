"""Register, change, list, show and remove the dependent images."""

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
from patchprop.logic import catalog
from patchprop.logic.baseline import behind_bases, record_baselines
from patchprop.logic.catalog import (
    DependentChanges,
    DependentDetail,
    DependentList,
    DependentRegistration,
    Registration,
    Removal,
)
from patchprop.ports import Store
from patchprop.web import error_responses as _errors
from patchprop.web import json_answer as _answer
from patchprop.web import ok_response as _ok

logger = Logger(child=True)
metrics = Metrics()
router = Router()


def _store() -> Store:
    return wiring.adapters(env_vars(ApiEnv)).store


@router.post(
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


@router.patch(
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


@router.get(
    "/dependents",
    summary="List dependent images",
    operation_id="listDependents",
    responses={**_ok(DependentList, "Every registered image"), **_errors(HTTPStatus.BAD_REQUEST)},
)
def list_dependents() -> Response[DependentList]:
    return _answer(HTTPStatus.OK, catalog.list_dependents(store=_store()))


@router.get(
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


@router.delete(
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
