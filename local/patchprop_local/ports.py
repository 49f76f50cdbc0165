"""The ports of `patchprop local`: the ones asked for, the ones the last run saved, or free ones.

A free port is held by a bound socket (registry_server.reserve_port) until our server listens on
it, so that another process (a second test worker) cannot be handed it in between.
"""

from __future__ import annotations

import socket
from typing import Any

from patchprop_local.registry_server import hold_free_port, port_in_use

DEFAULT_PORTS = {"api": 8780, "aws": 8781, "registry": 8782}


class LocalStackError(RuntimeError):
    """The local stack cannot start (port taken, tool missing, already running)."""


def choose_port(
    name: str, wanted: int | None, notes: list[str], saved: int | None = None, held: list[Any] | None = None
) -> int:
    """The wanted port (0: any free one), or the default; if that is taken, a free one, saying which.

    A free port stays held by a socket put in `held` (hold_free_port) until our server listens on it.
    A port saved by the last run is kept (image references and the webhook URL name it) unless
    another one is asked for; if something else holds it, starting fails saying what to do.
    """
    if saved and not wanted:
        if port_in_use(saved) or not _hold(saved, held):
            raise LocalStackError(
                f"port {saved} on 127.0.0.1 ({name}) is in use, and the images registered here name it: "
                f"stop what listens there (`ss -ltnp 'sport = :{saved}'`), or start on another port "
                "knowing that the references to it will not follow"
            )
        return saved
    if saved and wanted != saved:
        notes.append(f"{name} moves from port {saved} to {wanted or 'a free one'}: references to it break")
    if wanted == 0:
        return hold_free_port(held)
    port = wanted or DEFAULT_PORTS[name]
    if not port_in_use(port):
        return port
    if wanted:
        raise LocalStackError(f"port {port} on 127.0.0.1 ({name}) is already in use")
    chosen = hold_free_port(held)
    notes.append(f"port {port} ({name}) is in use; using {chosen} instead")
    return chosen


def _hold(port: int, held: list[Any] | None) -> bool:
    """Bind `port` (SO_REUSEADDR, never listening) and keep the socket in `held` until our server
    listens on it, so no other process can take a saved port between this check and that bind.
    False if something else has it bound."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return False
    if held is None:
        sock.close()
    else:
        held.append(sock)
    return True
