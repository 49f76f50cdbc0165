"""SNS subscription filter policies (the README's examples) against moto: each selects exactly the
messages patchprop publishes that it is meant to, attributes and all (severity_rank as a Number)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support import receive_all, subscribe_outcomes

from patchprop.adapters.sns import Topic
from patchprop.domain.alerts import Alert, PatchSummary, message, summary_message
from patchprop.domain.findings import Finding, ScanReport, Severity
from patchprop.domain.gate import Policy, gate
from patchprop.domain.records import Rebuild, RebuildStatus

pytestmark = pytest.mark.integration

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
BASE = "docker.io/acme/golden:1"


def _rebuild(image: str, owner: str, status: RebuildStatus = RebuildStatus.SUCCEEDED) -> Rebuild:
    return Rebuild(
        rebuild_id=f"rb-{image.split('/')[-1].replace(':', '-')}",
        image=image,
        base=BASE,
        base_digest=D2,
        previous_digest=D1,
        project="patchprop-rebuild",
        owner=owner,
        status=status,
        detected_at=datetime(2026, 11, 27, tzinfo=UTC),
    )


def _scan(*findings: tuple[str, str, Severity]) -> ScanReport:
    return ScanReport.of(
        "trivy", "trivy", [Finding(id=i, package=p, severity=s, fixed_version="2") for i, p, s in findings]
    )


def _alerts() -> dict[str, Alert]:
    """One of each kind of outcome patchprop tells, by a short name."""
    high = _scan(("CVE-H", "libfoo", Severity.HIGH))
    critical = _scan(("CVE-C", "libbar", Severity.CRITICAL))
    base_critical = _scan(("CVE-B", "libc6", Severity.CRITICAL))
    clean = _scan()
    return {
        # a new HIGH of its own: blocked
        "blocked-high-a": Alert.from_rebuild(
            _rebuild("docker.io/acme/a1:1", "team-a"), gate(high, clean, None, Policy())
        ),
        # a new CRITICAL of its own: blocked
        "blocked-critical-b": Alert.from_rebuild(
            _rebuild("docker.io/acme/b1:1", "team-b"), gate(critical, clean, None, Policy())
        ),
        # a new CRITICAL that came with the base: promoted, yet CRITICAL
        "promoted-critical-a": Alert.from_rebuild(
            _rebuild("docker.io/acme/a2:1", "team-a"), gate(base_critical, clean, base_critical, Policy())
        ),
        # nothing new: promoted
        "promoted-clean-b": Alert.from_rebuild(
            _rebuild("docker.io/acme/b2:1", "team-b"), gate(clean, clean, None, Policy())
        ),
        # the build failed
        "failed-a": Alert.from_rebuild(_rebuild("docker.io/acme/a3:1", "team-a", RebuildStatus.FAILED)),
    }


def _publish_everything(topic_arn: str) -> None:
    topic = Topic(topic_arn)
    for alert in _alerts().values():
        topic.publish(message(alert, "email"))
    summary = PatchSummary(
        base=BASE, digest=D2, previous_digest=D1, rebuilds=5, finished=5, promoted=2, blocked=2, failed=1
    )
    topic.publish(summary_message(summary))


def _received(url: str) -> set[str]:
    """The short names of the alerts the queue got ("summary" for the patch summary)."""
    by_image = {alert.image: name for name, alert in _alerts().items()}
    names = set()
    for body in receive_all(url):
        attributes = {k: v["Value"] for k, v in body["MessageAttributes"].items()}
        names.add("summary" if attributes["outcome"] == "summary" else by_image[attributes["image"]])
    return names


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        pytest.param({"outcome": ["blocked"]}, {"blocked-high-a", "blocked-critical-b"}, id="only-blocked"),
        pytest.param(
            {"outcome": ["blocked", "failed"]},
            {"blocked-high-a", "blocked-critical-b", "failed-a"},
            id="blocked-or-failed",
        ),
        pytest.param(
            {"severity": ["CRITICAL"]},
            {"blocked-critical-b", "promoted-critical-a"},
            id="only-critical-by-name",
        ),
        pytest.param(
            {"severity_rank": [{"numeric": [">=", 4]}]},
            {"blocked-critical-b", "promoted-critical-a"},
            id="only-critical-by-rank",
        ),
        pytest.param(
            {"severity_rank": [{"numeric": [">=", 3]}]},
            {"blocked-high-a", "blocked-critical-b", "promoted-critical-a"},
            id="high-or-worse",
        ),
        pytest.param(
            {"owner": ["team-a"]}, {"blocked-high-a", "promoted-critical-a", "failed-a"}, id="my-team"
        ),
        pytest.param({"owner": ["team-a"], "outcome": ["blocked"]}, {"blocked-high-a"}, id="my-team-blocked"),
        pytest.param({"outcome": ["summary"]}, {"summary"}, id="only-summaries"),
        pytest.param(
            {"outcome": [{"anything-but": ["summary"]}]}, set(_alerts()), id="everything-but-summaries"
        ),
    ],
)
def test_filter_policy_selects_exactly_the_intended_messages(aws, policy, expected):
    # Given a queue subscribed to the outcome topic with the policy
    url = subscribe_outcomes(aws, policy)
    # When patchprop publishes one message of each kind, and a patch summary
    _publish_everything(aws.refs["OutcomeTopic"])
    # Then the queue got exactly the intended ones
    assert _received(url) == expected


def test_without_a_policy_every_message_arrives(aws):
    url = subscribe_outcomes(aws)
    _publish_everything(aws.refs["OutcomeTopic"])
    assert _received(url) == {*_alerts(), "summary"}


def test_an_owner_policy_matches_the_base_moved_message_of_a_patch_that_rebuilds_their_images(aws):
    # Given one subscription per owner, and a "base moved" message for images of team-a and team-b
    from patchprop.domain.alerts.model import Message

    mine = {owner: subscribe_outcomes(aws, {"owner": [owner]}) for owner in ("team-a", "team-b", "team-c")}
    attributes = {"outcome": "base-moved", "base": BASE, "owner": ("team-a", "team-b")}
    # When it is published (its owner attribute a String.Array)
    Topic(aws.refs["OutcomeTopic"]).publish(Message("golden moved", "body", attributes))
    # Then each of those owners' queues gets it once, and the other owner's none
    got = {
        owner: [m["MessageAttributes"]["outcome"]["Value"] for m in receive_all(url)]
        for owner, url in mine.items()
    }
    assert got == {"team-a": ["base-moved"], "team-b": ["base-moved"], "team-c": []}
