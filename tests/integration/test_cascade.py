"""Cascades through the real handlers on moto: order, fan-in once, failures block, cap, supersede."""

from __future__ import annotations

import boto3
import pytest
from support import drain, handler, receive_all, subscribe_outcomes

from patchprop.adapters.dynamodb import Store
from patchprop.adapters.dynamodb.keys import LIMIT_KEY
from patchprop.adapters.sqs import Queue
from patchprop.domain.models import CascadeId, Dependent, PatchRequest
from patchprop_local.lambdas import LocalContext, eventbridge_event

pytestmark = pytest.mark.integration
ROOT = "docker.io/acme/base:1"
D0, D1 = "sha256:" + "0" * 64, "sha256:" + "1" * 64


def img(name: str) -> str:
    return f"docker.io/acme/{name}:1"


def register(store: Store, name: str, *parents: str) -> None:
    bases = [p if "/" in p else img(p) for p in parents]
    store.put_dependent(Dependent(image=img(name), bases=bases, project="patchprop-rebuild"))


@pytest.fixture(autouse=True)
def no_scan_required(aws, monkeypatch):
    """These tests are about order, not scans: an unscanned rebuild counts as succeeded."""
    monkeypatch.setenv("REQUIRE_SCAN", "false")
    from patchprop import config

    config.env_vars.cache_clear()


@pytest.fixture
def diamond(aws):
    """base -> a, b;  c FROM a and b;  d FROM c;  e FROM base."""
    store = Store(aws.refs["PatchpropTable"])
    for name, parents in [("a", [ROOT]), ("b", [ROOT]), ("c", ["a", "b"]), ("d", ["c"]), ("e", [ROOT])]:
        register(store, name, *parents)
    store.record_digest(ROOT, None, D0)
    return store


def patch(aws, digest: str = D1) -> None:
    Queue(aws.refs["PatchQueue"]).send(
        PatchRequest(base=ROOT, digest=digest, previous_digest=D0, detected_by="webhook")
    )
    drain(aws, "PatchQueue", "planner")
    drain(aws, "RebuildQueue", "rebuilder")


def finish(store: Store, builds, image: str, status: str = "SUCCEEDED", times: int = 1) -> None:
    """CodeBuild reports the build of `image` (its result records the pushed digest)."""
    build = next(b for b in builds.started if b["env"]["TARGET_IMAGE"] == image)  # its first build
    if status == "SUCCEEDED":  # the build script's result: the digest it pushed
        digest = "sha256:" + format(len(builds.results) + 1, "x").rjust(64, "a")
        builds.results[build["id"]] = {"image": image, "digest": digest, "base": build["env"]["BASE_IMAGE"]}
    detail = {
        "build-status": status,
        "build-id": f"arn:aws:codebuild:us-east-1:1:build/{build['id']}",
        "project-name": build["project"],
        "additional-information": {
            "environment": {
                "environment-variables": [{"name": k, "value": v} for k, v in build["env"].items()]
            }
        },
    }
    for _ in range(times):
        handler("build_events")(
            eventbridge_event("aws.codebuild", "CodeBuild Build State Change", detail), LocalContext()
        )


def in_flight(store: Store) -> int:
    """Builds holding a slot of the concurrency cap, as stored."""
    item = store.table.get_item(Key=LIMIT_KEY).get("Item") or {}
    return int(item.get("in_flight", 0))


def started(builds) -> list[str]:
    return [b["env"]["TARGET_IMAGE"] for b in builds.started]


def test_levels_rebuild_in_order_and_the_fan_in_image_once_after_both_parents(aws, builds, diamond):
    # When the base moves, the first wave is the images with no patched parent, longest chain first
    patch(aws)
    assert started(builds) == [img("a"), img("b"), img("e")]
    # When a finishes (twice, replayed), c still waits for b
    finish(diamond, builds, img("a"), times=2)
    drain(aws, "RebuildQueue", "rebuilder")
    assert img("c") not in started(builds)
    # When b finishes, c starts once, pinned to b's new digest; then d after c
    finish(diamond, builds, img("b"))
    drain(aws, "RebuildQueue", "rebuilder")
    assert started(builds).count(img("c")) == 1
    (c_build,) = [b for b in builds.started if b["env"]["TARGET_IMAGE"] == img("c")]
    b_digest = diamond.last_rebuild(img("b")).image_digest  # type: ignore[union-attr]
    assert c_build["env"]["BASE_IMAGE"] == f"docker.io/acme/b@{b_digest}"
    finish(diamond, builds, img("c"))
    drain(aws, "RebuildQueue", "rebuilder")
    assert started(builds) == [img("a"), img("b"), img("e"), img("c"), img("d")]
    # And the rebuilt image's new digest is recorded, so its own push is no new patch
    assert diamond.get_base(img("c")).digest == diamond.last_rebuild(img("c")).image_digest  # type: ignore[union-attr]


def test_our_own_push_of_a_rebuilt_image_does_not_start_a_second_cascade(aws, builds, diamond):
    patch(aws)
    # When the registry reports a's push while a is still building
    Queue(aws.refs["PatchQueue"]).send(
        PatchRequest(base=img("a"), digest="sha256:" + "f" * 64, detected_by="webhook")
    )
    drain(aws, "PatchQueue", "planner")
    drain(aws, "RebuildQueue", "rebuilder")
    # Then nothing new starts: c is left to the cascade, after a and b
    assert started(builds) == [img("a"), img("b"), img("e")]


def test_a_failed_parent_blocks_everything_below_it(aws, builds, diamond):
    patch(aws)
    finish(diamond, builds, img("a"), status="FAILED")
    finish(diamond, builds, img("b"))
    drain(aws, "RebuildQueue", "rebuilder")
    assert img("c") not in started(builds) and img("d") not in started(builds)
    nodes = {n.image: n.status for n in diamond.cascade_nodes(CascadeId.of(ROOT, D1))}
    assert nodes == {
        img("a"): "FAILED",
        img("b"): "DONE",
        img("c"): "BLOCKED",
        img("d"): "BLOCKED",
        img("e"): "RUNNING",
    }


def test_the_concurrency_cap_holds_and_frees_slots_as_builds_finish(aws, builds, diamond, monkeypatch):
    # Given a cap of 2 builds at once, and throttled retries made visible at once
    monkeypatch.setenv("BUILD_CONCURRENCY_CAP", "2")
    monkeypatch.setenv("CAP_WAIT_SECONDS", "0")  # a rebuild waiting for a slot looks again at once
    from patchprop import config

    config.env_vars.cache_clear()
    # When the base moves: three images are ready, only two start
    patch(aws)
    assert started(builds) == [img("a"), img("b")]
    assert in_flight(diamond) == 2
    # When a finishes, its slot goes to e (ready, waiting); c still waits for b
    finish(diamond, builds, img("a"))
    drain(aws, "RebuildQueue", "rebuilder")
    assert started(builds) == [img("a"), img("b"), img("e")]
    assert in_flight(diamond) == 2


def test_a_newer_digest_supersedes_rebuilds_of_the_older_one_that_have_not_started(aws, builds, diamond):
    # Given the cascade of D1 under way (a, b, e started; c and d waiting)
    patch(aws)
    # When the base moves again before c starts
    d2 = "sha256:" + "2" * 64
    Queue(aws.refs["PatchQueue"]).send(
        PatchRequest(base=ROOT, digest=d2, previous_digest=D1, detected_by="poller")
    )
    drain(aws, "PatchQueue", "planner")
    drain(aws, "RebuildQueue", "rebuilder")
    old = {n.image: n.status for n in diamond.cascade_nodes(CascadeId.of(ROOT, D1))}
    # Then the old cascade's waiting images are superseded; the new cascade starts its first wave
    assert old[img("c")] == "SUPERSEDED" and old[img("d")] == "SUPERSEDED"
    assert [b["env"]["BASE_IMAGE_DIGEST"] for b in builds.started[3:]] == [d2, d2, d2]
    # And a's old build finishing releases nothing from the superseded cascade
    finish(diamond, builds, img("a"))
    finish(diamond, builds, img("b"))
    drain(aws, "RebuildQueue", "rebuilder")
    assert len(builds.started) == 6


def test_blocked_images_count_as_skipped_so_the_patch_summary_still_goes_out(
    aws, builds, diamond, monkeypatch
):
    # Given a queue on the outcome topic, and the diamond's cascade started
    url = subscribe_outcomes(aws, {"outcome": ["summary"]})
    patch(aws)
    # When a fails (so c and d are blocked) and b and e succeed
    finish(diamond, builds, img("a"), status="FAILED")
    finish(diamond, builds, img("b"))
    finish(diamond, builds, img("e"))
    # Then exactly one summary: 5 images, 2 skipped, 1 failed, 2 succeeded
    got = receive_all(url)
    assert len(got) == 1
    body = got[0]["Message"]
    assert "failed 1" in body.lower() or "1 failed" in body.lower(), body
    assert "skipped" in body.lower(), body


def test_an_image_the_gate_fails_is_not_built_upon(aws, builds, diamond, monkeypatch):
    # Given scans required, and builds that leave no scan report
    monkeypatch.setenv("REQUIRE_SCAN", "true")
    from patchprop import config

    config.env_vars.cache_clear()
    patch(aws)
    # When a and b succeed as builds but fail the gate (no report)
    finish(diamond, builds, img("a"))
    finish(diamond, builds, img("b"))
    drain(aws, "RebuildQueue", "rebuilder")
    # Then nothing is built on them
    assert diamond.last_rebuild(img("a")).outcome == "failed"  # type: ignore[union-attr]
    assert img("c") not in started(builds)
    assert {n.image: n.status for n in diamond.cascade_nodes(CascadeId.of(ROOT, D1))}[img("d")] == "BLOCKED"


def test_cooldown_holds_a_second_rebuild_and_a_newer_digest_supersedes_it(aws, builds, monkeypatch):
    # Given an image with a one-hour cooldown, just rebuilt for digest D1
    store = Store(aws.refs["PatchpropTable"])
    store.put_dependent(
        Dependent(image=img("busy"), bases=[ROOT], project="patchprop-rebuild", cooldown_seconds=3600)
    )
    store.record_digest(ROOT, None, D0)
    patch(aws, D1)
    assert started(builds) == [img("busy")]
    # When the base moves twice more within the hour
    d2, d3 = "sha256:" + "2" * 64, "sha256:" + "3" * 64
    patch(aws, d2)
    # Then the rebuild for D2 waits on the queue (not failed, not in the DLQ)
    assert started(builds) == [img("busy")]
    sqs = boto3.client("sqs")
    waiting = sqs.get_queue_attributes(QueueUrl=aws.refs["RebuildQueue"], AttributeNames=["All"])[
        "Attributes"
    ]
    dlq = sqs.get_queue_attributes(QueueUrl=aws.refs["RebuildDLQ"], AttributeNames=["All"])["Attributes"]
    assert (
        sum(int(waiting[f"ApproximateNumberOfMessages{kind}"]) for kind in ("", "NotVisible", "Delayed")) == 1
    )
    assert dlq["ApproximateNumberOfMessages"] == "0"
    # And D3 supersedes it: one rebuild will follow the cooldown, for D3 only
    patch(aws, d3)
    nodes = {n.image: n.status for n in store.cascade_nodes(CascadeId.of(ROOT, d2))}
    assert nodes == {img("busy"): "SUPERSEDED"}
    assert started(builds) == [img("busy")]
