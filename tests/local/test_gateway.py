"""The local API gateway, for real: moto's server, the template's routes over HTTP, the CLI against it."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner, Result

from patchprop import config, wiring
from patchprop_cli.main import cli
from patchprop_local.aws import LocalAws
from patchprop_local.gateway import Gateway

pytestmark = pytest.mark.integration
PROJECT = "patchprop-rebuild"


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    """The gateway `patchprop local` runs, on a free port, in front of moto's server."""
    with LocalAws({"RebuildProjects": PROJECT}, env={"POWERTOOLS_METRICS_DISABLED": "true"}) as aws:
        wiring.reset()
        config.env_vars.cache_clear()
        gateway = Gateway(aws).start()
        try:
            yield gateway
        finally:
            gateway.stop()
            wiring.reset()
            config.env_vars.cache_clear()


def request(gateway: Gateway, method: str, path: str, body: str | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", urlsplit(gateway.url).port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


def run(gateway: Gateway, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> Result:
    monkeypatch.chdir(tmp_path)  # no .patchprop/local.json here: the URL comes from the env
    monkeypatch.setenv("PATCHPROP_API_URL", gateway.url)
    return CliRunner().invoke(cli, list(args))


def test_patchprop_update_changes_a_registration_through_the_local_gateway(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given an image registered through the gateway
    image = "docker.io/acme/gateway-update:1"
    registered = run(
        gateway, monkeypatch, tmp_path,
        "register", "--image", image, "--base", "docker.io/library/node:22", "--project", PROJECT,
    )  # fmt: skip
    assert registered.exit_code == 0, registered.output
    # When `patchprop update` changes its owner (a PATCH)
    updated = run(gateway, monkeypatch, tmp_path, "update", image, "--owner", "team-gateway")
    # Then the change is made, and `show` reads it back
    assert updated.exit_code == 0, updated.output
    assert "updated docker.io/acme/gateway-update:1: owner" in updated.output
    shown = run(gateway, monkeypatch, tmp_path, "show", image, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["dependent"]["owner"] == "team-gateway"


def test_every_method_the_template_routes_reaches_its_function(gateway: Gateway) -> None:
    # Given every route of the template (webhook, management API)
    assert {"POST", "GET", "PATCH", "DELETE"} <= {route.method for route in gateway.routes}
    for route in gateway.routes:
        path = re.sub(r"\{\w+\}", "x", route.resource)
        # When it is called over HTTP with its own method (and no valid input)
        status, body = request(gateway, route.method, path, "{}" if route.method != "GET" else None)
        # Then its function answers, in JSON: never http.server's 501, nor "no such route"
        assert status != 501, (route, body)
        assert "no such route" not in body and isinstance(json.loads(body), dict), (route, body)


def test_a_routed_path_with_another_method_is_405_and_an_unknown_path_404(gateway: Gateway) -> None:
    # Given /dependents, which has no PUT route, and a path with no route at all
    # When they are called
    wrong_method = request(gateway, "PUT", "/dependents", "{}")
    unknown = request(gateway, "GET", "/nowhere")
    # Then each says so in JSON
    assert wrong_method[0] == 405 and "PUT" in json.loads(wrong_method[1])["error"]
    assert unknown == (404, json.dumps({"error": "no such route"}))


def _post(gateway: Gateway, path: str, body: str, headers: dict[str, str]) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", urlsplit(gateway.url).port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read().decode() or "null")
    finally:
        conn.close()


def test_a_local_hook_takes_only_its_secret_and_answers_a_malformed_body_400(gateway: Gateway) -> None:
    # Given a local-only hook, as the registry bridge is, behind the gateway's per-start secret
    got: list[dict] = []

    def hook(body: dict) -> None:
        if not isinstance(body.get("events"), list):
            raise ValueError("events must be a list of objects")
        got.append(body)

    gateway.hooks["/_local/test-events"] = hook
    signed = {"Authorization": f"Bearer {gateway.hook_secret}"}
    # When it is posted without the secret, with a wrong one, with bodies it cannot take, and right
    unsigned = _post(gateway, "/_local/test-events", '{"events": []}', {})
    wrong = _post(gateway, "/_local/test-events", '{"events": []}', {"Authorization": "Bearer nope"})
    garbage = _post(gateway, "/_local/test-events", "not json", signed)
    not_object = _post(gateway, "/_local/test-events", "[1]", signed)
    bad_shape = _post(gateway, "/_local/test-events", '{"events": 3}', signed)
    good = _post(gateway, "/_local/test-events", '{"events": []}', signed)
    # Then only the signed, well-formed one reaches the hook; every other is answered, in JSON
    assert (unsigned[0], wrong[0], garbage[0], not_object[0], bad_shape[0], good[0]) == (
        401,
        401,
        400,
        400,
        400,
        200,
    )
    assert unsigned[1] == wrong[1] == {"error": "unauthorized"}
    assert "not JSON" in garbage[1]["error"] and "events" in bad_shape[1]["error"]
    assert got == [{"events": []}]


def test_any_method_is_answered_in_json_never_501(gateway: Gateway) -> None:
    # Given methods no route names, some that http.server knows nothing of
    # When they are sent to a routed path
    answers = [request(gateway, method, "/dependents") for method in ("TRACE", "QUERY", "PROPFIND")]
    # Then each is a JSON 405
    assert [status for status, _ in answers] == [405, 405, 405]
    assert all("error" in json.loads(body) for _, body in answers)


def test_a_function_that_raises_is_a_502_as_api_gateway_answers(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the API function failing outside its own error handling
    def crash(function: str, event: dict) -> dict:
        raise AttributeError("'str' object has no attribute 'get'")

    monkeypatch.setattr(gateway.aws, "invoke", crash)
    # When a route is called
    status, body = request(gateway, "GET", "/dependents")
    # Then the client gets an answer, not a closed connection
    assert (status, json.loads(body)) == (502, {"error": "Internal server error"})
