"""e2e: a newcomer's first hour (issue 11), on `patchprop local` with real builds.

Their own base and a multi-stage app: `discover` with a source registers it (recording the base's
digest), so the first push of the base rebuilds it; a `RUN false` fails with its reason in
`rebuilds --json` and in the alert; a Dockerfile whose FROM does not use ${BASE_IMAGE} is refused
by `discover`, warned of by `register`, and its rebuild fails: never annotated as pinned.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.registry import RegistryClient
from patchprop.domain.records import RebuildStatus
from patchprop.domain.refs import parse_ref
from patchprop_cli.demo import _annotations, _build, _build_base
from patchprop_cli.main import cli
from patchprop_local.lifecycle import LocalStack

pytestmark = pytest.mark.e2e
PROJECT = "patchprop-rebuild"
APP = """\
ARG BASE_IMAGE={base}
FROM ${{BASE_IMAGE}} AS build
RUN echo built > /artifact
FROM ${{BASE_IMAGE}}
COPY --from=build /artifact /artifact
{extra}"""


def digest(image: str) -> str:
    return RegistryClient().resolve_digest(parse_ref(image))


def patchprop(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, against the running stack; exit code, stdout, stderr."""
    result = CliRunner().invoke(cli, [*args, "--api-url", stack.describe()["api_url"]])
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def ended(stack: LocalStack, image: str, base_digest: str):
    """A `wait_for` condition: `image` has a rebuild on `base_digest` that ended and was told."""

    def done() -> bool:
        store = Store(stack.describe()["resources"]["PatchpropTable"])
        return any(
            r.base_digest == base_digest and r.status.final and r.notified
            for r in store.recent_rebuilds(image)
        )

    return done


def alert_of(stack: LocalStack, image: str) -> str:
    """The last alert told about `image`: its subject and body, as email would get them."""
    told = [
        m
        for kind, m in stack.events
        if kind == "sns" and m["MessageAttributes"].get("image", {}).get("Value") == image
    ]  # type: ignore[attr-defined]
    assert told, f"no alert about {image}"
    return f"{told[-1].get('Subject', '')}\n{told[-1]['Message']}"


def test_a_newcomers_first_hour(local_stack: LocalStack, tmp_path: Path) -> None:
    registry = local_stack.describe()["registry"]
    ns = f"n{uuid.uuid4().hex[:6]}"
    base, app, unpinned = (f"{registry}/{ns}/{name}:1" for name in ("base", "app", "unpinned"))
    # Given their own base, and a multi-stage app built on it (as the README says to build it)
    _build_base(tmp_path, base, patch_level=1)
    source = tmp_path / "app"
    source.mkdir()
    (source / "Dockerfile").write_text(APP.format(base=base, extra=""))
    _build(source, app, f"{parse_ref(base).name}@{digest(base)}", base, tmp_path)
    first = digest(app)

    # When `discover` registers it with a source
    found = patchprop(
        local_stack,
        "discover",
        str(source),
        "--image",
        app,
        "--project",
        PROJECT,
        "--source-location",
        str(source),
    )
    # Then it is registered, and the base's digest recorded now (not at the first push)
    assert found.returncode == 0, found.stdout + found.stderr
    assert f"Recorded the current digest of {base}" in found.stdout
    # And `poll` finds it unchanged (the digest recorded is the registry's)
    polled = json.loads(patchprop(local_stack, "poll", base, "--json").stdout)["bases"]
    assert [(p["base"], p["seen"]) for p in polled] == [(base, "unchanged")]

    # And a Dockerfile whose FROM does not use ${BASE_IMAGE} is refused by discover, saying the line to write
    plain = tmp_path / "unpinned"
    plain.mkdir()
    (plain / "Dockerfile").write_text(f"FROM {base}\nRUN echo hi > /hi\n")
    refused = patchprop(
        local_stack,
        "discover",
        str(plain),
        "--image",
        unpinned,
        "--project",
        PROJECT,
        "--source-location",
        str(plain),
    )
    assert refused.returncode == 2
    assert (
        "does not use ${BASE_IMAGE}" in refused.stderr and "`FROM ${BASE_IMAGE}` on line 1" in refused.stderr
    )
    # And `register` warns of it (and registers: the user asked for it)
    registered = patchprop(
        local_stack,
        "register",
        "--image",
        unpinned,
        "--base",
        base,
        "--project",
        PROJECT,
        "--source-location",
        str(plain),
    )
    assert registered.returncode == 0, registered.stdout + registered.stderr
    assert "warning:" in registered.stderr and "does not use ${BASE_IMAGE}" in registered.stderr

    # When the base is pushed for the first time after registering
    _build_base(tmp_path, base, patch_level=2)
    moved = digest(base)
    assert local_stack.wait_for(ended(local_stack, app, moved), timeout=240)
    assert local_stack.wait_for(ended(local_stack, unpinned, moved), timeout=120)
    # Then the app is rebuilt on it, pinned, and annotated with it
    rebuilt = json.loads(patchprop(local_stack, "rebuilds", "--image", app, "--json").stdout)["rebuilds"][0]
    assert rebuilt["status"] == RebuildStatus.SUCCEEDED.value, rebuilt
    assert digest(app) != first
    assert _annotations(app)["org.opencontainers.image.base.digest"] == moved
    # And the unpinnable one failed saying why, and was never pushed as pinned
    failed = json.loads(patchprop(local_stack, "rebuilds", "--image", unpinned, "--json").stdout)["rebuilds"][
        0
    ]
    assert failed["status"] == "FAILED"
    assert failed["reason"].startswith("verifying the pin: the image was not built on the pinned base")
    assert "FROM ${BASE_IMAGE}" in alert_of(local_stack, unpinned)
    with pytest.raises(Exception):  # noqa: B017 - the tag was never pushed
        digest(unpinned)

    # When the app's Dockerfile gains a failing step, the app is set to be rebuilt from its source
    # (discover marked it rebase-safe, and a rebase patches the image as built: it reads no source),
    # and the base moves again
    (source / "Dockerfile").write_text(APP.format(base=base, extra="RUN false\n"))
    assert patchprop(local_stack, "update", app, "--patch-by", "rebuild").returncode == 0
    _build_base(tmp_path, base, patch_level=3)
    again = digest(base)
    assert local_stack.wait_for(ended(local_stack, app, again), timeout=240)
    # Then `rebuilds --json` gives the reason: the failing step and the log's last lines
    latest = json.loads(patchprop(local_stack, "rebuilds", "--image", app, "--json").stdout)["rebuilds"][0]
    assert latest["status"] == "FAILED" and latest["reason"].startswith("building failed with exit code")
    assert "RUN false" in latest["reason"]
    # And the alert's "Why:" says the same
    why = alert_of(local_stack, app).split("Why:", 1)
    assert len(why) == 2 and "RUN false" in why[1]
    # And the table shows the outcome and the reason
    table = patchprop(local_stack, "rebuilds", "--image", app).stdout
    assert "failed" in table.splitlines()[1] and "building failed with exit code" in table
