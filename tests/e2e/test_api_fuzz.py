"""e2e: the management API fuzzed from its own spec (openapi.json) on the local stack, and bad
registrations next to good ones on one base: none of them may stop the good ones being patched."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from patchprop.adapters.dynamodb import Store
from patchprop.domain.models import Base
from patchprop.domain.records import RebuildStatus
from patchprop_cli.demo import EXAMPLES, _build_base
from patchprop_local.lifecycle import LocalStack
from patchprop_local.resources import CHECKOUT as ROOT

pytestmark = pytest.mark.e2e
PROJECT = "patchprop-rebuild"
LISTINGS = ("/dependents", "/bases", "/rebuilds", "/graph")
EXAMPLES_PER_OPERATION = 15  # per generation mode; bounded so the run stays well under a minute
_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-_]*$")


def _allowed_project(case: Any) -> None:
    """A valid project name becomes the stack's one, so valid registrations get stored (not 403)."""
    body = case.body
    project = body.get("project") if isinstance(body, dict) else None
    if isinstance(project, str) and _PROJECT.fullmatch(project) and 2 <= len(project) <= 150:
        body["project"] = PROJECT


def _error_names_its_field(response: Any) -> None:
    """Every 4xx is JSON with an `error`; a 400, 403, 404 or 409 also names the field it is about."""
    if not 400 <= response.status_code < 500:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/json"), response.text
    body = json.loads(response.text)
    assert isinstance(body, dict) and body.get("error"), response.text
    if response.status_code in (400, 403, 404, 409):
        assert body.get("field"), response.text


# The committed document, as a client reads it (a test elsewhere keeps it what the code generates),
# without its SigV4 requirement: API Gateway checks signatures, and `patchprop local` takes none.
_DOCUMENT = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
fuzzed = schemathesis.openapi.from_dict({**_DOCUMENT, "security": []})


@fuzzed.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_anything_its_spec_allows_or_forbids_without_5xx(
    case: Any, local_stack: LocalStack
) -> None:
    # Given a request generated from openapi.json (valid, or breaking it on purpose)
    _allowed_project(case)
    # When it is sent to the local stack
    response = case.call(base_url=local_stack.describe()["api_url"], timeout=30)
    # Then no 5xx, the answer is what the spec says, a request outside the spec is refused,
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
    )
    # and a refusal names the field
    _error_names_its_field(response)


def test_after_the_fuzz_every_listing_works(local_stack: LocalStack) -> None:
    # Given whatever the fuzz run registered
    api = local_stack.describe()["api_url"]
    # When every listing is read
    answers = {path: requests.get(api + path, timeout=30) for path in LISTINGS}
    # Then each answers 200 with JSON
    assert {path: a.status_code for path, a in answers.items()} == dict.fromkeys(LISTINGS, 200)
    assert all(isinstance(a.json(), dict) for a in answers.values())


def _until(stack: LocalStack, condition: Callable[[], bool], timeout: float = 120) -> bool:
    """Deliver events until `condition` holds (a notification or build may be slow on a busy machine)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        stack.wait_idle(timeout=5, quiet=0.5)
    return True


def _corrupt(table_name: str, endpoint: str, image: str, base: str) -> None:
    """A dependent and its edge as an older or broken writer left them: they no longer read."""
    table = boto3.resource("dynamodb", endpoint_url=endpoint, region_name="us-east-1").Table(table_name)
    body = {
        "image": image,
        "project": PROJECT,
        "bases": [base],
        "build_args": {"not a name": "y"},
        "cooldown_seconds": -5,
        "auto_rebuild": True,
    }
    table.put_item(
        Item={
            "PK": f"IMAGE#{image}",
            "SK": "#IMAGE",
            "GSI1PK": "DEPENDENTS",
            "GSI1SK": image,
            "kind": "dependent",
            **body,
        }
    )
    table.put_item(
        Item={
            "PK": f"IMAGE#{image}",
            "SK": f"BASE#{base}",
            "GSI1PK": f"BASE#{base}",
            "GSI1SK": f"IMAGE#{image}",
            "kind": "edge",
            **body,
        }
    )


def test_bad_registrations_on_a_base_never_stop_its_good_dependents_being_rebuilt(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    # Given a base with two good dependents, registered through the API
    info = local_stack.describe()
    api, registry = info["api_url"], info["registry"]
    ns = f"v{uuid.uuid4().hex[:6]}"
    base = f"{registry}/{ns}/base:1"
    good = [f"{registry}/{ns}/good-{n}:1" for n in (1, 2)]
    for image in good:
        answer = requests.post(
            f"{api}/dependents",
            json={
                "image": image,
                "project": PROJECT,
                "bases": [base],
                "source_location": str(EXAMPLES / "golden"),
            },
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
    # and the bad ones of the issue, each refused with a 400 naming the field, changing nothing
    before = requests.get(f"{api}/dependents", timeout=30).json()
    bad = [
        ("build_args", {"": "y"}),
        ("build_args", {"a b;c": "y"}),
        ("build_args", {f"A{i}": "v" for i in range(1000)}),
        ("bases", [f"{registry}/{ns}/b{i}:1" for i in range(1000)]),
        ("owner", "x" * 1000),
    ]
    for field, value in bad:
        body = {"image": f"{registry}/{ns}/bad:1", "project": PROJECT, "bases": [base], field: value}
        answer = requests.post(f"{api}/dependents", json=body, timeout=30)
        assert (answer.status_code, answer.json()["field"]) == (400, field), answer.text
    assert requests.get(f"{api}/dependents", timeout=30).json() == before
    # and one stored record on the base that no longer reads (an older version wrote it)
    broken = f"{registry}/{ns}/broken:1"
    _corrupt(info["resources"]["PatchpropTable"], info["aws_endpoint_url"], broken, base)
    assert all(requests.get(api + path, timeout=30).status_code == 200 for path in LISTINGS)
    # and the base's first push, which its registry notification records as the baseline (no poll:
    # the fuzz run registered bases on registries this machine cannot reach)
    store = Store(info["resources"]["PatchpropTable"])
    _build_base(tmp_path, base, patch_level=1)
    assert _until(local_stack, lambda: (store.get_base(base) or Base(ref=base)).digest is not None)
    # When the base is re-published
    _build_base(tmp_path, base, patch_level=2)

    # Then every good dependent was rebuilt on it
    def statuses() -> dict[str, list[RebuildStatus]]:
        return {image: [r.status for r in store.recent_rebuilds(image)] for image in good}

    assert _until(local_stack, lambda: all(s and s[0].final for s in statuses().values()), timeout=240)
    assert statuses() == {image: [RebuildStatus.SUCCEEDED] for image in good}
    # and the broken one can still be removed through the API
    assert requests.delete(f"{api}/dependents", params={"image": broken}, timeout=30).status_code == 200
    assert broken not in {
        d["image"] for d in requests.get(f"{api}/dependents", timeout=30).json()["dependents"]
    }
