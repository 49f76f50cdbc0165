"""The Slack function against moto: Block Kit re-rendered from the stored rebuild, one post a
second at most (an injected clock), Slack's 429 honoured, and the webhook URL never shown."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from moto import mock_aws
from support import PROJECTS, handler

from patchprop import config, wiring
from patchprop.adapters import secrets
from patchprop.adapters.dynamodb import Store
from patchprop.adapters.slack import SlackError, SlackWebhook
from patchprop.config import SlackEnv
from patchprop.domain.alerts import Alert, block_kit
from patchprop.domain.models import Dependent, PatchRequest, RebuildRequest
from patchprop.domain.records import Finish, Outcome, Rebuild, RebuildStatus
from patchprop.logic.slack import Pacer
from patchprop_local.lambdas import LocalContext, deliver_sqs
from patchprop_local.provision import provision
from patchprop_local.template import Stack

pytestmark = pytest.mark.integration

URL = "https://hooks.slack.com/services/T000/B000/very-secret-token"
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


class FakeClock:
    """time.monotonic and time.sleep: sleeping moves the clock on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class FakeSlack(requests.Session):
    """Slack's webhook endpoint: records each post and when; answers from `answers` (then 200)."""

    def __init__(self, clock: FakeClock, answers: list[tuple[int, dict[str, str]]] | None = None) -> None:
        super().__init__()
        self.clock = clock
        self.answers = list(answers or [])
        self.posts: list[tuple[float, dict[str, Any]]] = []

    def post(self, url: str | bytes, data: Any = None, json: Any = None, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        assert url == URL and kwargs["timeout"]
        self.posts.append((self.clock.now, json))
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        response = requests.Response()
        response.status_code, response._content = status, b"ok" if status == 200 else b"rate_limited"
        response.headers.update(headers)
        return response


@pytest.fixture
def slack_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The stack as deployed with SlackWebhookSecretArn set: its Slack queue, and the function's env."""
    with mock_aws():
        secret = boto3.client("secretsmanager").create_secret(Name="slack-webhook", SecretString=URL)
        stack = provision({"RebuildProjects": ",".join(PROJECTS), "SlackWebhookSecretArn": secret["ARN"]})
        for name, value in stack.function_env("SlackFunction").items():
            monkeypatch.setenv(name, value)
        wiring.reset()
        config.env_vars.cache_clear()
        yield stack
        wiring.reset()
        config.env_vars.cache_clear()


def use_slack(monkeypatch: pytest.MonkeyPatch, session: requests.Session) -> None:
    """The function's webhook, its URL read from the secret as deployed, posting through `session`."""

    def webhook(adapters: wiring.Adapters) -> SlackWebhook:
        return SlackWebhook(secrets.slack_webhook_url(adapters.env.SLACK_WEBHOOK_SECRET_ID), session=session)

    monkeypatch.setattr(wiring.Adapters, "slack_webhook", property(webhook))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    module = __import__(handler("slack").__module__)
    monkeypatch.setattr(module, "pacer", Pacer(clock=fake, sleep=fake.sleep))
    return fake


def finished_rebuild(stack: Stack, image: str) -> Alert:
    """A failed rebuild of `image`, recorded with its alert as build events records it."""
    store = Store(stack.refs["PatchpropTable"])
    dependent = Dependent(image=image, project=PROJECTS[0], bases=["acme/base:1"], owner="team-a")
    patch = PatchRequest(base="acme/base:1", digest=D2, previous_digest=D1, detected_by="poller")
    request = RebuildRequest.for_dependent(dependent, patch)
    started = store.record_started(Rebuild.started(request, "p:1"))
    alert = Alert.from_rebuild(started.model_copy(update={"status": RebuildStatus.FAILED}))
    store.record_finished(
        request.rebuild_id,
        Finish(status=RebuildStatus.FAILED, build_id="p:1", outcome=Outcome.FAILED),
        alert,
    )
    return alert


def publish_like_sns(stack: Stack, alert: Alert) -> None:
    """What SNS raw delivery puts on the Slack queue: the email text, the attributes as SQS ones."""
    attributes = {"outcome": alert.outcome, "image": alert.image, "rebuild_id": alert.rebuild_id or ""}
    boto3.client("sqs").send_message(
        QueueUrl=stack.refs["SlackQueue"],
        MessageBody=f"The rebuild of {alert.image} failed.",
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )


def deliver(stack: Stack) -> dict[str, int]:
    got = deliver_sqs(
        boto3.client("sqs"), stack.refs["SlackQueue"], stack.attrs["SlackQueue"]["Arn"], handler("slack"), 1
    )
    return {"received": got.received, "failed": got.failed}


def test_outcomes_are_posted_as_block_kit_at_most_one_a_second(slack_stack, clock, monkeypatch):
    # Given two finished rebuilds told on SNS, and Slack answering 200
    slack = FakeSlack(clock)
    use_slack(monkeypatch, slack)
    alerts = [finished_rebuild(slack_stack, f"acme/app-{n}:1") for n in (1, 2)]
    for alert in alerts:
        publish_like_sns(slack_stack, alert)
    # When the function takes them, the second 0.3 s after the first post
    assert deliver(slack_stack) == {"received": 1, "failed": 0}
    clock.now += 0.3
    assert deliver(slack_stack) == {"received": 1, "failed": 0}
    # Then each was posted as the Block Kit of its stored alert, the second one 1 s after the first
    assert [payload for _, payload in slack.posts] == [block_kit(a) for a in alerts]
    (first, _), (second, _) = slack.posts
    assert second - first == pytest.approx(1.0)
    assert clock.slept == [pytest.approx(0.7)]


def test_slack_429_fails_the_record_and_hides_it_for_retry_after(slack_stack, clock, monkeypatch):
    # Given Slack rate limiting the first post with Retry-After: 7
    slack = FakeSlack(clock, answers=[(429, {"Retry-After": "7"})])
    use_slack(monkeypatch, slack)
    publish_like_sns(slack_stack, finished_rebuild(slack_stack, "acme/app:1"))
    changes: list[int] = []
    real = wiring.adapters(config.env_vars(SlackEnv)).slack_queue
    monkeypatch.setattr(real, "retry_later", lambda handle, seconds: changes.append(seconds))
    # When the function takes it
    answer = deliver(slack_stack)
    # Then the record failed (it stays on the queue) and its visibility was set to Retry-After
    assert answer == {"received": 1, "failed": 1}
    assert changes == [7]
    assert len(slack.posts) == 1


def test_the_webhook_url_is_never_logged_or_raised(slack_stack, clock, monkeypatch, capsys, caplog):
    # Given Slack unreachable, with requests naming the URL in its error
    class Unreachable(requests.Session):
        def post(self, url: Any, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            raise requests.ConnectionError(f"Max retries exceeded with url: {url}")

    use_slack(monkeypatch, Unreachable())
    publish_like_sns(slack_stack, finished_rebuild(slack_stack, "acme/app:1"))
    # When the function tries to post
    answer = deliver(slack_stack)
    # Then the record failed, and the URL (or its token) appears nowhere
    assert answer == {"received": 1, "failed": 1}
    with pytest.raises(SlackError) as raised:
        SlackWebhook(URL, session=Unreachable()).post({"text": "x"})
    shown = capsys.readouterr()
    for text in (shown.out, shown.err, caplog.text, str(raised.value), repr(SlackWebhook(URL))):
        assert "very-secret-token" not in text


def test_the_webhook_url_is_read_from_its_secret_plain_or_json(slack_stack):
    client = boto3.client("secretsmanager")
    as_json = client.create_secret(Name="slack-json", SecretString=json.dumps({"url": URL}))["ARN"]
    assert secrets.slack_webhook_url(os.environ["SLACK_WEBHOOK_SECRET_ID"]) == URL
    assert secrets.slack_webhook_url(as_json) == URL


def test_a_summary_is_rendered_from_its_patch_and_anything_else_posted_as_its_text(
    slack_stack, clock, monkeypatch
):
    # Given a patch summary and a message about a rebuild that is not stored
    slack = FakeSlack(clock)
    use_slack(monkeypatch, slack)
    store = Store(slack_stack.refs["PatchpropTable"])
    patch = PatchRequest(base="docker.io/acme/base:1", digest=D2, previous_digest=D1, detected_by="poller")
    store.record_patch(patch, rebuilds=1)
    store.count_finished(patch.cascade_id, "rb-1", "promoted", patch.detected_at)
    sqs = boto3.client("sqs")
    summary = {"outcome": "summary", "base": patch.base, "base_digest": D2}
    for body, attributes in (("summary text", summary), ("hello from SNS", {"rebuild_id": "rb-unknown"})):
        sqs.send_message(
            QueueUrl=slack_stack.refs["SlackQueue"],
            MessageBody=body,
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
    # When both are delivered
    deliver(slack_stack)
    deliver(slack_stack)
    # Then the summary is Block Kit made from the patch, the other its own text
    first, second = (payload for _, payload in slack.posts)
    assert first["blocks"][0]["text"]["text"] == "Patch rolled out: docker.io/acme/base:1"
    assert "1 of 1 images rebuilt (1 promoted)" in first["text"]
    assert second == {"text": "hello from SNS"}


def test_the_sample_event_is_accepted_by_the_handler(slack_stack, clock, monkeypatch):
    # Given the sample event (for `sam local invoke -e`), whose rebuild is not stored here
    from support import sample_event

    slack = FakeSlack(clock)
    use_slack(monkeypatch, slack)
    # When the handler takes it
    answer = handler("slack")(sample_event("slack_sqs.json"), LocalContext(function_name="slack"))
    # Then it posted the message's own text
    assert answer == {"batchItemFailures": []}
    ((_, payload),) = slack.posts
    assert payload["text"].startswith("The rebuild of docker.io/acme/payments-api:2.4")
