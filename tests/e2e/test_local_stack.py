"""e2e: the whole system on one machine — real registry, real buildah builds, the real handlers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import boto3
import pytest
import requests

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.registry import RegistryClient
from patchprop.domain.models import Dependent
from patchprop.domain.records import RebuildStatus
from patchprop.domain.refs import parse_ref
from patchprop_cli.demo import EXAMPLES, _annotations, _build, _build_base
from patchprop_local.lifecycle import LocalStack, LocalStackError
from patchprop_local.resources import CHECKOUT as ROOT

pytestmark = pytest.mark.e2e
PROJECT = "patchprop-rebuild"


def digest(image: str) -> str:
    return RegistryClient().resolve_digest(parse_ref(image))


def store(stack: LocalStack) -> Store:
    return Store(stack.describe()["resources"]["PatchpropTable"])


def finished(stack: LocalStack, *images: str, base: str | None = None, digest_of_base: str | None = None):
    """A `wait_for` condition: each image has a rebuild ended and told (on the base's digest if given)."""

    def done() -> bool:
        for image in images:
            rebuilds = [
                r
                for r in store(stack).recent_rebuilds(image)
                if digest_of_base is None or (r.base == base and r.base_digest == digest_of_base)
            ]
            if not any(r.status.final and r.notified for r in rebuilds):
                return False
        return True

    return done


def tracked(stack: LocalStack, *images: str):
    """A `wait_for` condition: each image is a base whose digest the stack knows as the registry's."""

    def done() -> bool:
        for image in images:
            base = store(stack).get_base(str(parse_ref(image)))
            if base is None or base.digest != digest(image):
                return False
        return True

    return done


@pytest.fixture
def chain(local_stack: LocalStack, tmp_path: Path) -> dict[str, str]:
    """base -> golden -> app-a, app-b in the stack's registry, registered, digests baselined."""
    registry = local_stack.describe()["registry"]
    ns = f"t{uuid.uuid4().hex[:6]}"
    images = {name: f"{registry}/{ns}/{name}:1" for name in ("base", "golden", "app-a", "app-b")}
    _build_base(tmp_path, images["base"], patch_level=1)
    for name, parent in (("golden", "base"), ("app-a", "golden"), ("app-b", "golden")):
        parent_ref = parse_ref(images[parent])
        _build(
            EXAMPLES / name,
            images[name],
            f"{parent_ref.name}@{digest(images[parent])}",
            images[parent],
            tmp_path,
        )
        store(local_stack).put_dependent(
            Dependent(
                image=images[name],
                bases=[images[parent]],
                project=PROJECT,
                source_location=str(EXAMPLES / name),
            )
        )
    local_stack.run_schedules()
    assert local_stack.wait_for(tracked(local_stack, images["base"], images["golden"]), timeout=60)
    return images


def test_republished_base_cascades_through_three_levels_with_real_builds(local_stack, chain, tmp_path):
    # Given the chain, with its current digests
    before = {name: digest(image) for name, image in chain.items()}
    # When the base is re-published (the registry notifies the stack of the push)
    _build_base(tmp_path, chain["base"], patch_level=2)
    dependents = (chain["golden"], chain["app-a"], chain["app-b"])

    def told_all() -> bool:
        sns = [m["MessageAttributes"] for kind, m in local_stack.events if kind == "sns"]
        told = {attrs["image"]["Value"] for attrs in sns if "image" in attrs}
        return finished(local_stack, *dependents)() and set(dependents) <= told

    assert local_stack.wait_for(told_all, timeout=240)
    # Then every level has a new digest, and each image's base annotation is its parent's new digest
    after = {name: digest(image) for name, image in chain.items()}
    assert all(before[n] != after[n] for n in chain), (before, after)
    for name, parent in (("golden", "base"), ("app-a", "golden"), ("app-b", "golden")):
        annotations = _annotations(chain[name])
        assert annotations["org.opencontainers.image.base.digest"] == after[parent]
        assert annotations["org.opencontainers.image.base.name"] == str(parse_ref(chain[parent]))
    # And each rebuild is recorded SUCCEEDED and was told on SNS
    rebuilt = [
        r for name in ("golden", "app-a", "app-b") for r in store(local_stack).recent_rebuilds(chain[name])
    ]
    assert {r.status for r in rebuilt} == {RebuildStatus.SUCCEEDED}
    told = {
        m["MessageAttributes"]["image"]["Value"]
        for kind, m in local_stack.events
        if kind == "sns" and "image" in m["MessageAttributes"]
    }  # per rebuild, not the summary
    assert {chain["golden"], chain["app-a"], chain["app-b"]} <= told


def test_failing_dockerfile_gives_a_failed_build_with_its_log_and_others_still_build(local_stack, tmp_path):
    # Given a base with two dependents, one of whose Dockerfiles fails
    registry = local_stack.describe()["registry"]
    ns = f"f{uuid.uuid4().hex[:6]}"
    base, good, bad = (f"{registry}/{ns}/{n}:1" for n in ("base", "good", "bad"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo about to fail && exit 3\n"
    )
    _build_base(tmp_path, base, patch_level=1)
    s = store(local_stack)
    s.put_dependent(
        Dependent(image=good, bases=[base], project=PROJECT, source_location=str(EXAMPLES / "golden"))
    )
    s.put_dependent(Dependent(image=bad, bases=[base], project=PROJECT, source_location=str(broken)))
    local_stack.run_schedules()
    # When the base moves
    _build_base(tmp_path, base, patch_level=2)
    assert local_stack.wait_for(finished(local_stack, good, bad), timeout=240)
    # Then the bad one FAILED with a log that shows why, the good one SUCCEEDED, the stack is up
    (bad_rebuild,) = s.recent_rebuilds(bad)
    (good_rebuild,) = s.recent_rebuilds(good)
    assert bad_rebuild.status is RebuildStatus.FAILED and good_rebuild.status is RebuildStatus.SUCCEEDED
    assert bad_rebuild.log_url and bad_rebuild.log_url.startswith("file://")
    log = Path(url2pathname(urlparse(bad_rebuild.log_url).path)).read_text()
    assert "about to fail" in log
    assert requests.get(local_stack.describe()["api_url"] + "/nothing", timeout=60).status_code == 404


def test_duplicate_webhooks_over_http_start_one_build_per_dependent(local_stack, chain, tmp_path):
    # Given the chain, and the base re-published behind the stack's back (no notification)
    info = local_stack.describe()
    base = parse_ref(chain["base"])
    _build_base(tmp_path, chain["base"], patch_level=3)
    # When Docker Hub's webhook for that push arrives three times over HTTP (plus the registry's own)
    body = {"push_data": {"tag": base.tag}, "repository": {"repo_name": base.name}}
    answers = [requests.post(info["webhook_url"], json=body, timeout=60) for _ in range(3)]
    new_base = digest(chain["base"])
    done = finished(local_stack, chain["golden"], base=str(base), digest_of_base=new_base)
    assert local_stack.wait_for(
        lambda: done() and finished(local_stack, chain["app-a"], chain["app-b"])(), timeout=240
    )
    # Then each image was rebuilt once for this base digest
    assert all(a.status_code == 202 for a in answers)
    golden = [r for r in store(local_stack).recent_rebuilds(chain["golden"]) if r.base_digest == new_base]
    assert len(golden) == 1


def test_aws_endpoint_lists_the_stacks_resources(local_stack):
    info = local_stack.describe()
    dynamodb = boto3.client("dynamodb", endpoint_url=info["aws_endpoint_url"], region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=info["aws_endpoint_url"], region_name="us-east-1")
    assert info["resources"]["PatchpropTable"] in dynamodb.list_tables()["TableNames"]
    assert info["resources"]["RebuildQueue"] in sqs.list_queues()["QueueUrls"]


def test_second_stack_on_the_same_state_dir_is_refused(local_stack):
    with pytest.raises(LocalStackError, match="another `patchprop local`"):
        LocalStack(state_dir=local_stack.state_dir).start()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _exit_code(process: subprocess.Popen, within: float) -> int:
    """The process's exit code; if it has not exited in time, fail with every thread's stack
    (`patchprop local` dumps them on SIGUSR1) and what it printed, so a hang says where it is."""
    try:
        return process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)  # only on this failure path: the dump is written meanwhile
        process.kill()
        output = process.communicate(timeout=30)[0]
        pytest.fail(f"patchprop local did not exit within {within:g}s of SIGINT:\n{output[-12000:]}")


def test_patchprop_local_command_stops_everything_on_sigint(tmp_path):
    # Given `patchprop local` running in its own process
    cli = shutil.which("patchprop") or str(Path(sys.executable).parent / "patchprop")
    process = subprocess.Popen(
        [cli, "local", "--port", "0", "--aws-port", "0", "--registry-port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "cli"), str(ROOT / "local")])},
    )
    state = tmp_path / ".patchprop" / "local.json"
    deadline = time.monotonic() + 60
    while not state.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert state.exists(), process.stdout.read() if process.stdout else ""
    info = json.loads(state.read_text())
    ports = [
        int(info[k].rsplit(":", 1)[1].split("/")[0]) for k in ("api_url", "aws_endpoint_url", "registry")
    ]
    assert all(_listening(p) for p in ports)
    registry_pids = subprocess.run(
        ["pgrep", "-f", str(tmp_path / ".patchprop" / "registry")], capture_output=True, text=True
    ).stdout.split()
    assert registry_pids
    # When it gets Ctrl-C
    process.send_signal(signal.SIGINT)
    assert _exit_code(process, within=30) == 0
    # Then nothing it started is left and its ports are free
    assert not any(_listening(p) for p in ports)
    assert (
        subprocess.run(
            ["pgrep", "-f", str(tmp_path / ".patchprop" / "registry")], capture_output=True
        ).returncode
        == 1
    )
    assert not state.exists()


def test_cli_over_the_local_api_registers_shows_updates_and_removes(local_stack):
    from click.testing import CliRunner

    from patchprop_cli.main import cli

    api = local_stack.describe()["api_url"]
    image = f"{local_stack.describe()['registry']}/cli/app:1"
    runner = CliRunner()
    # Given an image registered through the local API (query strings and all)
    registered = runner.invoke(
        cli,
        ["register", "--api-url", api, "--image", image, "--base", "node:22", "--project", PROJECT, "--json"],
    )
    assert registered.exit_code == 0, registered.output
    # When it is shown, updated (a PATCH: the gateway once answered it 501), and removed
    shown = runner.invoke(cli, ["show", image, "--api-url", api, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["dependent"]["bases"] == ["docker.io/library/node:22"]
    updated = runner.invoke(cli, ["update", image, "--owner", "team-cli", "--api-url", api, "--json"])
    assert updated.exit_code == 0, updated.output
    assert json.loads(updated.output)["dependent"]["owner"] == "team-cli"
    removed = runner.invoke(cli, ["remove", image, "--api-url", api])
    assert removed.exit_code == 0, removed.output
    # Then it is gone: show answers 404 as a clear error
    gone = runner.invoke(cli, ["show", image, "--api-url", api])
    assert gone.exit_code != 0 and "no dependent" in gone.output.lower()


# ---- promotion: the gate is the only way onto a tag --------------------------------------
