"""A real OCI registry on 127.0.0.1 for tests, the demo and `patchprop local`.

Runs Debian's `docker-registry` (CNCF distribution v2) with a generated configuration:
filesystem storage under `root/data`, deletes enabled, and optionally a notification
endpoint that receives the registry's push events.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

INSTALL_HINT = "docker-registry not found: install it with `apt-get install docker-registry`"
DEBIAN_BINARY = "/usr/bin/docker-registry"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def find_registry_binary() -> str | None:
    """Path of the `docker-registry` executable, or None if it is not installed."""
    found = shutil.which("docker-registry")
    if found:
        return found
    return DEBIAN_BINARY if os.access(DEBIAN_BINARY, os.X_OK) else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reserve_port() -> socket.socket:
    """A free port on 127.0.0.1, held by a bound (never listening) socket until it is closed.

    Bound with SO_REUSEADDR, it lets our own servers (which set it too) bind and listen on the
    port, while another process's bind(0) or connect() cannot be handed it meanwhile: free_port()
    alone leaves a window, between choosing and binding, in which a second test worker can.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def hold_free_port(held: list[socket.socket] | None) -> int:
    """A free port, its reserve_port() socket put in `held` (closed at once if None)."""
    sock = reserve_port()
    if held is None:
        sock.close()
    else:
        held.append(sock)
    return int(sock.getsockname()[1])


def release_ports(held: list[socket.socket]) -> None:
    while held:
        held.pop().close()


def port_in_use(port: int) -> bool:
    """Something listens on (or holds) 127.0.0.1:`port`; sockets in TIME-WAIT do not count.

    SO_REUSEADDR, as the servers set it when they bind (http.server, werkzeug, Go's net), so a
    port a quick restart just let go of is free again, as it is for them.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class LocalRegistry:
    """`docker-registry` listening on 127.0.0.1:<port>, storing under `root`.

    Use as a context manager, or call start() and stop().
    """

    def __init__(
        self,
        root: Path,
        port: int | None = None,
        notify_url: str | None = None,
        notify_headers: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.port = port
        self.notify_url = notify_url
        self.notify_headers = dict(notify_headers or {})  # sent with each notification
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """`127.0.0.1:<port>`, the registry host to use in image references."""
        if self.port is None:
            raise RuntimeError("the local registry has no port until it is started")
        return f"127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.root / "config.yml"

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    def config(self) -> dict[str, object]:
        """The registry configuration (distribution v2 `config.yml` schema)."""
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "warn", "fields": {"service": "registry"}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root / "data")},
                "delete": {"enabled": True},
            },
            "http": {
                "addr": self.address,
                "secret": secrets.token_hex(16),
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        if self.notify_url:
            config["notifications"] = {
                "endpoints": [
                    {
                        "name": "patchprop",
                        "url": self.notify_url,
                        "headers": {name: [value] for name, value in self.notify_headers.items()},
                        # Our hook answers once each push in the envelope went through the webhook
                        # (its state saved): on a loaded machine that can take over 2 s, and the
                        # registry then sent the same envelope again, later pushes waiting behind it.
                        # 30 s leaves room for load.
                        "timeout": "30s",
                        "threshold": 5,
                        "backoff": "1s",
                        # Only manifest pushes matter: every HEAD is a "pull" event and every
                        # layer upload a blob event. distribution ignores `ignore.actions`
                        # unless some media type is ignored too, so both are needed.
                        "ignore": {"mediatypes": ["application/octet-stream"], "actions": ["pull"]},
                    }
                ]
            }
        return config

    def start(self) -> LocalRegistry:
        if self.process is not None:
            raise RuntimeError(f"the local registry is already running on {self.address}")
        binary = find_registry_binary()
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        if self.port is not None and port_in_use(self.port):
            raise RuntimeError(f"cannot start docker-registry: port 127.0.0.1:{self.port} is taken")
        chosen = self.port
        self.port = chosen or free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        # JSON is YAML: no YAML library needed, and no quoting surprises.
        # It holds secrets (the registry's, the notification header): readable by this user only.
        self.config_path.touch(mode=0o600)
        self.config_path.chmod(0o600)
        self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")
        # REGISTRY_* variables would override the file (e.g. REGISTRY_HTTP_ADDR): drop them.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=env,
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            if chosen is None:
                self.port = None
            raise
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        assert self.process is not None and self.port is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                reason = "port is taken" if "address already in use" in self.log_tail() else "it exited"
                raise RuntimeError(
                    f"docker-registry on {self.address} failed to start ({reason}, exit code {code}); "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self._ping() == 200:
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"docker-registry on {self.address} did not answer GET /v2/ within {START_TIMEOUT:g}s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def _ping(self) -> int | None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1.0)
        try:
            conn.request("GET", "/v2/")
            return conn.getresponse().status
        except OSError:
            return None
        finally:
            conn.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
