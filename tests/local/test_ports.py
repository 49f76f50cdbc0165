"""A free port chosen for `patchprop local` is held until our server listens on it: meanwhile no other
process (a second test worker) can bind it, and our own servers (SO_REUSEADDR) still can."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from patchprop_local.ports import choose_port
from patchprop_local.registry_server import port_in_use, release_ports


def test_a_free_port_is_held_against_others_until_released_and_our_server_can_listen_there() -> None:
    # Given a free port chosen for the stack
    held: list[socket.socket] = []
    port = choose_port("api", 0, [], None, held)
    assert len(held) == 1
    # Then another socket cannot bind it while it is held
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))
    # And our own server (SO_REUSEADDR, as http.server, werkzeug and docker-registry bind) listens there
    assert not port_in_use(port)
    server = HTTPServer(("127.0.0.1", port), BaseHTTPRequestHandler)
    try:
        assert server.server_address[1] == port
        # And once released, only the server holds it
        release_ports(held)
        assert held == [] and port_in_use(port)
    finally:
        server.server_close()
    assert not port_in_use(port)


def test_a_saved_port_is_held_until_our_server_binds_and_a_taken_one_is_refused_by_number() -> None:
    # Given the default api port taken by something else
    notes: list[str] = []
    held: list[socket.socket] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        saved = taken.getsockname()[1]
        # Then a saved port that is free is used as it is, and held: another process cannot take
        # it before our server binds it (a killed run's port, restarted)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        assert choose_port("aws", None, notes, free, held) == free and len(held) == 1
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", free))
        # And a saved port another process took is refused, naming it and what to do
        with pytest.raises(RuntimeError, match=rf"port {saved} .*registry.* in use.*stop what listens there"):
            choose_port("registry", None, notes, saved, held)
    release_ports(held)
