"""`patchprop local` without --verbose prints no metrics, however many invocations it runs."""

from __future__ import annotations

import json

import pytest

from patchprop_local.aws import LocalAws
from patchprop_local.lambdas import api_event

pytestmark = pytest.mark.integration
PUSH = {
    "push_data": {"tag": "1", "pushed_at": 1700000000, "pusher": "me"},
    "repository": {"repo_name": "127.0.0.1:5999/nobody/builds-on-this"},
}


def test_disabled_metrics_are_never_printed_nor_kept_across_invocations(
    quiet_aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = quiet_aws.client("secretsmanager")
    secret = secrets.get_secret_value(SecretId=quiet_aws.started.refs["WebhookSecret"])
    token = json.loads(secret["SecretString"])["current"]
    path = f"/webhooks/dockerhub/{token}"
    answers = set()
    for n in range(105):  # each counts BaseUntracked; Powertools prints a metric at 100 values
        body = json.dumps({**PUSH, "callback_url": f"https://registry.hub.docker.com/u/x/hook/{n}/"})
        event = api_event("POST", path, "/webhooks/dockerhub/{token}", {"token": token}, body)
        answers.add(quiet_aws.invoke("WebhookFunction", event)["statusCode"])
    assert answers == {202}
    assert "CloudWatchMetrics" not in capsys.readouterr().out
