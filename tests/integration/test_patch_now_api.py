"""`POST /bases/patch`: an owner's --now through the real API handler on moto, then the planner."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import PROJECTS, drain, handler

from patchprop.adapters.dynamodb import Store
from patchprop.domain.models import Dependent
from patchprop_local.lambdas import LocalContext, api_event

pytestmark = pytest.mark.integration
BASE = "docker.io/library/python:3.13"
D1, D2 = ("sha256:" + c * 64 for c in "12")


def call(method: str, path: str, **query: str) -> tuple[int, Any]:
    event = api_event(method, path, path, {}, "{}")
    event["queryStringParameters"] = query or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    answer = handler("api")(event, LocalContext(function_name="api"))
    return answer["statusCode"], json.loads(answer["body"] or "null")


def test_patch_now_sends_the_current_digest_and_the_planner_rebuilds_it(aws: Any) -> None:
    # Given an image on a base whose last digest moved (no report: not scanned, so it goes on)
    store = Store(aws.refs["PatchpropTable"])
    store.put_dependent(Dependent(image="docker.io/acme/app:1", bases=[BASE], project=PROJECTS[0]))
    store.record_digest(BASE, None, D1)
    store.record_digest(BASE, D1, D2)
    # When an owner asks for it now
    status, body = call("POST", "/bases/patch", base="python:3.13")
    # Then the API answers with what it sent, and the planner plans it once, forced
    assert status == 200, body
    assert body == {"base": BASE, "digest": D2, "previous_digest": D1, "queued": True}
    drain(aws, "PatchQueue", "planner")
    patch = store.get_patch(BASE, D2)
    assert patch is not None and patch.rebuilds == 1
    assert patch.base_check is not None and patch.base_check.urgency_reason == "forced by hand (--now)"


def test_patch_now_of_an_unknown_base_is_404_naming_it(aws: Any) -> None:
    status, body = call("POST", "/bases/patch", base="docker.io/library/nope:1")
    assert status == 404 and body["field"] == "base"
    status, body = call("POST", "/bases/patch", base="Not A Ref")
    assert status == 400 and body["field"] == "base"
