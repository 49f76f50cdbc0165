"""Adapters at the edge: the exact CodeBuild request, and which CodeBuild errors mean "later"."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from patchprop.builds import CodeBuild
from patchprop.errors import BuildStartFailed, BuildThrottled


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
    from patchprop.builds import source_override

    assert source_override(location) == override
