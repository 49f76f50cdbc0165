"""EcrTagMover: the exact ECR requests of a tag move (botocore Stubber), the race rule, retries."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from patchprop.adapters.ecr import EcrTagMover
from patchprop.adapters.registry import MANIFEST_MEDIA_TYPES
from patchprop.domain.errors import RegistryUnavailable, TagMoved, TagMoveRefused
from patchprop.domain.refs import parse_ref

REPO = parse_ref("123456789012.dkr.ecr.eu-west-1.amazonaws.com/acme/app")
OLD, NEW, OTHER = ("sha256:" + c * 64 for c in "abc")
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'


def _ids(image_id: dict[str, str]) -> dict[str, object]:
    return {"registryId": "123456789012", "repositoryName": "acme/app", "imageIds": [image_id],
            "acceptedMediaTypes": list(MANIFEST_MEDIA_TYPES)}  # fmt: skip


def _image(digest: str, tag: str | None = None) -> dict[str, object]:
    image_id = {"imageDigest": digest, **({"imageTag": tag} if tag else {})}
    return {"images": [{"imageId": image_id, "imageManifest": MANIFEST, "imageManifestMediaType": INDEX}],
            "failures": []}  # fmt: skip


def _no_tag() -> dict[str, object]:
    failure = {"imageId": {"imageTag": "1"}, "failureCode": "ImageNotFound", "failureReason": "not found"}
    return {"images": [], "failures": [failure]}


PUT = {"registryId": "123456789012", "repositoryName": "acme/app", "imageManifest": MANIFEST,
       "imageTag": "1", "imageDigest": NEW, "imageManifestMediaType": INDEX}  # fmt: skip


@pytest.fixture
def ecr():
    client = boto3.client("ecr", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def test_a_move_puts_the_existing_manifest_under_the_tag(ecr):
    client, stub = ecr
    # Given the candidate (an index) in ECR and the tag on the old digest
    stub.add_response("batch_get_image", _image(NEW), _ids({"imageDigest": NEW}))
    stub.add_response("batch_get_image", _image(OLD, "1"), _ids({"imageTag": "1"}))
    # Then the move is one PutImage of the manifest ECR holds, by tag and digest (no layers)
    stub.add_response("put_image", {"image": {"imageId": {"imageDigest": NEW, "imageTag": "1"}}}, PUT)
    assert EcrTagMover(client).move_tag(REPO, "1", NEW, expect_current=OLD) is True


def test_an_older_candidate_is_refused_when_the_tag_moved_on(ecr):
    client, stub = ecr
    stub.add_response("batch_get_image", _image(NEW), _ids({"imageDigest": NEW}))
    stub.add_response("batch_get_image", _image(OTHER, "1"), _ids({"imageTag": "1"}))
    with pytest.raises(TagMoved) as refused:
        EcrTagMover(client).move_tag(REPO, "1", NEW, expect_current=OLD)
    assert refused.value.current == OTHER  # and no PutImage was sent (the stub would fail)


def test_throttling_is_retried_and_an_immutable_tag_is_a_refusal(ecr):
    client, stub = ecr
    # Given ECR throttles the first PutImage
    stub.add_response("batch_get_image", _image(NEW), _ids({"imageDigest": NEW}))
    stub.add_response("batch_get_image", _no_tag(), _ids({"imageTag": "1"}))
    stub.add_client_error("put_image", "ThrottlingException", expected_params=PUT)
    stub.add_response("batch_get_image", _no_tag(), _ids({"imageTag": "1"}))
    stub.add_response("put_image", {"image": {"imageId": {"imageDigest": NEW}}}, PUT)
    waits: list[float] = []
    # When a first promotion (no tag yet) is made, Then it lands on the second try
    assert EcrTagMover(client, sleep=waits.append).move_tag(REPO, "1", NEW, expect_current=None) is True
    assert len(waits) == 1
    # And a repository with immutable tags refuses for good
    stub.add_response("batch_get_image", _image(NEW), _ids({"imageDigest": NEW}))
    stub.add_response("batch_get_image", _image(OLD, "1"), _ids({"imageTag": "1"}))
    stub.add_client_error("put_image", "ImageTagAlreadyExistsException", expected_params=PUT)
    with pytest.raises(TagMoveRefused, match="ImageTagAlreadyExistsException"):
        EcrTagMover(client, sleep=waits.append).move_tag(REPO, "1", NEW, expect_current=OLD)


def test_ecr_that_keeps_failing_is_unavailable(ecr):
    client, stub = ecr
    stub.add_response("batch_get_image", _image(NEW), _ids({"imageDigest": NEW}))
    for _ in range(4):
        stub.add_response("batch_get_image", _image(OLD, "1"), _ids({"imageTag": "1"}))
        stub.add_client_error("put_image", "ServerException", expected_params=PUT)
    with pytest.raises(RegistryUnavailable):
        EcrTagMover(client, sleep=lambda _: None).move_tag(REPO, "1", NEW, expect_current=OLD)
