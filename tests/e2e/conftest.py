"""The local stack, started once for the e2e tests and stopped after them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from patchprop_local.lifecycle import LocalStack

QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING", "LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
# A cosign stand-in (cosign is not installed here): it records each image it is asked to sign.
FAKE_COSIGN = '#!/bin/sh\nfor a in "$@"; do last="$a"; done\necho "$last" >> "$PATCHPROP_TEST_SIGNED"\n'


# Module scope: torn down before other test modules run, since the stack runs in this process.
@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    bin_dir = tmp_path_factory.mktemp("cosign-bin")
    (bin_dir / "cosign").write_text(FAKE_COSIGN)
    (bin_dir / "cosign").chmod(0o755)
    saved = {name: os.environ.get(name) for name in ("PATH", "PATCHPROP_TEST_SIGNED")}
    os.environ["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    os.environ["PATCHPROP_TEST_SIGNED"] = str(bin_dir / "signed.log")
    stack = LocalStack(
        state_dir=tmp_path_factory.mktemp("local-state"),
        projects=("patchprop-rebuild",),
        poll_interval=3600,
        # Repositories under ecr/ behave as Amazon ECR's: pushes told as "ECR Image Action" events.
        env={**QUIET, "PATCHPROP_LOCAL_ECR_REPOSITORIES": "ecr/*"},
        ports={"api": 0, "aws": 0, "registry": 0},
        signing_key=str(bin_dir / "cosign.key"),
    )
    events: list[tuple[str, dict]] = []
    stack.listeners.append(lambda kind, data: events.append((kind, data)))
    stack.start()
    stack.events = events  # type: ignore[attr-defined]
    stack.signed_log = str(bin_dir / "signed.log")  # type: ignore[attr-defined]
    try:
        yield stack
    finally:
        stack.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
