"""e2e: in the demo's chain a COPY-only app is rebased and a RUN app rebuilt, through the same
smoke test, gate, promotion and alerts; the alert says which."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.registry import RegistryClient
from patchprop.domain.models import Dependent
from patchprop.domain.refs import parse_ref
from patchprop_cli.demo import EXAMPLES, _annotations, _build, _build_base
from patchprop_cli.discover import discover
from patchprop_local.lifecycle import LocalStack

pytestmark = pytest.mark.e2e
PROJECT = "patchprop-rebuild"
SMOKE = {"golden": "test -x /bin/busybox", "app-a": "grep -q app-a /opt/acme/app.txt", "app-b": "true"}


def digest(image: str) -> str:
    return RegistryClient().resolve_digest(parse_ref(image))


def layers(image: str) -> list[str]:
    ref = parse_ref(image)
    accept = "application/vnd.oci.image.manifest.v1+json"
    url = f"http://{ref.api_host}/v2/{ref.repository}/manifests/{ref.tag}"
    return [
        layer["digest"]
        for layer in requests.get(url, headers={"Accept": accept}, timeout=60).json()["layers"]
    ]


def test_a_copy_only_app_is_rebased_a_run_app_rebuilt_and_the_alerts_say_which(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    # Given base -> golden -> app-a (COPY only), app-b (RUN), registered as discover finds them
    registry = local_stack.describe()["registry"]
    ns = f"r{uuid.uuid4().hex[:6]}"
    images = {name: f"{registry}/{ns}/{name}:1" for name in ("base", "golden", "app-a", "app-b")}
    store = Store(local_stack.describe()["resources"]["PatchpropTable"])
    _build_base(tmp_path, images["base"], patch_level=1)
    for name, parent in (("golden", "base"), ("app-a", "golden"), ("app-b", "golden")):
        pinned = f"{parse_ref(images[parent]).name}@{digest(images[parent])}"
        _build(EXAMPLES / name, images[name], pinned, images[parent], tmp_path)
        found = discover(EXAMPLES / name / "Dockerfile")
        store.put_dependent(
            Dependent(
                image=images[name],
                bases=[images[parent]],
                project=PROJECT,
                source_location=str(EXAMPLES / name),
                test_command=SMOKE[name],
                rebase_safe=found.rebase_safe,
                rebase_unsafe_reason=found.rebase_unsafe,
            )
        )
    local_stack.run_schedules()

    def tracked() -> bool:  # the first poll recorded each base's digest: a push now is a move
        bases = {n: store.get_base(str(parse_ref(images[n]))) for n in ("base", "golden")}
        return all(b is not None and b.digest == digest(images[n]) for n, b in bases.items())

    assert local_stack.wait_for(tracked, timeout=60)
    before = {name: layers(image) for name, image in images.items()}
    # When the base is re-published
    _build_base(tmp_path, images["base"], patch_level=2)

    def told(*names: str) -> bool:
        attributes = [m["MessageAttributes"] for kind, m in local_stack.events if kind == "sns"]
        return {images[n] for n in names} <= {a["image"]["Value"] for a in attributes if "method" in a}

    def state() -> object:
        errors = [data for kind, data in local_stack.events if kind == "error"]
        recorded = {
            n: [(r.status, r.method, r.reason, r.reasons) for r in store.recent_rebuilds(i)]
            for n, i in images.items()
        }
        return recorded, errors

    assert local_stack.wait_for(lambda: told("golden", "app-a", "app-b"), timeout=240), state()
    # Then app-a was rebased and app-b rebuilt, each promoted, and the alerts say which
    rebuilds = {
        name: next(store.recent_rebuilds(images[name], limit=1)) for name in ("golden", "app-a", "app-b")
    }
    assert rebuilds["app-a"].method == "rebased" and rebuilds["app-a"].fallback_reason is None
    assert rebuilds["app-b"].method == "rebuilt"
    assert rebuilds["app-b"].fallback_reason == "not rebase-safe: RUN at line 4"
    assert all(r.on_tag for r in rebuilds.values()), {n: r.reasons for n, r in rebuilds.items()}
    methods = {
        m["MessageAttributes"]["image"]["Value"]: m["MessageAttributes"]["method"]["Value"]
        for kind, m in local_stack.events
        if kind == "sns" and "method" in m["MessageAttributes"]
    }
    assert methods[images["app-a"]] == "rebased" and methods[images["app-b"]] == "rebuilt"
    assert any(reason.startswith("Rebased:") for reason in rebuilds["app-a"].reasons)
    # And the rebased app carries golden's new layers and its own layer unchanged
    after = layers(images["app-a"])
    own = before["app-a"][len(before["golden"]) :]
    assert after == [*layers(images["golden"]), *own] and after != before["app-a"]
    assert _annotations(images["app-a"])["org.opencontainers.image.base.digest"] == digest(images["golden"])
