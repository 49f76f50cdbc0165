"""`patchprop local` without --verbose prints no metrics, however many invocations it runs."""

from __future__ import annotations

import json
import warnings

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


def test_an_invocation_with_no_metrics_warns_of_none(quiet_aws: LocalAws) -> None:
    # Given warnings shown, every time (as a terminal running `patchprop demo` shows them)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        # When a function that counts nothing (a GET of the API) runs with metrics off
        event = api_event("GET", "/dependents", "/dependents", {}, None)
        answer = quiet_aws.invoke("ApiFunction", event)
    # Then it answered, and Powertools' empty-flush warning was not shown
    assert answer["statusCode"] == 200
    assert not [w for w in seen if "No application metrics" in str(w.message)], [str(w.message) for w in seen]
