"""A registry notification that arrives while the local stack stops is a quiet 503, never a traceback."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from patchprop_local.gateway import Gateway, GatewayStopping

HOOK = "/_local/registry-events"


class NoRoutes:
    def routes(self) -> list[Any]:
        return []


def post(gateway: Gateway, secret: str) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", urlsplit(gateway.url).port, timeout=30)
    try:
        conn.request("POST", HOOK, body='{"events": []}', headers={"Authorization": f"Bearer {secret}"})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"{}")
    finally:
        conn.close()


def test_a_notification_delivered_as_the_stack_stops_gets_503(capfd: pytest.CaptureFixture[str]) -> None:
    def stopped(_envelope: dict[str, Any]) -> None:
        raise GatewayStopping("the local stack is stopping")  # what LocalStack._post raises once stopped

    gateway = Gateway(NoRoutes(), hooks={HOOK: stopped}, hook_secret="s").start()  # type: ignore[arg-type]
    try:
        assert post(gateway, "s") == (503, {"error": "stopping"})
    finally:
        gateway.stop()
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out


def test_a_stopping_gateway_answers_503_before_running_anything() -> None:
    ran: list[dict[str, Any]] = []
    gateway = Gateway(NoRoutes(), hooks={HOOK: ran.append}, hook_secret="s").start()  # type: ignore[arg-type]
    try:
        gateway.stopping = True
        status, _ = post(gateway, "s")
    finally:
        gateway.stop()
    assert status == 503 and ran == []
