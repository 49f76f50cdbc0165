"""Shared fixtures: AWS (moto) stood up from template.yaml, handlers loaded from functions/."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from patchprop_local.aws import isolate_from_aws

# Never reach real AWS from a test, whatever the developer's shell has.
isolate_from_aws()
os.environ.update({"POWERTOOLS_METRICS_NAMESPACE": "patchprop", "POWERTOOLS_SERVICE_NAME": "patchprop-test"})

from moto import mock_aws  # noqa: E402
from support import PROJECTS, FakeBuilds  # noqa: E402

from patchprop import config, wiring  # noqa: E402
from patchprop_local.lambdas import LocalContext  # noqa: E402
from patchprop_local.provision import provision  # noqa: E402
from patchprop_local.template import Stack  # noqa: E402


@pytest.fixture
def lambda_context() -> LocalContext:
    return LocalContext()


@pytest.fixture
def aws() -> Iterator[Stack]:
    """moto with every table, queue, topic and secret of template.yaml, and the handlers' env set."""
    with mock_aws():
        stack = provision({"RebuildProjects": ",".join(PROJECTS)})
        functions = stack.of_type("AWS::Serverless::Function")
        env = {k: v for fn in functions for k, v in stack.function_env(fn).items()}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        wiring.reset()
        config.env_vars.cache_clear()
        try:
            yield stack
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            wiring.reset()
            config.env_vars.cache_clear()


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBuilds]:
    """Rebuilds started in memory: the handlers' PATCHPROP_BUILDS names this builder."""
    fake = FakeBuilds()
    wiring.register_builds("fake", lambda: fake)
    monkeypatch.setenv("PATCHPROP_BUILDS", "fake")
    config.env_vars.cache_clear()
    wiring.reset()
    yield fake
    wiring.register_builds("fake", None)
    config.env_vars.cache_clear()
    wiring.reset()
