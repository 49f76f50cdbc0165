"""Fixtures of the local stack's parts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from patchprop import config, wiring
from patchprop_local.aws import LocalAws


@pytest.fixture()
def quiet_aws() -> Iterator[LocalAws]:
    """moto's server with the template's resources and functions, metrics and info logs off."""
    quiet = {"POWERTOOLS_METRICS_DISABLED": "true", "LOG_LEVEL": "WARNING", "POWERTOOLS_LOG_LEVEL": "WARNING"}
    with LocalAws({"RebuildProjects": "patchprop-rebuild"}, env=quiet) as aws:
        wiring.reset()
        config.env_vars.cache_clear()
        try:
            yield aws
        finally:
            wiring.reset()
            config.env_vars.cache_clear()
