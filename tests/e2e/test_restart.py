"""e2e: the local stack started again on a registry whose images moved while it was stopped."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.registry import RegistryClient
from patchprop.domain.models import Dependent
from patchprop.domain.records import RebuildStatus
from patchprop.domain.refs import parse_ref
from patchprop_cli.demo import EXAMPLES, QUIET, _annotations, _build, _build_base
from patchprop_local.lifecycle import LocalStack
from patchprop_local.registry_server import LocalRegistry

pytestmark = pytest.mark.e2e
PROJECT = "patchprop-rebuild"


def digest(image: str) -> str:
    return RegistryClient().resolve_digest(parse_ref(image))


def stack_on(state_dir: Path, first: bool) -> LocalStack:
    ports: dict[str, int | None] = {"api": 0, "aws": 0, "registry": 0} if first else {}
    return LocalStack(state_dir=state_dir, poll_interval=3600, env=QUIET, ports=ports)


def test_the_first_poll_after_a_restart_sees_a_base_moved_meanwhile_and_patches_it_once(
    tmp_path: Path,
) -> None:
    # Given base -> golden registered on a local stack, its digests recorded by a poll, then stopped
    state = tmp_path / "state"
    stack = stack_on(state, first=True)
    info = stack.start()
    try:
        registry = info["registry"]
        base, golden = f"{registry}/moved/base:1", f"{registry}/moved/golden:1"
        _build_base(tmp_path, base, patch_level=1)
        _build(EXAMPLES / "golden", golden, f"{parse_ref(base).name}@{digest(base)}", base, tmp_path)
        Store(info["resources"]["PatchpropTable"]).put_dependent(
            Dependent(image=golden, bases=[base], project=PROJECT, source_location=str(EXAMPLES / "golden"))
        )
        stack.run_schedules()
        old_base, old_golden = digest(base), digest(golden)
    finally:
        stack.stop()
    # When the base is re-published while the stack is down (the registry alone, on its port)
    alone = LocalRegistry(state / "registry", port=int(registry.rsplit(":", 1)[1]))
    alone.start()
    try:
        _build_base(tmp_path, base, patch_level=2)
        new_base = digest(base)
    finally:
        alone.stop()
    assert new_base != old_base
    # And the stack is started again, and its first poll runs (twice: the second finds nothing new)
    stack = stack_on(state, first=False)
    info = stack.start()
    try:
        assert info["registry"] == registry
        store = Store(info["resources"]["PatchpropTable"])
        stack.run_schedules()

        def rebuilt() -> bool:
            return any(r.status.final and r.notified for r in store.recent_rebuilds(golden))

        assert stack.wait_for(rebuilt, timeout=240)
        stack.run_schedules()
        assert stack.wait_for(lambda: True, timeout=60)
        # Then golden was rebuilt once, on the base's new digest
        (rebuild,) = store.recent_rebuilds(golden)
        assert rebuild.status is RebuildStatus.SUCCEEDED and rebuild.base_digest == new_base, rebuild
        assert digest(golden) != old_golden
        assert _annotations(golden)["org.opencontainers.image.base.digest"] == new_base
        assert store.get_base(str(parse_ref(base))).digest == new_base  # type: ignore[union-attr]
    finally:
        stack.stop()
