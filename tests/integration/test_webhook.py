"""Bad input at the webhook: a clear answer, nothing written or enqueued, the token never logged."""

from __future__ import annotations

import json
import logging
import uuid

import boto3
import pytest
import responses
from support import handler

from patchprop.adapters.dynamodb import Store
from patchprop.domain.models import Dependent
from patchprop_local.lambdas import LocalContext, api_event, response_json
from patchprop_local.oci import push_image
from patchprop_local.registry_server import free_port

pytestmark = pytest.mark.integration
D1 = "sha256:" + "1" * 64


def token_of(stack) -> str:
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=stack.refs["WebhookSecret"])
    return json.loads(secret["SecretString"])["current"]


def post(token: str, body: str | None) -> dict:
    event = api_event(
        "POST", f"/webhooks/dockerhub/{token}", "/webhooks/dockerhub/{token}", {"token": token}, body
    )
    return handler("webhook")(event, LocalContext(function_name="webhook"))


def push_body(repo_name: str = "acme/base", tag: str = "1") -> str:
    return json.dumps({"push_data": {"tag": tag, "pusher": "ci"}, "repository": {"repo_name": repo_name}})


def enqueued(stack) -> int:
    attrs = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.refs["PatchQueue"], AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


@pytest.fixture
def tracked(aws):
    """A tracked base in a registry nobody listens on, with a known digest."""
    ref = f"127.0.0.1:{free_port()}/acme/base-{uuid.uuid4().hex[:6]}:1"
    store = Store(aws.refs["PatchpropTable"])
    store.put_dependent(Dependent(image="acme/app:1", project="patchprop-rebuild", bases=[ref]))
    store.record_digest(ref, None, D1)
    return ref


def test_wrong_and_missing_token_get_the_same_401_and_nothing_happens(aws, tracked):
    # Given a valid push body for a tracked base
    body = push_body(tracked.rsplit(":", 1)[0])
    # When it is posted with a wrong token, an empty one, and a near miss of the real one
    real = token_of(aws)
    answers = [post(t, body) for t in ("wrong", "", real[:-1], real + "x")]
    # Then every answer is the same 401, and nothing is enqueued
    assert {(a["statusCode"], a["body"]) for a in answers} == {(401, json.dumps({"error": "unauthorized"}))}
    assert enqueued(aws) == 0


def test_previous_token_still_works_during_rotation(aws, local_registry):
    # Given the secret rotated: the old token is now "previous"
    old = token_of(aws)
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.refs["WebhookSecret"],
        SecretString=json.dumps({"current": "new-token-123", "previous": old}),
    )
    from patchprop import wiring

    wiring.reset()  # a new container; in Lambda the cached secret expires within 5 minutes
    # Then both tokens are accepted (an untracked base: 202) and a third is not
    assert post(old, push_body("acme/untracked"))["statusCode"] == 202
    assert post("new-token-123", push_body("acme/untracked"))["statusCode"] == 202
    assert post("other", push_body("acme/untracked"))["statusCode"] == 401


def test_token_never_appears_in_logs(aws, tracked, capsys, caplog, monkeypatch):
    # Given debug logging
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    caplog.set_level(logging.DEBUG)
    token = token_of(aws)
    # When good and bad requests go through, including one that fails at the registry
    post(token, push_body(tracked.rsplit(":", 1)[0]))
    post(token, "{not json")
    post(token + "x", push_body())
    # Then no log line holds the token
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err + caplog.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{not json", None),
        ("[1, 2]", None),
        (json.dumps({"push_data": {"tag": "1"}}), "repository"),
        (json.dumps({"push_data": {"tag": "1"}, "repository": {}}), "repository.repo_name"),
        (json.dumps({"push_data": {}, "repository": {"repo_name": "a/b"}}), "push_data.tag"),
        (json.dumps({"push_data": {"tag": 1}, "repository": {"repo_name": "a/b"}}), "push_data.tag"),
        (json.dumps({"push_data": {"tag": "1"}, "repository": {"repo_name": ["a"]}}), "repository.repo_name"),
        (
            json.dumps({"push_data": {"tag": "1"}, "repository": {"repo_name": "Not/Valid"}}),
            "repository.repo_name",
        ),
    ],
)
def test_malformed_bodies_get_400_naming_the_field(aws, body, field):
    answer = post(token_of(aws), body)
    assert answer["statusCode"] == 400
    error = response_json(answer)
    assert error.get("field") == field
    assert error["error"]
    assert enqueued(aws) == 0


def test_body_over_64_kib_gets_413(aws):
    big = json.dumps({"push_data": {"tag": "1"}, "repository": {"repo_name": "a/b", "pad": "x" * 70_000}})
    answer = post(token_of(aws), big)
    assert answer["statusCode"] == 413
    assert enqueued(aws) == 0


def test_untracked_base_is_accepted_without_asking_any_registry(aws):
    with responses.RequestsMock() as mocked:  # any HTTP call would fail this test
        answer = post(token_of(aws), push_body("acme/nobody-builds-on-this"))
        assert len(mocked.calls) == 0
    assert answer["statusCode"] == 202
    assert response_json(answer)["status"] == "untracked"
    assert enqueued(aws) == 0


def test_tag_missing_from_registry_is_202_with_a_warning_and_no_rebuild(aws, local_registry, caplog):
    # Given a tracked base whose tag does not exist in the registry
    repo = f"acme/gone-{uuid.uuid4().hex[:6]}"
    push_image(local_registry.address, repo, "other", {"a": b"1"})
    ref = f"{local_registry.address}/{repo}:1"
    store = Store(aws.refs["PatchpropTable"])
    store.put_dependent(Dependent(image="acme/app:1", project="patchprop-rebuild", bases=[ref]))
    store.record_digest(ref, None, D1)
    # When Docker Hub says the tag was pushed
    answer = post(token_of(aws), push_body(f"{local_registry.address}/{repo}", "1"))
    # Then 202, a warning, and nothing enqueued or changed
    assert answer["statusCode"] == 202
    assert response_json(answer) == {"status": "ignored", "reason": "tag not found"}
    assert enqueued(aws) == 0
    assert store.get_base(ref).digest == D1  # type: ignore[union-attr]


def test_registry_unreachable_is_503_and_nothing_is_lost_or_enqueued(aws, tracked):
    # Given a tracked base whose registry does not answer
    answer = post(token_of(aws), push_body(tracked.rsplit(":", 1)[0]))
    # Then 503 (Docker Hub's delivery history shows the failure; the poller retries), nothing changed
    assert answer["statusCode"] == 503
    assert "registry unavailable" in response_json(answer)["error"]
    assert enqueued(aws) == 0
    assert Store(aws.refs["PatchpropTable"]).get_base(tracked).digest == D1  # type: ignore[union-attr]


def test_registry_rate_limit_is_503_with_retry_after(aws):
    # Given a tracked base on a registry that answers 429 with a long Retry-After
    ref = "registry.example.com/acme/base:1"
    store = Store(aws.refs["PatchpropTable"])
    store.put_dependent(Dependent(image="acme/app:1", project="patchprop-rebuild", bases=[ref]))
    store.record_digest(ref, None, D1)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add_passthru("http://127.0.0.1")
        mocked.add_passthru("https://secretsmanager")
        mocked.add(
            responses.HEAD,
            "https://registry.example.com/v2/acme/base/manifests/1",
            status=429,
            headers={"Retry-After": "120"},
        )
        answer = post(token_of(aws), push_body("registry.example.com/acme/base"))
    assert answer["statusCode"] == 503
    assert answer["multiValueHeaders"]["Retry-After"] == ["120"]
    assert enqueued(aws) == 0
