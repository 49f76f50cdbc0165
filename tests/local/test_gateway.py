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
