"""Fixtures for integration tests: a real OCI registry (Debian's docker-registry) on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from patchprop_local.registry_server import INSTALL_HINT, LocalRegistry, find_registry_binary


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """One docker-registry for the whole session; tests use their own repository names."""
    if find_registry_binary() is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the local registry: {INSTALL_HINT}")
        pytest.skip(INSTALL_HINT)
    registry = LocalRegistry(tmp_path_factory.mktemp("registry"))
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()
