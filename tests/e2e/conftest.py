"""The local stack, started once for the e2e tests and stopped after them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from patchprop_local.lifecycle import LocalStack

QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING", "LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}


# Module scope: torn down before other test modules run, since the stack runs in this process.
@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(
        state_dir=tmp_path_factory.mktemp("local-state"),
        projects=("patchprop-rebuild",),
        poll_interval=3600,
        env=QUIET,
        ports={"api": 0, "aws": 0, "registry": 0},
    )
    events: list[tuple[str, dict]] = []
    stack.listeners.append(lambda kind, data: events.append((kind, data)))
    stack.start()
    stack.events = events  # type: ignore[attr-defined]
    try:
        yield stack
    finally:
        stack.stop()
