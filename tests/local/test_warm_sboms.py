"""The base's SBOM is made before the planner gets its patch, outside the handlers' lock.

syft takes seconds on a real base; while the planner's base check ran it under the lock, every
webhook delivery of a burst waited behind it (a webhook p95 of 4 s). Now the event pump makes it
first, unlocked, and the check reads what was kept.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from patchprop.adapters.base_sources import BaseRegistry, BaseSourcesAdapter
from patchprop.adapters.s3 import Reports
from patchprop.domain.refs import parse_ref
from patchprop_local import base_reports
from patchprop_local.aws import LocalAws
from patchprop_local.events import EventPump
from patchprop_local.fairlock import FairLock

pytestmark = pytest.mark.integration
DATA = Path(__file__).parents[1] / "data" / "scan"
BASE = "127.0.0.1:5999/golden:1"
PINNED = "127.0.0.1:5999/golden"
NEW, OLD = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def fake_syft(tmp_path: Path) -> tuple[str, Path]:
    """A syft that prints a real syft JSON document and logs each image it was asked for."""
    log = tmp_path / "syft.log"
    sbom = tmp_path / "sbom.syft.json"
    shutil.copy(DATA / "sbom" / "old.syft.json", sbom)
    script = tmp_path / "syft"
    script.write_text(f'#!/bin/sh\necho "$3" >> {log}\ncat {sbom}\n')
    script.chmod(0o755)
    return str(script), log


def patch_message(body: object) -> dict[str, str]:
    return {"Body": json.dumps(body)}


def test_warming_makes_each_digests_sbom_once_where_the_check_reads_it(tmp_path: Path) -> None:
    syft, log = fake_syft(tmp_path)
    warm = base_reports.warm_sboms(tmp_path, syft)
    patch = {"base": BASE, "digest": NEW, "previous_digest": OLD}

    made = warm([patch_message(patch), patch_message("not a patch"), {"Body": "{"}])

    assert made == 2
    assert log.read_text().split() == [f"registry:{PINNED}@{NEW}", f"registry:{PINNED}@{OLD}"]
    # The check of the same digests reads the kept SBOMs: no second syft run, the packages are there.
    root = f"file://{base_reports.reports_dir(tmp_path)}"
    sources = BaseSourcesAdapter(BaseRegistry(), Reports(allow_files=True), root, syft)
    contents = sources.sbom(parse_ref(BASE).with_digest(NEW), [])
    assert contents is not None and json.loads(contents)["artifacts"]
    assert sources.scans == 0 and len(log.read_text().split()) == 2
    assert warm([patch_message(patch)]) == 0  # kept: a redelivered patch runs nothing


def test_the_patch_queues_preparation_runs_while_others_can_take_the_handlers_lock(
    quiet_aws: LocalAws,
) -> None:
    lock = FairLock()
    started, release, served = threading.Event(), threading.Event(), threading.Event()

    def slow_preparation(messages: list[dict[str, str]]) -> None:
        started.set()
        release.wait(60)

    pump = EventPump(quiet_aws, lock, lambda *_: None, prepare={"PatchQueue": slow_preparation})
    sqs = quiet_aws.client("sqs")
    body = json.dumps({"base": BASE, "digest": NEW, "previous_digest": OLD})
    sqs.send_message(QueueUrl=quiet_aws.started.refs["PatchQueue"], MessageBody=body)
    pumping = threading.Thread(target=pump.pump_once)
    pumping.start()
    try:
        assert started.wait(60), "the patch queue's preparation never ran"

        def webhook() -> None:
            with lock:
                served.set()

        threading.Thread(target=webhook, daemon=True).start()
        assert served.wait(60), "the handlers' lock was held while the preparation ran"
    finally:
        release.set()
        pumping.join(60)
    assert not pumping.is_alive()
