"""Adapters at the edge: the exact CodeBuild requests, which CodeBuild errors mean "later", and
reading scan reports by location."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from patchprop.adapters.codebuild import BuildLookupFailed, CodeBuild
from patchprop.adapters.kms_signer import kms_client
from patchprop.adapters.s3 import Reports
from patchprop.domain.alerts import report_link
from patchprop.domain.errors import BuildStartFailed, BuildThrottled
from patchprop.domain.events import BuildResult, UnreadableResult
from patchprop.domain.findings import ScanReportError


@pytest.fixture
def stubbed():
    client = boto3.client("codebuild", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield CodeBuild(client), stubber


def test_start_build_sends_env_overrides_and_the_idempotency_token(stubbed):
    codebuild, stubber = stubbed
    stubber.add_response(
        "start_build",
        {"build": {"id": "proj:1234"}},
        {
            "projectName": "proj",
            "environmentVariablesOverride": [
                {"name": "BASE_IMAGE", "value": "docker.io/library/node@sha256:ab", "type": "PLAINTEXT"},
                {"name": "PATCHPROP_REBUILD_ID", "value": "rb-1", "type": "PLAINTEXT"},
            ],
            "idempotencyToken": "rb-1",
            "sourceVersion": "main",
        },
    )
    build_id = codebuild.start_build(
        "proj",
        {"BASE_IMAGE": "docker.io/library/node@sha256:ab", "PATCHPROP_REBUILD_ID": "rb-1"},
        "rb-1",
        "main",
    )
    assert build_id == "proj:1234"
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("code", ["ThrottlingException", "AccountLimitExceededException"])
def test_throttling_and_quota_errors_mean_try_again_later(stubbed, code):
    codebuild, stubber = stubbed
    stubber.add_client_error("start_build", service_error_code=code, http_status_code=400)
    with pytest.raises(BuildThrottled, match=code):
        codebuild.start_build("proj", {}, "rb-1")


@pytest.mark.parametrize(
    "code", ["ResourceNotFoundException", "InvalidInputException", "AccessDeniedException"]
)
def test_other_errors_are_final(stubbed, code):
    codebuild, stubber = stubbed
    stubber.add_client_error("start_build", service_error_code=code, http_status_code=400)
    with pytest.raises(BuildStartFailed, match=code):
        codebuild.start_build("proj", {}, "rb-1")


@pytest.mark.parametrize(
    ("location", "override"),
    [
        ("s3://bucket/app.zip", {"sourceTypeOverride": "S3", "sourceLocationOverride": "bucket/app.zip"}),
        (
            "https://github.com/acme/app.git",
            {"sourceTypeOverride": "GITHUB", "sourceLocationOverride": "https://github.com/acme/app.git"},
        ),
        ("https://example.com/x.git", {"sourceLocationOverride": "https://example.com/x.git"}),
    ],
)
def test_source_location_becomes_the_right_override(location, override):
    from patchprop.adapters.codebuild import source_override

    assert source_override(location) == override


# ---- what a finished build left behind (BatchGetBuilds → exportedEnvironmentVariables) --------


def test_build_result_is_the_exported_patchprop_result(stubbed):
    # Given a build that exported PATCHPROP_RESULT among other variables
    codebuild, stubber = stubbed
    result = {"image": "acme/app:1", "digest": "sha256:" + "e" * 64, "scanned": True, "report": "s3://b/k"}
    exported = [
        {"name": "OTHER", "value": "x"},
        {"name": "PATCHPROP_RESULT", "value": json.dumps(result)},
    ]
    stubber.add_response(
        "batch_get_builds",
        {"builds": [{"id": "proj:1234", "exportedEnvironmentVariables": exported}]},
        {"ids": ["proj:1234"]},
    )
    # When its result is read by its build id (not the ARN events carry)
    # Then it is the result it exported, typed
    assert codebuild.build_result("proj:1234") == BuildResult.model_validate(result)
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    "build",
    [
        pytest.param({"id": "proj:1"}, id="nothing-exported"),
        pytest.param(
            {
                "id": "proj:1",
                "exportedEnvironmentVariables": [{"name": "PATCHPROP_RESULT", "value": "{oops"}],
            },
            id="not-json",
        ),
        pytest.param(
            {"id": "proj:1", "exportedEnvironmentVariables": [{"name": "PATCHPROP_RESULT", "value": "[1]"}]},
            id="not-an-object",
        ),
    ],
)
def test_a_build_without_a_readable_result_has_none(stubbed, build):
    codebuild, stubber = stubbed
    stubber.add_response("batch_get_builds", {"builds": [build]}, {"ids": ["proj:1"]})
    assert codebuild.build_result("proj:1") is None


def test_an_exported_result_that_is_not_one_is_unreadable_naming_the_field(stubbed):
    codebuild, stubber = stubbed
    exported = [{"name": "PATCHPROP_RESULT", "value": json.dumps({"digest": "sha256:nothex"})}]
    stubber.add_response(
        "batch_get_builds",
        {"builds": [{"id": "proj:1", "exportedEnvironmentVariables": exported}]},
        {"ids": ["proj:1"]},
    )
    with pytest.raises(UnreadableResult, match=r"cannot be read \(digest"):
        codebuild.build_result("proj:1")


def test_a_build_codebuild_does_not_know_has_no_result(stubbed):
    codebuild, stubber = stubbed
    stubber.add_response(
        "batch_get_builds", {"builds": [], "buildsNotFound": ["proj:1"]}, {"ids": ["proj:1"]}
    )
    assert codebuild.build_result("proj:1") is None


def test_a_failed_lookup_is_raised_so_the_event_is_retried(stubbed):
    codebuild, stubber = stubbed
    stubber.add_client_error(
        "batch_get_builds", service_error_code="ThrottlingException", http_status_code=400
    )
    with pytest.raises(BuildLookupFailed, match="ThrottlingException"):
        codebuild.build_result("proj:1")


# ---- scan reports by location ---------------------------------------------------------------


def test_file_reports_are_read_outside_lambda_only(tmp_path):
    # Given a report file
    path = tmp_path / "report.json"
    path.write_bytes(b'{"SchemaVersion": 2}')
    # When it is read where files may be read, and inside Lambda
    # Then the first gets its bytes, and the second refuses the location
    assert Reports(allow_files=True).read_report(path.as_uri()) == b'{"SchemaVersion": 2}'
    with pytest.raises(ScanReportError, match="not a location patchprop reads"):
        Reports(allow_files=False).read_report(path.as_uri())


def test_a_missing_or_too_large_report_is_a_scan_report_error(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * 101)
    reports = Reports(allow_files=True, max_bytes=100)
    with pytest.raises(ScanReportError, match="larger than the 100 bytes"):
        reports.read_report(big.as_uri())
    with pytest.raises(ScanReportError, match="cannot be read"):
        reports.read_report((tmp_path / "missing.json").as_uri())
    with pytest.raises(ScanReportError, match="not a location"):
        reports.read_report("https://example.com/report.json")


def test_report_links_open_s3_reports_in_the_console():
    assert report_link("s3://bucket/reports/rb-1/report.json") == (
        "https://s3.console.aws.amazon.com/s3/object/bucket?prefix=reports/rb-1/report.json"
    )
    assert report_link("file:///tmp/r.json") == "file:///tmp/r.json"
    assert report_link(None) is None


# ---- the KMS signer's client -----------------------------------------------------------------


def test_the_kms_signer_asks_kms_in_the_keys_own_region() -> None:
    key = "arn:aws:kms:eu-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert kms_client(key).meta.region_name == "eu-west-2"
