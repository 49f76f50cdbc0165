"""The base check: what one new digest of a base is, judged once before any rebuild on it.

Its signature (verified against the key configured for that base), its scan report and the
previous digest's (or the publisher's), its packages (a syft or CycloneDX SBOM) and its image
config, compared with the previous digest: packages added, removed and changed, findings fixed
and new (after the publisher's VEX), and changes of user, entrypoint, environment and
architecture. Pure: the readers take bytes, the adapters fetch them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from patchprop.domain.errors import PatchpropError
from patchprop.domain.findings import Finding, ScanReport, ScanReportError, Severity
from patchprop.domain.provenance import Provenance

SignatureState = Literal["verified", "failed", "not_configured"]
MAX_SBOM_BYTES = 100 * 2**20
MAX_LISTED = 200  # entries of each list of a diff kept on the check (a table item is 400 KB at most)


class SignatureError(PatchpropError):
    """A base's signature does not verify, or cannot be checked (key unreadable, service down)."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ImageFacts(Frozen):
    """What an image's config says about how it runs (from its config blob)."""

    user: str = ""
    entrypoint: list[str] = Field(default_factory=list)
    cmd: list[str] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list)
    architectures: list[str] = Field(default_factory=list)


class BaseContents(Frozen):
    """One digest of a base as read: its packages (name -> version), config, and findings."""

    packages: dict[str, str] | None = None  # None: no SBOM could be had
    facts: ImageFacts | None = None
    report: ScanReport | None = None
    report_uri: str | None = None
    notes: list[str] = Field(default_factory=list)


class PackageChange(Frozen):
    name: str
    old: str
    new: str


class BaseDiff(Frozen):
    """The new digest against the previous one."""

    added: list[str] = Field(default_factory=list)  # "name version"
    removed: list[str] = Field(default_factory=list)
    changed: list[PackageChange] = Field(default_factory=list)
    fixed: list[Finding] = Field(default_factory=list)
    new: list[Finding] = Field(default_factory=list)
    config: list[str] = Field(default_factory=list)  # e.g. "user: root -> app"
    packages_compared: bool = False
    findings_compared: bool = False
    cut: str = ""  # what `capped` left out, said

    @property
    def metadata_only(self) -> bool:
        """Nothing but metadata changed (timestamps, labels): packages, findings and config equal."""
        return (
            self.packages_compared
            and not (self.added or self.removed or self.changed or self.config)
            and not (self.fixed or self.new)
        )

    def capped(self, limit: int = MAX_LISTED) -> BaseDiff:
        """At most `limit` of each list, so the check fits one table item (the counts are said)."""
        lists = ("added", "removed", "changed", "fixed", "new")
        if all(len(getattr(self, name)) <= limit for name in lists):
            return self
        cut = {name: getattr(self, name)[:limit] for name in lists}
        said = [f"{name}: {len(getattr(self, name))}" for name in lists if len(getattr(self, name)) > limit]
        return self.model_copy(update={**cut, "cut": f"lists cut to {limit} ({', '.join(said)})"})

    def highest_fixed(self) -> Severity | None:
        return max((f.severity for f in self.fixed), key=lambda s: s.order, default=None)

    def said(self, limit: int = 5) -> list[str]:
        """The diff in lines for people."""
        lines = []
        if self.fixed:
            lines.append(f"Fixes {len(self.fixed)} finding(s): {_listing(self.fixed, limit)}.")
        if self.new:
            lines.append(f"Brings {len(self.new)} new finding(s): {_listing(self.new, limit)}.")
        if self.changed:
            shown = ", ".join(f"{c.name} {c.old} -> {c.new}" for c in self.changed[:limit])
            lines.append(f"{len(self.changed)} package(s) changed: {shown}{_more(self.changed, limit)}.")
        for word, names in (("added", self.added), ("removed", self.removed)):
            if names:
                lines.append(
                    f"{len(names)} package(s) {word}: {', '.join(names[:limit])}{_more(names, limit)}."
                )
        lines += [f"Config changed: {change}." for change in self.config]
        lines += [f"Shown in part: {self.cut}."] if self.cut else []
        if not self.packages_compared:
            lines.append("Packages not compared: no SBOM of one of the two digests.")
        elif self.metadata_only:
            lines.append("No package, finding or config change: only metadata (timestamps, labels).")
        return lines


class BaseJudgement(Frozen):
    """The base check of (base, digest), made once and recorded on the patch."""

    base: str
    digest: str
    previous_digest: str | None = None
    signature: SignatureState = "not_configured"
    signature_reason: str = ""
    scanned: bool = False  # the new digest has a scan report
    report_uri: str | None = None  # the new digest's report: every rebuild's "came with the base"
    previous_report_uri: str | None = None
    diff: BaseDiff = Field(default_factory=BaseDiff)
    notes: list[str] = Field(default_factory=list)
    checked_at: datetime | None = None
    # The urgency decided on it: now | batch | soak | skip | refused, and until when it waits.
    urgency: str = "now"
    urgency_reason: str = ""
    release_at: datetime | None = None
    # The SLSA provenance each digest publishes (None: not looked for, as before it was read).
    provenance: Provenance | None = None
    previous_provenance: Provenance | None = None

    @property
    def verified(self) -> bool:
        return self.signature != "failed"


def read_vex(data: bytes | None) -> set[str]:
    """Vulnerability ids an OpenVEX (or CycloneDX VEX) document says do not apply."""
    if not data:
        return set()
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ScanReportError(f"VEX document is not valid JSON: {exc}") from exc
    gone: set[str] = set()
    for statement in document.get("statements", []) if isinstance(document, dict) else []:
        vuln = statement.get("vulnerability", {})
        name = vuln.get("name") if isinstance(vuln, dict) else vuln
        if statement.get("status") in ("not_affected", "fixed") and isinstance(name, str):
            gone.add(name)
    for vuln in document.get("vulnerabilities", []) if isinstance(document, dict) else []:
        state = (vuln.get("analysis") or {}).get("state")
        if state in ("not_affected", "resolved", "false_positive") and isinstance(vuln.get("id"), str):
            gone.add(vuln["id"])
    return gone


def without_vex(report: ScanReport, not_applying: set[str]) -> ScanReport:
    """The report less the findings the publisher's VEX says do not apply."""
    if not not_applying:
        return report
    kept = [f for f in report.findings if f.id not in not_applying]
    return ScanReport.of(
        report.scanner, report.format, kept, scanner_version=report.scanner_version, others=report.others
    )


def read_sbom(data: bytes) -> tuple[dict[str, str], ImageFacts | None]:
    """Packages (name -> version) from syft JSON or CycloneDX JSON; syft JSON also gives the config."""
    if len(data) > MAX_SBOM_BYTES:
        raise ScanReportError(f"SBOM is {len(data):,} bytes, more than {MAX_SBOM_BYTES:,}")
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ScanReportError(f"SBOM is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ScanReportError("SBOM is not a JSON object: not syft JSON or CycloneDX")
    if "artifacts" in document:  # syft JSON
        packages = _packages(document["artifacts"], "artifacts")
        return packages, _syft_facts(document.get("source") or {})
    if document.get("bomFormat") == "CycloneDX" or "components" in document:
        return _packages(document.get("components") or [], "components"), None
    raise ScanReportError("unknown SBOM format: expected syft JSON (artifacts) or CycloneDX (components)")


def _packages(items: Any, where: str) -> dict[str, str]:
    if not isinstance(items, list):
        raise ScanReportError(f"SBOM {where} is not an array")
    packages: dict[str, str] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item.get("type") != "file":
            name = item["name"] if not item.get("type") else f"{item['name']} ({item['type']})"
            packages[name] = str(item.get("version") or "")
    return packages


def _syft_facts(source: Mapping[str, Any]) -> ImageFacts | None:
    metadata = source.get("metadata") or source.get("target") or {}
    if not isinstance(metadata, dict) or not metadata.get("config"):
        return None
    try:
        config = json.loads(base64.b64decode(metadata["config"]))
    except ValueError:
        return None
    return facts_of_config(config)


def facts_of_config(config: Mapping[str, Any], architectures: Sequence[str] = ()) -> ImageFacts:
    """An OCI image config blob's run settings."""
    run = config.get("config") or {}
    archs = list(architectures) or ([config["architecture"]] if config.get("architecture") else [])
    return ImageFacts(
        user=run.get("User") or "",
        entrypoint=list(run.get("Entrypoint") or []),
        cmd=list(run.get("Cmd") or []),
        env=sorted(run.get("Env") or []),
        architectures=sorted(archs),
    )


def diff_base(new: BaseContents, old: BaseContents | None) -> BaseDiff:
    """Compare the new digest with the previous one; what cannot be compared is said to be."""
    diff: dict[str, Any] = {}
    if old is not None and new.packages is not None and old.packages is not None:
        diff["packages_compared"] = True
        diff["added"] = sorted(f"{n} {v}".strip() for n, v in new.packages.items() if n not in old.packages)
        diff["removed"] = sorted(f"{n} {v}".strip() for n, v in old.packages.items() if n not in new.packages)
        diff["changed"] = [
            PackageChange(name=n, old=old.packages[n], new=v)
            for n, v in sorted(new.packages.items())
            if n in old.packages and old.packages[n] != v
        ]
    if old is not None and new.report is not None and old.report is not None:
        diff["findings_compared"] = True
        new_keys = {f.key for f in new.report.findings}
        old_keys = {f.key for f in old.report.findings}
        diff["fixed"] = _ordered(f for f in old.report.findings if f.key not in new_keys)
        diff["new"] = _ordered(f for f in new.report.findings if f.key not in old_keys)
    if old is not None and new.facts is not None and old.facts is not None:
        diff["config"] = config_changes(old.facts, new.facts)
    return BaseDiff(**diff)


def config_changes(old: ImageFacts, new: ImageFacts) -> list[str]:
    changes = []
    for name in ("user", "entrypoint", "cmd", "architectures"):
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            changes.append(f"{name}: {_shown(before)} -> {_shown(after)}")
    added = sorted(set(new.env) - set(old.env))
    removed = sorted(set(old.env) - set(new.env))
    if added or removed:
        changes.append(f"env: +{added} -{removed}")
    return changes


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(value) or "(none)"
    return value or "(none)"


def _ordered(findings: Any) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity.order, f.id, f.package))


def _listing(findings: Sequence[Finding], limit: int) -> str:
    shown = ", ".join(f"{f.id} ({f.severity.value}) in {f.package}" for f in findings[:limit])
    return shown + _more(findings, limit)


def _more(items: Sequence[Any], limit: int) -> str:
    return f" and {len(items) - limit} more" if len(items) > limit else ""
