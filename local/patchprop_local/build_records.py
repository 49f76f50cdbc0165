"""The local CodeBuild's record of each build, `builds/<id>.json`, so a restart knows them.

Written (atomically) when a build is started and when it ends; `acknowledged` once its last
state-change event was put on EventBridge and the stack's state saved after it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol

from patchprop_local.persist import write_json

log = logging.getLogger(__name__)


class _Recordable(Protocol):
    id: str
    project: str
    env: dict[str, str]
    source_location: str | None
    source_version: str | None
    directory: Path
    status: str
    result: dict[str, Any] | None


def path_of(directory: Path) -> Path:
    return directory.parent / f"{directory.name}.json"


def save(build: _Recordable, token: str, request: str, acknowledged: bool = False) -> None:
    path = path_of(build.directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "id": build.id,
        "project": build.project,
        "env": build.env,
        "source_location": build.source_location,
        "source_version": build.source_version,
        "status": build.status,
        "result": build.result,
        "token": token,
        "request": request,
        "acknowledged": acknowledged,
    }
    try:
        write_json(path, record, indent=None)
    except OSError:
        log.exception("cannot record local build %s in %s", build.id, path)


def load_all(builds: Path) -> list[dict[str, Any]]:
    """Every build record under `builds`, oldest first; unreadable ones are logged and skipped."""
    records = []
    for path in sorted(builds.glob("*.json"), key=lambda p: p.stat().st_mtime) if builds.is_dir() else []:
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            log.warning("skipping unreadable local build record %s", path)
    return records


def read_result(directory: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((directory / "result.json").read_text()))
    except (OSError, ValueError):
        return None


def detail(build: Any, timeout: float) -> dict[str, Any]:
    """The `detail` of the "CodeBuild Build State Change" event for the build as it is now."""
    info: dict[str, Any] = {
        "environment": {
            "image": "patchprop/local-buildah",
            "privileged-mode": False,
            "compute-type": "LOCAL",
            "type": "LINUX_CONTAINER",
            "environment-variables": [
                {"name": k, "value": v, "type": "PLAINTEXT"} for k, v in build.env.items()
            ],
        },
        "timeout-in-minutes": int(timeout // 60),
        "build-complete": build.complete,
        "initiator": "patchprop-local",
        "build-start-time": build.start_time.strftime("%b %-d, %Y %-I:%M:%S %p"),
        "source": {"location": build.source_location or "", "type": build.source_type},
        "logs": {
            "group-name": f"/aws/codebuild/{build.project}",
            "stream-name": build.id.split(":", 1)[1],
            "deep-link": build.log_path.as_uri(),
        },
        "phases": [],
    }
    if build.source_version:
        info["source-version"] = build.source_version
    return {
        "build-status": build.status,
        "project-name": build.project,
        "build-id": "arn:aws:codebuild:us-east-1:123456789012:build/" + build.id,
        "additional-information": info,
        "current-phase": "COMPLETED" if build.complete else "SUBMITTED",
        "current-phase-context": "[: ]",
        "version": "1",
    }
