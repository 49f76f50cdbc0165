"""The rebuild receipt: package changes from two CycloneDX SBOMs, fixed findings as OpenVEX,
remaining findings by origin, the gate's verdict and who promoted."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fakes import FakeReports, InMemoryStore
from pydantic import ValidationError

from patchprop.domain.events import BuildResult
from patchprop.domain.findings import Finding, ScanReport, Severity
from patchprop.domain.gate import Policy, gate
from patchprop.domain.receipt import (
    OPENVEX_CONTEXT,
    RECEIPT_ARTIFACT_TYPE,
    BaseMove,
    PackageChange,
    Promoter,
    Receipt,
    ReceiptError,
    build_receipt,
    fixed_vex,
    oci_purl,
    package_changes,
)
from patchprop.domain.records import Rebuild, RebuildStatus
from patchprop.domain.refs import parse_ref
from patchprop.logic.promote import Evidence, attach_evidence

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32
IMAGE = parse_ref("registry.example/acme/app:1")


def _sbom(*components: dict[str, object]) -> dict[str, object]:
    return {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": list(components)}


def _apk(name: str, version: str) -> dict[str, object]:
    purl = f"pkg:apk/alpine/{name}@{version}?arch=x86_64&distro=alpine-3.22"
    return {"type": "library", "name": name, "version": version, "purl": purl}


def _f(cve: str, package: str, severity: Severity = Severity.HIGH, version: str = "1.0") -> Finding:
    return Finding(id=cve, package=package, installed_version=version, fixed_version="2.0", severity=severity)


def _report(*findings: Finding) -> ScanReport:
    return ScanReport.of("trivy", "trivy", findings)


def test_package_changes_name_added_removed_and_changed_packages_by_purl():
    # Given an old and a new SBOM: busybox upgraded, zlib removed, curl added, musl untouched
    old = _sbom(_apk("busybox", "1.36.1-r1"), _apk("zlib", "1.3"), _apk("musl", "1.2.5"))
    new = _sbom(_apk("busybox", "1.36.1-r2"), _apk("curl", "8.9"), _apk("musl", "1.2.5"))
    # When they are compared
    changes = package_changes(old, new)
    # Then each change is named once, with its versions, and untouched packages are left out
    assert changes == [
        PackageChange(change="changed", name="busybox", old_version="1.36.1-r1", new_version="1.36.1-r2",
                      purl="pkg:apk/alpine/busybox@1.36.1-r2?arch=x86_64&distro=alpine-3.22"),
        PackageChange(change="added", name="curl", new_version="8.9",
                      purl="pkg:apk/alpine/curl@8.9?arch=x86_64&distro=alpine-3.22"),
        PackageChange(change="removed", name="zlib", old_version="1.3",
                      purl="pkg:apk/alpine/zlib@1.3?arch=x86_64&distro=alpine-3.22"),
    ]  # fmt: skip


def test_package_changes_without_purls_match_by_name_and_read_nested_components():
    # Given SBOMs whose components have no purl, one nested in another, and an OS component
    old = _sbom(
        {"type": "operating-system", "name": "alpine", "version": "3.21"},
        {"name": "app", "version": "1", "components": [{"name": "lib", "version": "1"}]},
    )
    new = _sbom({"type": "operating-system", "name": "alpine", "version": "3.22"},
                {"name": "app", "version": "1", "components": [{"name": "lib", "version": "2"}]})  # fmt: skip
    # When compared, Then the nested library's change is found and the OS is not a package
    assert package_changes(old, new) == [
        PackageChange(change="changed", name="lib", old_version="1", new_version="2")
    ]
    # And without an old SBOM every package is added
    assert [c.change for c in package_changes(None, new)] == ["added", "added"]


def test_oci_purl_names_the_digest_and_the_repository():
    assert oci_purl(IMAGE, DIGEST) == (
        f"pkg:oci/app@sha256%3A{'ab' * 32}?repository_url=registry.example/acme/app"
    )


def test_fixed_findings_become_openvex_fixed_statements_about_the_new_digest():
    # Given two packages fixed for one CVE and another CVE fixed
    fixed = [_f("CVE-2026-1", "openssl"), _f("CVE-2026-1", "libssl3"), _f("CVE-2026-2", "zlib")]
    product = oci_purl(IMAGE, DIGEST)
    # When written as OpenVEX
    vex = fixed_vex(fixed, product, "urn:x", NOW, package_purls={"zlib": "pkg:apk/alpine/zlib@1.3.1"})
    # Then it is an OpenVEX v0.2.0 document with one `fixed` statement per vulnerability
    assert vex["@context"] == OPENVEX_CONTEXT == "https://openvex.dev/ns/v0.2.0"
    assert {"@id", "author", "timestamp", "version", "statements"} <= vex.keys()
    first, second = vex["statements"]
    assert first["vulnerability"] == {"name": "CVE-2026-1"} and first["status"] == "fixed"
    assert first["products"] == [{"@id": product, "subcomponents": [{"@id": "openssl"}, {"@id": "libssl3"}]}]
    assert second["products"][0]["subcomponents"] == [{"@id": "pkg:apk/alpine/zlib@1.3.1"}]


def _promoted_gate():
    previous = _report(_f("CVE-2026-1", "zlib"), _f("CVE-2026-9", "busybox", Severity.LOW))
    base = _report(_f("CVE-2026-9", "busybox", Severity.LOW), _f("CVE-2026-5", "musl", Severity.MEDIUM))
    rebuilt = _report(
        _f("CVE-2026-9", "busybox", Severity.LOW),
        _f("CVE-2026-5", "musl", Severity.MEDIUM),
        _f("CVE-2026-7", "app-lib", Severity.LOW),
    )
    policy = Policy()
    return gate(rebuilt, previous, base, policy), policy, base


def _receipt(promoter: Promoter, result=None, policy=None, base_report=None):
    if result is None:
        result, policy, base_report = _promoted_gate()
    return build_receipt(
        rebuild_id="rb-1",
        image=IMAGE,
        digest=DIGEST,
        previous_digest="sha256:" + "01" * 32,
        base=BaseMove(name="docker.io/library/alpine:3", old_digest="sha256:" + "02" * 32,
                      new_digest="sha256:" + "03" * 32),
        gate_result=result,
        policy=policy or Policy(),
        promoted_by=promoter,
        old_sbom=_sbom(_apk("zlib", "1.3")),
        new_sbom=_sbom(_apk("zlib", "1.3.1")),
        base_report=base_report,
    )  # fmt: skip


def test_a_receipt_records_the_base_move_packages_fixes_remaining_findings_and_the_verdict():
    # Given a rebuild the gate promoted: it fixed zlib's CVE, kept a base finding, and brought
    # a new base finding (musl) and one of its own (app-lib)
    # When its receipt is made
    receipt = _receipt(Promoter(by="patchprop", at=NOW))
    # Then it names the base move and the package that changed
    assert (receipt.base.old_digest, receipt.base.new_digest) == (
        "sha256:" + "02" * 32,
        "sha256:" + "03" * 32,
    )
    assert [(c.name, c.old_version, c.new_version) for c in receipt.packages] == [("zlib", "1.3", "1.3.1")]
    # And the fix as an OpenVEX statement about the promoted digest, with the fixed package's purl
    (statement,) = receipt.fixed["statements"]
    assert statement["vulnerability"]["name"] == "CVE-2026-1"
    assert statement["products"][0]["@id"] == oci_purl(IMAGE, DIGEST)
    zlib = "pkg:apk/alpine/zlib@1.3.1?arch=x86_64&distro=alpine-3.22"
    assert statement["products"][0]["subcomponents"] == [{"@id": zlib}]
    # And what remains, own apart from the base's
    assert [f.id for f in receipt.remaining.own] == ["CVE-2026-7"]
    assert sorted(f.id for f in receipt.remaining.from_base) == ["CVE-2026-5", "CVE-2026-9"]
    # And the gate's policy and verdict, and that patchprop promoted it
    assert receipt.gate.outcome == "promoted" and receipt.gate.policy == Policy()
    assert receipt.promoted_by.by == "patchprop"
    # And its JSON is stable and readable back
    assert receipt.to_json() == _receipt(Promoter(by="patchprop", at=NOW)).to_json()
    assert json.loads(receipt.to_json())["image"] == "registry.example/acme/app:1"


def test_a_blocked_rebuild_gets_a_receipt_only_when_a_named_person_promotes_it_with_a_reason():
    # Given a rebuild the gate blocked (a new CRITICAL of its own)
    rebuilt = _report(_f("CVE-2026-66", "app-lib", Severity.CRITICAL))
    blocked = gate(rebuilt, _report(), _report(), Policy())
    assert blocked.outcome == "blocked"
    # When patchprop would promote it, Then no receipt is made
    with pytest.raises(ReceiptError, match="only a person can promote it"):
        _receipt(Promoter(by="patchprop", at=NOW), blocked, Policy(), _report())
    # And a person must be named and give a reason
    with pytest.raises(ValidationError, match="reason"):
        Promoter(by="person", name="ana@example.com", at=NOW)
    with pytest.raises(ValidationError, match="named"):
        Promoter(by="person", reason="accepted risk", at=NOW)
    # And a person who does gets the receipt, saying who and why, with the verdict kept
    ana = Promoter(by="person", name="ana@example.com", reason="accepted until 2027-01", at=NOW)
    receipt = _receipt(ana, blocked, Policy(), _report())
    assert receipt.promoted_by == ana and receipt.gate.outcome == "blocked"
    assert [f.id for f in receipt.remaining.own] == ["CVE-2026-66"]


# ---- how it was patched (issue 13's method, on the receipt) ------------------------------------


class Attached:
    """Referrers that keep what is attached, by artifact type."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def attach_referrer(self, subject, artifact_type, blob, media_type, annotations=None):  # type: ignore[no-untyped-def]
        self.blobs[artifact_type] = blob
        return {"digest": "sha256:" + "cd" * 32}


def _promoted_rebuild(**fields: object) -> Rebuild:
    return Rebuild(
        rebuild_id="rb-9", image="registry.example/acme/app:1", base="docker.io/library/alpine:3",
        base_digest="sha256:" + "03" * 32, previous_digest="sha256:" + "02" * 32, project="p",
        detected_at=NOW, status=RebuildStatus.SUCCEEDED, image_digest=DIGEST, **fields,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "method", "reason"),
    [
        ({"method": "rebased"}, "rebased", None),
        (
            {"method": "rebuilt", "fallback_reason": "not rebase-safe: RUN at line 4"},
            "rebuilt",
            "not rebase-safe: RUN at line 4",
        ),
        ({}, None, None),  # a rebuild recorded before methods: not said, never "rebuilt"
    ],
)
def test_the_attached_receipt_says_how_the_image_was_patched_and_why_not_rebased(
    fields: dict[str, object], method: str | None, reason: str | None
) -> None:
    # Given a promoted rebuild with its method (and fallback reason) and the SBOM its build left
    rebuild = _promoted_rebuild(**fields)
    reports = FakeReports({"s3://b/sbom.json": json.dumps(_sbom(_apk("zlib", "1.3.1"))).encode()})
    referrers = Attached()
    # When its evidence is attached
    _, notes = attach_evidence(
        rebuild,
        BuildResult(digest=DIGEST, sbom="s3://b/sbom.json"),
        None,
        Promoter(by="patchprop", at=NOW),
        store=InMemoryStore(),
        evidence=Evidence(referrers=referrers, reports=reports),
    )
    # Then the receipt names the method and the fallback reason
    assert notes == []
    receipt = json.loads(referrers.blobs[RECEIPT_ARTIFACT_TYPE])
    assert (receipt["method"], receipt["fallback_reason"]) == (method, reason)


def test_a_receipt_written_before_methods_still_reads() -> None:
    stored = json.loads(_receipt(Promoter(by="patchprop", at=NOW)).to_json())
    del stored["method"], stored["fallback_reason"]
    assert Receipt.model_validate(stored).method is None
