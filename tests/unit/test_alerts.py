"""Alerts: one Alert per finished rebuild, as email, Amazon Q Developer JSON and Slack Block Kit,
each within SNS's 256 KB with its attributes."""

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest

from patchprop.domain import alerts
from patchprop.domain.alerts import (
    Alert,
    PatchSummary,
    attribute_bytes,
    attributes,
    block_kit,
    chatbot,
    email,
    fit,
    message,
    summary_email,
    summary_message,
)
from patchprop.domain.findings import Finding, ScanReport, Severity
from patchprop.domain.gate import Policy, gate
from patchprop.domain.records import Rebuild, RebuildStatus
from patchprop.domain.scan import parse_report

GATE = Path(__file__).resolve().parent.parent / "data" / "scan" / "gate"
OLD, NEW = "sha256:" + "1" * 64, "sha256:" + "2" * 64
LOG = "https://console.aws.amazon.com/codesuite/codebuild/projects/p1/build/p1%3A42/log"
REPORT = "https://reports.example.com/rb-1/rebuilt.trivy.json"
REASON = "1 new HIGH finding from the image's own packages: CVE-2026-1234 in libfoo 1.2 (fixed in 1.3)"
TALLY = "fixed 3, new 1 from the image's own packages, new 0 from the base"
LIMIT = 256 * 1024


def _rebuild(status: RebuildStatus = RebuildStatus.SUCCEEDED, **changes: object) -> Rebuild:
    fields: dict = {
        "rebuild_id": "rb-1",
        "image": "acme/payments-api:2.4",
        "base": "python:3.12-slim-bookworm",
        "base_digest": NEW,
        "previous_digest": OLD,
        "project": "p1",
        "owner": "team-payments",
        "status": status,
        "build_id": "p1:42",
        "log_url": LOG,
        "detected_at": datetime(2026, 11, 27, tzinfo=UTC),
    }
    return Rebuild(**(fields | changes))


def _blocked() -> Alert:
    def read(name: str) -> ScanReport:
        return parse_report((GATE / name).read_bytes())

    result = gate(read("rebuilt.trivy.json"), read("previous.trivy.json"), read("base.trivy.json"), Policy())
    return Alert.from_rebuild(_rebuild(), result, report_url=REPORT)


def _texts(alert: Alert) -> dict[str, str]:
    """Everything a reader sees in each rendering, as one string."""
    subject, body = email(alert)
    card = chatbot(alert)["content"]
    slack = block_kit(alert)
    slack_text = [slack["text"]] + [json.dumps(block, ensure_ascii=False) for block in slack["blocks"]]
    return {
        "email": f"{subject}\n{body}",
        "chatbot": card["title"] + "\n" + card["description"] + "\n" + "\n".join(card["nextSteps"]),
        "slack": "\n".join(slack_text),
    }


def test_the_blocked_rebuild_says_so_the_same_way_in_email_chatbot_and_slack():
    # Given the rebuild that fixed 3 base CVEs and added 1 HIGH of its own, blocked by the gate
    alert = _blocked()
    # When it is rendered three ways
    texts = _texts(alert)
    # Then each states the tally and the exact reason
    for name, text in texts.items():
        assert TALLY in text, name
        assert REASON in text, name
        assert "HIGH CVE-2026-1234 in libfoo 1.2 (fixed in 1.3)" in text, name


def test_email_reads_as_a_report_with_digests_lists_and_links():
    subject, body = email(_blocked())
    assert subject == "patchprop: docker.io/acme/payments-api:2.4 blocked - fixed 3, 1 new HIGH"
    assert body.startswith(
        "The rebuild of docker.io/acme/payments-api:2.4 on a new digest of "
        f"docker.io/library/python:3.12-slim-bookworm was blocked: {TALLY}.\n\nWhy:\n  - {REASON}\n"
    )
    assert f"Base digest:    {OLD}\n             -> {NEW}\n" in body
    assert f"Build log:      {LOG}\n" in body
    assert f"Scan report:    {REPORT}\n" in body
    assert (
        "New from the image's own packages (1):\n  - HIGH CVE-2026-1234 in libfoo 1.2 (fixed in 1.3)\n"
        in body
    )
    assert "New that came with the base: none\n" in body
    assert (
        "Fixed since the previous build (3):\n"
        "  - CRITICAL CVE-2024-45490 in libexpat1 2.5.0-1\n"
        "  - CRITICAL CVE-2024-45491 in libexpat1 2.5.0-1\n"
        "  - HIGH CVE-2024-37371 in libkrb5-3 1.20.1-2+deb12u1\n"
    ) in body


def test_chatbot_json_is_an_amazon_q_developer_custom_notification():
    notification = chatbot(_blocked())
    assert notification["version"] == "1.0"
    assert notification["source"] == "custom"
    content = notification["content"]
    assert content["textType"] == "client-markdown"
    assert content["title"] == "Rebuild blocked: docker.io/acme/payments-api:2.4"
    assert "`111111111111` → `222222222222`" in content["description"]
    assert content["nextSteps"][0] == "Upgrade libfoo to 1.3 for CVE-2026-1234, then rebuild"
    assert f"Build log: {LOG}" in content["nextSteps"]
    metadata = notification["metadata"]
    assert set(metadata) == {"threadId", "summary", "eventType", "relatedResources", "additionalContext"}
    assert metadata["eventType"] == "patchprop.rebuild.blocked"
    assert metadata["additionalContext"]["fixed"] == "3"
    assert metadata["additionalContext"]["newOwn"] == "1"


def test_block_kit_has_a_header_fields_lists_and_a_context_with_links():
    slack = block_kit(_blocked())
    types = [block["type"] for block in slack["blocks"]]
    assert types == ["header", "section", "section", "section", "divider", "section", "section", "context"]
    assert slack["blocks"][0]["text"] == {
        "type": "plain_text",
        "text": "Rebuild blocked: docker.io/acme/payments-api:2.4",
    }
    fields = [field["text"] for field in slack["blocks"][3]["fields"]]
    assert "*Fixed*\n3" in fields and "*New*\n1 own, 0 from the base" in fields
    context = slack["blocks"][-1]["elements"][0]["text"]
    assert f"<{LOG}|Build log>" in context and f"<{REPORT}|Scan report>" in context


def test_attributes_route_on_outcome_and_severity_with_a_numeric_rank():
    found = attributes(_blocked())
    assert found == {
        "outcome": "blocked",
        "severity": "HIGH",
        "severity_rank": 3,
        "image": "docker.io/acme/payments-api:2.4",
        "base": "docker.io/library/python:3.12-slim-bookworm",
        "owner": "team-payments",
        "rebuild_id": "rb-1",
    }
    assert type(found["severity_rank"]) is int
    # no owner, nothing new: the owner is left out, severity NONE with rank 0
    clean = Alert.from_rebuild(
        _rebuild(owner=None), gate(ScanReport.of("trivy", "trivy", []), None, None, Policy())
    )
    assert attributes(clean) == {
        "outcome": "promoted",
        "severity": "NONE",
        "severity_rank": 0,
        "image": "docker.io/acme/payments-api:2.4",
        "base": "docker.io/library/python:3.12-slim-bookworm",
        "rebuild_id": "rb-1",
    }


def test_a_failed_build_is_told_without_scan_lists():
    alert = Alert.from_rebuild(_rebuild(RebuildStatus.FAILED, reason="COMMAND_EXECUTION_ERROR: exit 1"))
    subject, body = email(alert)
    assert subject == "patchprop: docker.io/acme/payments-api:2.4 failed"
    assert "Why:\n  - COMMAND_EXECUTION_ERROR: exit 1\n" in body
    assert "Fixed since" not in body and "Still present" not in body
    assert (
        chatbot(alert)["content"]["nextSteps"][0]
        == "Read the build log to see why the rebuild did not finish"
    )
    assert attributes(alert)["outcome"] == "failed"
    # a gate verdict does not override a build that did not succeed
    verdict = gate(ScanReport.of("trivy", "trivy", []), None, None, Policy())
    assert Alert.from_rebuild(_rebuild(RebuildStatus.STOPPED), verdict).outcome == "stopped"
    with pytest.raises(ValueError, match="not finished"):
        Alert.from_rebuild(_rebuild(RebuildStatus.IN_PROGRESS))


def test_a_failed_gate_is_a_failed_outcome_with_its_reason():
    alert = Alert.from_rebuild(_rebuild(), gate(None, None, None, Policy()))
    assert alert.outcome == "failed" and not alert.scanned
    assert "no scan report for the rebuilt image" in email(alert)[1]


@cache  # an Alert is immutable; building 50,000 findings once is enough
def _flood(count: int) -> Alert:
    severities = list(Severity)
    new = ScanReport.of(
        "trivy",
        "trivy",
        [
            Finding(
                id=f"CVE-2026-{i:05d}",
                package=f"package-{i}-with-a-long-name",
                installed_version=f"1.0.{i}",
                fixed_version="2.0",
                severity=severities[i % 5],
            )
            for i in range(count)
        ],
    )
    old = ScanReport.of(
        "trivy",
        "trivy",
        [
            Finding(id=f"CVE-2025-{i:05d}", package=f"old-{i}", severity=severities[i % 5])
            for i in range(count)
        ],
    )
    return Alert.from_rebuild(_rebuild(), gate(new, old, None, Policy()), report_url=REPORT)


def _size(sent) -> int:
    return len(sent.body.encode()) + len(sent.subject.encode()) + attribute_bytes(sent.attributes)


@pytest.mark.parametrize("template", ["email", "chatbot", "slack"])
def test_fifty_thousand_findings_stay_within_256_kb_as_counts_plus_a_link(template):
    # Given 50,000 new findings and 50,000 fixed ones
    alert = _flood(50_000)
    # When the message is built
    sent = message(alert, template)
    # Then message, subject and attributes fit SNS, and the lists end in "and N more" with the link
    assert _size(sent) <= LIMIT
    assert f"…and 49980 more: {REPORT}" in sent.body  # 20 of the 50,000 shown
    if template != "email":
        json.loads(sent.body)


@pytest.mark.parametrize("template", ["email", "chatbot", "slack"])
def test_even_listing_every_finding_is_cut_to_fit(template):
    # Given a caller that asks for all 50,000 findings to be listed
    sent = message(_flood(50_000), template, list_limit=50_000)
    # Then the message is still within 256 KB, and JSON stays valid JSON
    assert _size(sent) <= LIMIT
    if template == "email":
        assert sent.body.endswith(f"[shortened to fit the 256 KB message limit; full report: {REPORT}]\n")
    else:
        json.loads(sent.body)
    if template == "chatbot":  # too long with every item: shown again with 5 items per list
        assert f"…and 49995 more: {REPORT}" in sent.body
    if template == "slack":  # a section holds what fits in Slack's 3000 characters
        assert "Fixed since the previous build (50000)" in sent.body


def test_huge_reasons_fall_back_to_a_bare_card_that_fits():
    alert = _blocked().model_copy(update={"reasons": ["x" * 5000] * 500})
    for template in ("chatbot", "slack"):
        sent = message(alert, template)
        assert _size(sent) <= LIMIT
        body = json.loads(sent.body)
        assert "Rebuild blocked" in json.dumps(body)


def test_fit_cuts_to_the_byte_limit_without_splitting_a_character():
    assert fit("short", 100) == "short"
    cut = fit("é" * 1000, 101, note="[cut]")
    assert len(cut.encode()) <= 101 and cut.endswith("[cut]")
    assert cut.removesuffix("[cut]") == "é" * 48


def test_the_subject_is_ascii_and_at_most_100_characters():
    long_image = "registry.example.com/" + "team/" * 30 + "app:1"
    alert = _blocked().model_copy(update={"image": long_image})
    subject, _ = email(alert)
    assert len(subject) <= 100 and subject.isascii()
    assert subject.endswith(" blocked - fixed 3, 1 new HIGH")


def test_slack_text_is_escaped():
    finding = Finding(id="CVE-<1>", package="a&b", severity=Severity.HIGH, fixed_version="2")
    alert = _blocked().model_copy(update={"new_own": [finding], "reasons": ["<!channel> & more"]})
    text = json.dumps(block_kit(alert))
    assert "&lt;!channel&gt; &amp; more" in text
    assert "CVE-&lt;1&gt; in a&amp;b" in text
    assert "<!channel>" not in text


def test_message_carries_the_same_attributes_whatever_the_template():
    alert = _blocked()
    sent = {template: message(alert, template) for template in ("email", "chatbot", "slack")}
    assert {m.subject for m in sent.values()} == {email(alert)[0]}
    assert all(m.attributes == attributes(alert) for m in sent.values())
    assert alerts.MAX_MESSAGE_BYTES == LIMIT


# ---- the patch summary ----------------------------------------------------------------------


def _summary(**counts: int) -> PatchSummary:
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    return PatchSummary(
        base="docker.io/library/python:3.12-slim-bookworm",
        digest="sha256:" + "2" * 64,
        previous_digest="sha256:" + "1" * 64,
        detected_at=start,
        last_finished_at=start + timedelta(minutes=12, seconds=5),
        **counts,
    )


def test_a_patch_summary_says_how_many_were_rebuilt_how_they_came_out_and_how_long_it_took():
    # Given a patch of 4 images: 2 promoted, 1 blocked, 1 failed, 12 minutes from push to last
    summary = _summary(rebuilds=4, finished=4, promoted=2, blocked=1, failed=1)
    # When it is written for email, Amazon Q and Slack
    sent = summary_message(summary)
    chat = json.loads(summary_message(summary, "chatbot").body)
    slack = json.loads(summary_message(summary, "slack").body)
    # Then each says the same, and it routes as a summary of that base
    line = "3 of 4 images rebuilt (2 promoted, 1 blocked, 1 failed) in 12m 05s"
    assert (
        sent.subject
        == "patchprop: docker.io/library/python:3.12-slim-bookworm patched - 3/4 rebuilt, 1 blocked, 1 failed"
    )
    assert line in sent.body and "Push to last rebuild: 12m 05s" in sent.body
    assert line in chat["content"]["description"] and chat["version"] == "1.0"
    assert line in slack["text"] and slack["blocks"][0]["type"] == "header"
    assert sent.attributes == {
        "outcome": "summary",
        "base": "docker.io/library/python:3.12-slim-bookworm",
        "base_digest": "sha256:" + "2" * 64,
    }


def test_a_summary_subject_stays_within_100_ascii_characters():
    long = _summary(rebuilds=100, finished=100, blocked=50, failed=50).model_copy(
        update={"base": "registry.example.com/" + "very-long-name/" * 10 + "base:1"}
    )
    subject = summary_email(long)[0]
    assert len(subject) <= 100 and subject.isascii()
    assert subject.endswith("patched - 50/100 rebuilt, 50 blocked, 50 failed")  # blocked ones were built


def test_a_summary_counts_held_rebuilds_as_rebuilt_and_names_them_in_the_subject():
    # Given a patch of 3 images: 1 promoted, 1 held (passed, its tag not moved), 1 failed
    summary = _summary(rebuilds=3, finished=3, promoted=1, held=1, failed=1)
    # When it is written
    sent = summary_message(summary)
    # Then the held one was rebuilt, and both the line and the subject say it was held
    assert "2 of 3 images rebuilt (1 promoted, 1 held, 1 failed)" in sent.body
    assert sent.subject.endswith("patched - 2/3 rebuilt, 1 held, 1 failed")
