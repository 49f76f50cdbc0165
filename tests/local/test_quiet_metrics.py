"""`patchprop local` without --verbose prints no metrics, however many invocations it runs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from patchprop import config, wiring
from patchprop_local.aws import LocalAws
from patchprop_local.lambdas import api_event

pytestmark = pytest.mark.integration
PUSH = {
    "push_data": {"tag": "1", "pushed_at": 1700000000, "pusher": "me"},
    "repository": {"repo_name": "127.0.0.1:5999/nobody/builds-on-this"},
}


@pytest.fixture()
def aws() -> Iterator[LocalAws]:
    quiet = {"POWERTOOLS_METRICS_DISABLED": "true", "LOG_LEVEL": "WARNING", "POWERTOOLS_LOG_LEVEL": "WARNING"}
    with LocalAws({"RebuildProjects": "patchprop-rebuild"}, env=quiet) as aws:
        wiring.reset()
        config.env_vars.cache_clear()
        try:
            yield aws
        finally:
            wiring.reset()
            config.env_vars.cache_clear()


def test_disabled_metrics_are_never_printed_nor_kept_across_invocations(
    aws: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = aws.client("secretsmanager").get_secret_value(SecretId=aws.started.refs["WebhookSecret"])
    token = json.loads(secret["SecretString"])["current"]
    path = f"/webhooks/dockerhub/{token}"
    answers = set()
    for n in range(105):  # each counts BaseUntracked; Powertools prints a metric at 100 values
        body = json.dumps({**PUSH, "callback_url": f"https://registry.hub.docker.com/u/x/hook/{n}/"})
        event = api_event("POST", path, "/webhooks/dockerhub/{token}", {"token": token}, body)
        answers.add(aws.invoke("WebhookFunction", event)["statusCode"])
    assert answers == {202}
    assert "CloudWatchMetrics" not in capsys.readouterr().out
