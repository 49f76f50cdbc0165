"""`POST /rescans` and `patchprop rescan [IMAGE]` on moto: a named image is rescanned by hand
whatever the day's budget, what is due otherwise; refusals name the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import FakeBuilds, drain
from test_cli_client import ApiServer, run
from test_rescan_ecr import promoted_in_ecr

from patchprop import config

pytestmark = pytest.mark.integration


@pytest.fixture
def api(aws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ApiServer]:
    monkeypatch.chdir(tmp_path)
    with ApiServer(aws) as server:
        server.local.env.update({"SCAN_SOURCE": "ecr", "OWN_PACKAGE_RESCANS_PER_DAY": "0"})
        monkeypatch.setenv("PATCHPROP_API_URL", server.url)
        yield server


def post(api: ApiServer, body: dict | None) -> tuple[int, dict]:
    answer = api.answer("POST", "/rescans", {}, None if body is None else json.dumps(body))
    return answer["statusCode"], json.loads(answer["body"])


def test_a_named_image_is_rescanned_by_hand_whatever_the_budget(
    aws, api: ApiServer, builds: FakeBuilds, tmp_path: Path
) -> None:
    # Given a promoted image whose own packages have a fix in ECR's findings, and no daily budget
    image, _digest = promoted_in_ecr(aws, "acme/app", tmp_path)
    # When its rescan is asked for by hand
    status, answer = post(api, {"image": image})
    # Then it is rescanned, and its rebuild goes to the rebuild queue (then the same gate)
    assert status == 200, answer
    [done] = answer["rescanned"]
    assert done["image"] == image and done["outcome"] == "rebuild started"
    drain(aws, "RebuildQueue", "rebuilder")
    [build] = builds.started
    assert build["env"]["PATCHPROP_REBUILD_ID"] == done["rebuild_id"]
    # and asked again the same day, it is rescanned again but starts nothing new
    status, again = post(api, {"image": image})
    assert status == 200 and again["rescanned"][0]["rebuild_id"] == done["rebuild_id"]
    assert "before" in again["rescanned"][0]["outcome"]
    # and without an image, nothing is due (no budget), which it says
    status, due = post(api, {})
    assert status == 200 and due["rescanned"] == [] and "OwnPackageRescansPerDay is 0" in due["note"]


def test_what_is_due_spends_the_days_budget(aws, api: ApiServer, tmp_path: Path) -> None:
    promoted_in_ecr(aws, "acme/app", tmp_path)
    promoted_in_ecr(aws, "acme/web", tmp_path)
    api.local.env["OWN_PACKAGE_RESCANS_PER_DAY"] = "1"
    config.env_vars.cache_clear()
    status, answer = post(api, None)
    assert status == 200 and len(answer["rescanned"]) == 1
    status, answer = post(api, {})
    assert status == 200 and answer["rescanned"] == []  # the day's one rescan is spent


def test_refusals_name_the_field(aws, api: ApiServer, tmp_path: Path) -> None:
    status, answer = post(api, {"image": "docker.io/acme/nobody:1"})
    assert status == 404 and answer["field"] == "image" and "docker.io/acme/nobody:1" in answer["error"]
    status, answer = post(api, {"image": "Not A Ref"})
    assert status == 400 and "image" in json.dumps(answer)
    status, answer = post(api, {"imgae": "docker.io/acme/app:1"})
    assert status == 400 and "imgae" in json.dumps(answer)
    api.local.env.update({"SCAN_SOURCE": "trivy", "RESCAN_REPORTS_URI": ""})
    config.env_vars.cache_clear()
    image, _ = promoted_in_ecr(aws, "acme/app", tmp_path)
    status, answer = post(api, {"image": image})
    assert status == 409 and "RESCAN_REPORTS_URI" in answer["error"] and answer["field"] == "image"


def test_with_trivy_a_rescan_by_hand_starts_the_digests_scan_only_build(
    aws, api: ApiServer, builds: FakeBuilds, tmp_path: Path
) -> None:
    # Given ScanSource=trivy (the default) and a promoted image
    api.local.env.update({"SCAN_SOURCE": "trivy", "RESCAN_REPORTS_URI": "s3://reports/rescans"})
    config.env_vars.cache_clear()
    image, digest = promoted_in_ecr(aws, "acme/app", tmp_path)
    # When its rescan is asked for by hand
    status, answer = post(api, {"image": image})
    # Then its scan-only build is started; its end is judged by build events
    assert status == 200, answer
    assert answer["rescanned"] == [{"image": image, "outcome": "scan started", "rebuild_id": None}]
    [build] = builds.started
    assert build["env"]["PATCHPROP_MODE"] == "rescan" and build["env"]["RESCAN_IMAGE"].endswith(f"@{digest}")
    assert build["env"]["RESCAN_REPORT_URI"].startswith("s3://reports/rescans/")


def test_the_cli_rescans_an_image_and_says_a_refusal(aws, api: ApiServer, tmp_path: Path) -> None:
    image, _ = promoted_in_ecr(aws, "acme/app", tmp_path)
    result = run("rescan", image)
    assert result.exit_code == 0, result.output
    assert image in result.output and "rebuild started" in result.output
    as_json = run("rescan", image, "--json")
    assert json.loads(as_json.output)["rescanned"][0]["image"] == image
    missing = run("rescan", "acme/nobody:1")
    assert missing.exit_code == 1
    assert "docker.io/acme/nobody:1 is not a registered image (HTTP 404)" in missing.output


def test_an_unknown_query_parameter_or_a_body_that_is_no_object_is_a_400_naming_it(api: ApiServer) -> None:
    # A typo'd filter would otherwise be ignored, and the answer be for every image
    answer = api.answer("GET", "/rebuilds?imgae=docker.io/acme/app:1", {}, None)
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 400 and body["field"] == "imgae"
    assert "image" in body["error"] and "limit" in body["error"]  # what the route takes
    # A route without parameters takes none
    answer = api.answer("GET", "/bases?all=1", {}, None)
    assert answer["statusCode"] == 400 and json.loads(answer["body"])["field"] == "all"
    # A JSON body that is not an object is refused, not read as an empty one
    status, refused = post(api, [None, None])  # type: ignore[arg-type]
    assert status == 400 and refused["field"] == "body"
    # and the known ones still work
    assert api.answer("GET", "/rebuilds?limit=5", {}, None)["statusCode"] == 200
