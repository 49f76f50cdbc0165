"""The rebuild receipt: what one promoted rebuild changed and why it was promoted (no I/O).

One receipt per promoted rebuild, attached to the promoted image as an OCI referrer
(`RECEIPT_ARTIFACT_TYPE`): the base it moved from and to, the packages that changed (two
CycloneDX SBOMs compared), the findings it fixed as an OpenVEX document (`fixed` statements
about the new image's digest), the findings that remain (the image's own and the base's),
the gate's policy and verdict, who promoted it (patchprop, or a named person and why), and how
the image was patched (`rebased` with the registry API, or `rebuilt`, and why not rebased).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, model_validator

from patchprop.domain.findings import Finding, ScanReport
from patchprop.domain.gate import GateResult, Outcome, Policy
from patchprop.domain.refs import ImageRef

RECEIPT_ARTIFACT_TYPE = "application/vnd.patchprop.rebuild-receipt.v1+json"
OPENVEX_CONTEXT = "https://openvex.dev/ns/v0.2.0"
OPENVEX_ARTIFACT_TYPE = "application/openvex+json"


class ReceiptError(ValueError):
    """A receipt that must not be written (e.g. for a rebuild nobody promoted)."""


class PackageChange(BaseModel):
    """One package added, removed or changed in version between the old and the new image."""

    model_config = ConfigDict(frozen=True)

    change: Literal["added", "removed", "changed"]
    name: str
    old_version: str | None = None
    new_version: str | None = None
    purl: str | None = None  # the new package's purl (the old one's when removed)


class BaseMove(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # the base as tracked, registry/repo:tag
    old_digest: str | None  # None: the image's first build patchprop knows of
    new_digest: str


class Promoter(BaseModel):
    """Who moved the tag: patchprop on the gate's verdict, or a person (named, with a reason)."""

    model_config = ConfigDict(frozen=True)

    by: Literal["patchprop", "person"]
    name: str = "patchprop"
    reason: str | None = None
    at: datetime

    @model_validator(mode="after")
    def _person_says_why(self) -> Promoter:
        if self.by == "person" and (self.name == "patchprop" or not self.name.strip()):
            raise ValueError("a person who promotes must be named")
        if self.by == "person" and not (self.reason or "").strip():
            raise ValueError("a person who promotes must give a reason")
        return self


class Remaining(BaseModel):
    """Findings still in the promoted image, split by where they come from."""

    own: list[Finding] = Field(default_factory=list)
    from_base: list[Finding] = Field(default_factory=list)


class Verdict(BaseModel):
    policy: Policy
    outcome: Outcome
    reasons: list[str]


class Receipt(BaseModel):
    """The rebuild receipt, as attached to the promoted image."""

    model_config = ConfigDict(frozen=True)

    receipt_version: Literal[1] = 1
    rebuild_id: str
    image: str  # registry/repo:tag, the tag moved
    digest: str  # the promoted digest
    previous_digest: str | None  # what the tag held before
    base: BaseMove
    packages: list[PackageChange]
    fixed: dict[str, Any]  # an OpenVEX document: one `fixed` statement per vulnerability
    remaining: Remaining
    gate: Verdict
    promoted_by: Promoter
    # How it was patched (logic/rebase.py): "rebased" or "rebuilt"; None: not recorded (a
    # rebuild from before methods). Why a rebase was not done when the image's method allowed one.
    method: str | None = None
    fallback_reason: str | None = None

    def to_json(self) -> bytes:
        """The receipt's bytes, stable for the same receipt."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=2).encode() + b"\n"


def oci_purl(image: ImageRef, digest: str) -> str:
    """The package URL of an image digest: `pkg:oci/<name>@sha256%3A…?repository_url=<registry/repo>`."""
    name = image.repository.rsplit("/", 1)[-1].lower()
    url = quote(f"{image.registry}/{image.repository}", safe="/:")
    return f"pkg:oci/{name}@{quote(digest, safe='')}?repository_url={url}"


def _components(sbom: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every component of a CycloneDX document, nested ones too."""
    stack = list(sbom.get("components") or [])
    while stack:
        component = stack.pop(0)
        if not isinstance(component, Mapping):
            continue
        yield component
        stack.extend(component.get("components") or [])


def _package_key(component: Mapping[str, Any]) -> tuple[str, str] | None:
    """What makes two components the same package across versions: the purl without version
    and qualifiers, else (type, name)."""
    name = str(component.get("name") or "")
    purl = str(component.get("purl") or "")
    if purl.startswith("pkg:"):
        bare = purl.split("#", 1)[0].split("?", 1)[0]
        path = bare.split("/", 1)[-1]
        if "@" in path:
            bare = bare[: bare.rindex("@")]
        return ("purl", bare)
    if not name:
        return None
    return (str(component.get("type") or "library"), name)


def _index(sbom: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    packages: dict[tuple[str, str], Mapping[str, Any]] = {}
    for component in _components(sbom):
        if component.get("type") in ("operating-system", "container", "file"):
            continue
        key = _package_key(component)
        if key is not None:
            packages.setdefault(key, component)
    return packages


def package_changes(old_sbom: Mapping[str, Any] | None, new_sbom: Mapping[str, Any]) -> list[PackageChange]:
    """Packages added, removed or changed in version from `old_sbom` to `new_sbom` (CycloneDX)."""
    old, new = _index(old_sbom or {}), _index(new_sbom)
    changes: list[PackageChange] = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before is None and after is not None:
            changes.append(_change("added", after, None, after))
        elif after is None and before is not None:
            changes.append(_change("removed", before, before, None))
        elif before is not None and after is not None and before.get("version") != after.get("version"):
            changes.append(_change("changed", after, before, after))
    return sorted(changes, key=lambda c: (c.name, c.change))


def _change(
    change: Literal["added", "removed", "changed"],
    component: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> PackageChange:
    return PackageChange(
        change=change,
        name=str(component.get("name") or ""),
        old_version=str(before["version"]) if before and before.get("version") else None,
        new_version=str(after["version"]) if after and after.get("version") else None,
        purl=str(component["purl"]) if component.get("purl") else None,
    )


def fixed_vex(
    fixed: Sequence[Finding],
    product: str,
    document_id: str,
    timestamp: datetime,
    package_purls: Mapping[str, str] | None = None,
    author: str = "patchprop",
) -> dict[str, Any]:
    """An OpenVEX v0.2.0 document saying each finding in `fixed` is `fixed` in `product` (a purl).

    One statement per vulnerability, its packages as the product's subcomponents (their purls
    when `package_purls` names them).
    """
    purls = package_purls or {}
    by_vulnerability: dict[str, list[str]] = {}
    for finding in fixed:
        packages = by_vulnerability.setdefault(finding.id, [])
        package = purls.get(finding.package, finding.package)
        if package not in packages:
            packages.append(package)
    when = timestamp.isoformat()
    statements = [
        {
            "vulnerability": {"name": vulnerability},
            "products": [{"@id": product, "subcomponents": [{"@id": p} for p in packages]}],
            "status": "fixed",
            "timestamp": when,
        }
        for vulnerability, packages in sorted(by_vulnerability.items())
    ]
    return {
        "@context": OPENVEX_CONTEXT,
        "@id": document_id,
        "author": author,
        "timestamp": when,
        "version": 1,
        "statements": statements,
    }


def _purls_by_name(sbom: Mapping[str, Any] | None) -> dict[str, str]:
    return {
        str(c["name"]): str(c["purl"]) for c in _components(sbom or {}) if c.get("name") and c.get("purl")
    }


def _split(findings: Iterable[Finding], base_keys: set[tuple[str, str]]) -> Remaining:
    own: list[Finding] = []
    from_base: list[Finding] = []
    for finding in findings:
        (from_base if finding.key in base_keys else own).append(finding)
    return Remaining(own=own, from_base=from_base)


def build_receipt(
    *,
    rebuild_id: str,
    image: ImageRef,
    digest: str,
    previous_digest: str | None,
    base: BaseMove,
    gate_result: GateResult,
    policy: Policy,
    promoted_by: Promoter,
    old_sbom: Mapping[str, Any] | None,
    new_sbom: Mapping[str, Any],
    base_report: ScanReport | None,
    method: str | None = None,
    fallback_reason: str | None = None,
) -> Receipt:
    """The receipt of a promoted rebuild; refuses one the gate did not promote and no person did."""
    if gate_result.outcome != "promoted" and promoted_by.by != "person":
        raise ReceiptError(
            f"rebuild {rebuild_id} was {gate_result.outcome} by the gate: only a person can promote it"
        )
    # What came with the base: in the base's report, or judged so by the gate.
    base_keys = {f.key for f in base_report.findings} if base_report else set()
    base_keys |= {f.key for f in gate_result.new_from_base}
    # What remains: what was there before and is still there, and what is new in this build.
    remaining = _split(
        [*gate_result.still_present, *gate_result.new_own, *gate_result.new_from_base], base_keys
    )
    product = oci_purl(image, digest)
    vex = fixed_vex(
        gate_result.fixed,
        product=product,
        document_id=f"urn:patchprop:receipt:{rebuild_id}:vex",
        timestamp=promoted_by.at,
        # The package as it is now (the fixed version), or as it was when the fix removed it.
        package_purls={**_purls_by_name(old_sbom), **_purls_by_name(new_sbom)},
    )
    return Receipt(
        rebuild_id=rebuild_id,
        image=str(image.without_digest()),
        digest=digest,
        previous_digest=previous_digest,
        base=base,
        packages=package_changes(old_sbom, new_sbom),
        fixed=vex,
        remaining=remaining,
        gate=Verdict(policy=policy, outcome=gate_result.outcome, reasons=list(gate_result.reasons)),
        promoted_by=promoted_by,
        method=method,
        fallback_reason=fallback_reason,
    )
