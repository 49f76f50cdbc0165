"""`patchprop local` narrates one line per event and keeps every alert; `patchprop alerts` prints
them, and the CLI finds `.patchprop/` from a subfolder (issue 11, items 6 and 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from patchprop_cli.client import find_local_state, resolve_api_url
from patchprop_cli.main import cli
from patchprop_local.narrate import Narrator, read_outbox

ALERT = {
    "Type": "Notification",
    "Subject": "patchprop: acme/app:1 failed",
    "Message": "acme/app:1 was not rebuilt.\n\nWhy:\n  - building failed with exit code 1",
    "MessageAttributes": {"outcome": {"Type": "String", "Value": "failed"}},
    "Timestamp": "2026-12-02T06:00:00.000Z",
}
BUILD = {
    "build-status": "IN_PROGRESS",
    "additional-information": {
        "environment": {
            "environment-variables": [
                {"name": "TARGET_IMAGE", "value": "r/acme/app:1"},
                {"name": "BASE_IMAGE_NAME", "value": "r/acme/base:1"},
                {"name": "BASE_IMAGE_DIGEST", "value": "sha256:" + "a" * 64},
            ]
        },
        "logs": {"deep-link": "file:///tmp/builds/p%3A1.log"},
    },
}


def test_each_event_is_one_readable_line_and_alerts_are_kept(tmp_path: Path) -> None:
    # Given a narrator printing to a list
    lines: list[str] = []
    narrator = Narrator(tmp_path, lines.append)
    # When a push, a build start and end, a referrer tag's push and an alert happen
    narrator(
        "push", {"image": "r/acme/base:1", "digest": "sha256:" + "b" * 64, "answer": {"status": "moved"}}
    )
    narrator("build", BUILD)
    narrator("build", {**BUILD, "build-status": "FAILED"})
    narrator("push", {"image": "r/acme/app:sha256-abc", "digest": "sha256:" + "c" * 64, "answer": {}})
    narrator("sns", ALERT)
    # Then each is one line saying what happened (the build with its log path), none for the referrer
    assert lines == [
        "push seen: r/acme/base:1 sha256:bbbbbbbbbbbb -> moved: a patch is planned for the images on it",
        "build started: r/acme/app:1 on r/acme/base:1 sha256:aaaaaaaaaaaa  log: /tmp/builds/p:1.log",
        "build failed: r/acme/app:1  log: /tmp/builds/p:1.log",
        "alert: patchprop: acme/app:1 failed  (patchprop alerts: the whole message)",
    ]
    # And the alert is kept whole in the outbox
    [(number, kept)] = read_outbox(tmp_path)
    assert number == 1 and kept["subject"] == ALERT["Subject"] and kept["message"] == ALERT["Message"]
    assert kept["attributes"] == {"outcome": "failed"}
    # And a narrator started later numbers on after what is kept
    Narrator(tmp_path, lines.append)("sns", ALERT)
    assert [n for n, _ in read_outbox(tmp_path)] == [1, 2]


def test_alerts_prints_the_kept_alerts_in_full_from_a_subfolder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a `patchprop local` folder with one alert kept, and a user in a subfolder of it
    state = tmp_path / ".patchprop"
    state.mkdir()
    (state / "local.json").write_text(json.dumps({"api_url": "http://127.0.0.1:8780"}))
    Narrator(state, lambda line: None)("sns", ALERT)
    (tmp_path / "app" / "src").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "app" / "src")
    monkeypatch.delenv("PATCHPROP_API_URL", raising=False)
    # When `patchprop alerts` runs there
    result = CliRunner().invoke(cli, ["alerts"])
    # Then it prints the subject and the whole body, Why: included
    assert result.exit_code == 0, result.output
    assert "Subject: patchprop: acme/app:1 failed" in result.stdout
    assert "Why:\n  - building failed with exit code 1" in result.stdout
    # And the API is found from the subfolder too, as git finds .git
    assert find_local_state() == state / "local.json"
    assert resolve_api_url() == "http://127.0.0.1:8780"


def test_alerts_without_a_local_stack_says_what_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["alerts"])
    assert result.exit_code == 2 and "start `patchprop local` first" in result.stderr


def test_an_html_error_page_from_the_api_becomes_one_line() -> None:
    # Given a proxy's HTML error page, When the client reads it
    import requests

    from patchprop_cli.client import ApiError, _json_or_error

    answer = requests.Response()
    answer.status_code, answer.url = 502, "http://127.0.0.1:9/dependents"
    answer._content = b"<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1>\n</body></html>"
    # Then it is one line naming the page's title, not the page
    with pytest.raises(ApiError) as caught:
        _json_or_error(answer)
    assert caught.value.message == (
        "502 Bad Gateway (not the API's JSON: is http://127.0.0.1:9/dependents the patchprop API?)"
    )
    assert "\n" not in caught.value.format_message()


def test_a_rescan_says_its_scan_only_build_and_then_its_outcome(tmp_path: Path) -> None:
    # Given a narrator, and a rescan's scan-only build of a promoted digest (it builds nothing)
    lines: list[str] = []
    narrator = Narrator(tmp_path, lines.append)
    variables = [
        {"name": "PATCHPROP_MODE", "value": "rescan"},
        {"name": "RESCAN_IMAGE", "value": "r/acme/app@sha256:" + "d" * 64},
    ]
    scan = {**BUILD, "additional-information": {**BUILD["additional-information"], "environment": {
        "environment-variables": variables}}}  # fmt: skip
    # When it starts and ends, and build events answer with the rescan's outcome
    narrator("build", scan)
    narrator("build", {**scan, "build-status": "SUCCEEDED"})
    outcome = "not scanned: the rescan build left no report (no trivy in the build image?)"
    told = {"status": "rescan", "image": "r/acme/app:1", "outcome": outcome}
    narrator("answer", {"function": "BuildEventsFunction", "answer": told})
    narrator("answer", {"function": "BuildEventsFunction", "answer": {"status": "succeeded"}})
    # Then each says what it is, not "? on ?", and the outcome is told (other answers are not)
    assert lines == [
        f"rescan build started: r/acme/app@sha256:{'d' * 64}  log: /tmp/builds/p:1.log",
        f"rescan build succeeded: r/acme/app@sha256:{'d' * 64}  log: /tmp/builds/p:1.log",
        f"rescan of r/acme/app:1: {outcome}",
    ]
