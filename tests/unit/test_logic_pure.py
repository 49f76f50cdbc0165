"""Pure pieces of the logic: token checks, build environment, alert text, backoff, HTTP errors."""

import json
from datetime import UTC, datetime

from patchprop import retry
from patchprop.domain.alerts import Alert, message
from patchprop.domain.models import Dependent, PatchRequest, RebuildRequest
from patchprop.domain.records import Rebuild, RebuildStatus
from patchprop.logic.detect import token_matches
from patchprop.logic.start import build_env
from patchprop.web import parse_body

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def _request() -> RebuildRequest:
    dependent = Dependent(
        image="acme/app:1", project="p1", bases=["node:22"], owner="team-a", build_args={"PY": "3.13"}
    )
    return RebuildRequest.for_dependent(
        dependent, PatchRequest(base="node:22", digest=D2, previous_digest=D1, detected_by="webhook")
    )


def test_token_matches_current_and_previous_only():
    assert token_matches("new", ["new", "old"])
    assert token_matches("old", ["new", "old"])
    assert not token_matches("other", ["new", "old"])
    assert not token_matches("", ["new", ""])  # an empty token never authenticates
    assert not token_matches("new", [])


def test_build_env_pins_base_and_carries_ids():
    env = build_env(_request())
    assert env["BASE_IMAGE"] == f"docker.io/library/node@{D2}"
    assert env["BASE_IMAGE_DIGEST"] == D2
    assert env["TARGET_IMAGE"] == "docker.io/acme/app:1"
    assert env["PATCHPROP_REBUILD_ID"].startswith("rb-")
    assert env["BUILD_ARG_PY"] == "3.13"


def test_outcome_message_reads_in_an_email_and_has_filter_attributes():
    # Given a rebuild whose build failed
    request = _request()
    rebuild = Rebuild(
        **request.model_dump(exclude={"source_location", "source_version", "build_args"}),
        status=RebuildStatus.FAILED,
        build_id="p1:42",
        log_url="https://logs/x",
        finished_at=datetime(2026, 11, 27, tzinfo=UTC),
    )
    # When its outcome message is written (the one way: alerts.message)
    told = message(Alert.from_rebuild(rebuild))
    # Then it reads in an email and carries the attributes filter policies and Slack use
    assert told.subject == "patchprop: docker.io/acme/app:1 failed"
    assert len(told.subject) <= 100
    assert f"{D1}\n             -> {D2}" in told.body
    assert "https://logs/x" in told.body
    assert told.attributes == {
        "outcome": "failed",
        "severity": "NONE",
        "severity_rank": 0,
        "image": "docker.io/acme/app:1",
        "base": "docker.io/library/node:22",
        "owner": "team-a",
        "rebuild_id": request.rebuild_id,
    }


def test_backoff_grows_and_is_capped():
    first, later = retry.backoff(1), retry.backoff(8)
    assert 20 <= first <= 30
    assert later > first
    assert retry.backoff(50) <= retry.MAX_BACKOFF + 10


def test_parse_body_names_the_bad_field():
    bad = parse_body(Dependent, json.dumps({"image": "acme/app:1", "project": "p1", "bases": ["Bad:x"]}))
    body = json.loads(bad.body)  # type: ignore[union-attr]
    assert bad.status_code == 400  # type: ignore[union-attr]
    assert body["field"] == "bases.0"
    not_json = parse_body(Dependent, "{nope")
    assert not_json.status_code == 400  # type: ignore[union-attr]
    assert "not JSON" in json.loads(not_json.body)["error"]  # type: ignore[union-attr]
