"""The local registry's push notifications wait for a slow hook (a loaded machine) instead of
timing out and re-sending the same envelope, with every later push queued behind it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from patchprop_local import oci
from patchprop_local.registry_server import INSTALL_HINT, LocalRegistry, find_registry_binary

SLOW = 3.0  # seconds the hook takes to answer its first envelope: over the old 2 s timeout


class Hook:
    """Records each manifest push it is told of; answers the first envelope only after SLOW s."""

    def __init__(self) -> None:
        self.pushes: list[str] = []
        self.changed = threading.Condition()
        self.first = True

    def told(self, envelope: dict[str, Any]) -> None:
        slow = False
        with self.changed:
            for event in envelope.get("events", []):
                if event.get("action") == "push" and event.get("target", {}).get("tag"):
                    self.pushes.append(event["target"]["repository"])
            slow, self.first = self.first, False
            self.changed.notify_all()
        if slow:
            threading.Event().wait(SLOW)  # the hook's own work taking long, not a wait in the test

    def wait_for(self, done: Any, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: done(self.pushes), timeout=timeout)


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    recorder = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            recorder.told(json.loads(body or b"{}"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder, f"http://127.0.0.1:{server.server_address[1]}/events"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_hook_slower_than_two_seconds_gets_each_push_once_and_the_next_push_after_it(
    tmp_path: Path, hook: tuple[Hook, str]
) -> None:
    if find_registry_binary() is None:
        pytest.skip(INSTALL_HINT)
    recorder, url = hook
    with LocalRegistry(tmp_path, notify_url=url) as registry:
        # Given a hook that takes SLOW seconds over the first push's notification
        oci.push_image(registry.address, "slow/first", "1", {"etc/a": b"1"})
        assert recorder.wait_for(lambda pushes: "slow/first" in pushes, timeout=30)
        # When a second image is pushed meanwhile
        oci.push_image(registry.address, "slow/second", "1", {"etc/b": b"2"})
        # Then its notification arrives once the slow one was answered
        assert recorder.wait_for(lambda pushes: "slow/second" in pushes, timeout=60), recorder.pushes
    # And the slow envelope was not timed out and sent again
    assert recorder.pushes.count("slow/first") == 1, recorder.pushes
