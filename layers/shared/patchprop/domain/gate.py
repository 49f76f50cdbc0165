"""The promotion gate: compare a rebuilt image's findings with its previous build and its base.

A finding is the same finding in two reports when its (vulnerability id, package) is the same.
"New" is in the rebuilt image but not in the previous build; a new finding "came with the base"
when the base image's report has it too, otherwise it is the image's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from patchprop.domain.errors import PatchpropError
from patchprop.domain.findings import Finding, OtherResult, ScanReport, Severity
from patchprop.domain.validation import first_problem

Outcome = Literal["promoted", "blocked", "failed"]
# How many findings a reason names before it says "and N more".
REASON_LIST_LIMIT = 5

POLICY_SYNTAX = (
    "a JSON object, or settings separated by ';': "
    "fail_on=critical,high;ignore_unfixed=true;allow_from_base=true;max_new=medium:5,low:20;"
    "mixed_scanners=refuse"
)
MixedScanners = Literal["refuse", "compare"]


class PolicyError(PatchpropError, ValueError):
    """A policy that cannot be read."""


class Policy(BaseModel):
    """When a rebuild is blocked.

    Each severity in `fail_on` tolerates no new finding; `max_new` sets how many new findings
    of a severity are tolerated (it overrides `fail_on` for that severity). New findings that
    came with the base count only when `allow_from_base` is false; with `ignore_unfixed`, new
    findings without a fixed version do not count. A previous or base report written by another
    scanner than the rebuilt image's is not compared (`mixed_scanners=refuse`, the default: the
    image is judged as without it, and the verdict says so) or compared anyway (`compare`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_on: list[Severity] = Field(default_factory=lambda: [Severity.CRITICAL, Severity.HIGH])
    ignore_unfixed: bool = False
    max_new: dict[Severity, int] = Field(default_factory=dict)
    allow_from_base: bool = True
    mixed_scanners: MixedScanners = "refuse"

    def tolerated(self, severity: Severity) -> int | None:
        """How many new findings of `severity` pass the gate; None for any number."""
        if severity in self.max_new:
            return max(self.max_new[severity], 0)
        return 0 if severity in self.fail_on else None


def parse_policy(text: str | None) -> Policy:
    """Read a policy: JSON (`{"fail_on": ["CRITICAL"]}`) or `key=value;key=value`.

    In the shorthand, lists are comma-separated and max_new entries are `severity:count`:
    `fail_on=critical,high;ignore_unfixed=true;max_new=medium:5,low:20`. `fail_on=` or
    `fail_on=none` blocks on no severity. Empty text is the default policy.
    """
    text = (text or "").strip()
    if not text:
        return Policy()
    if text.startswith("{"):
        try:
            return Policy.model_validate(json.loads(text))
        except json.JSONDecodeError as exc:
            raise PolicyError(f"policy is not valid JSON: {exc}") from exc
        except ValidationError as exc:
            raise PolicyError(f"policy {first_problem(exc, default='policy')}") from exc
    settings: dict[str, object] = {}
    for item in text.split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip().lower().replace("-", "_"), value.strip()
        if not sep or not key:
            raise PolicyError(f"policy setting {item.strip()!r} is not key=value; expected {POLICY_SYNTAX}")
        if key in settings:
            raise PolicyError(f"policy sets {key} twice")
        if key == "fail_on":
            words = [] if value.lower() in ("", "none") else value.split(",")
            settings[key] = [_severity(word, key) for word in words]
        elif key in ("ignore_unfixed", "allow_from_base"):
            settings[key] = _boolean(value, key)
        elif key == "max_new":
            settings[key] = dict(_threshold(entry) for entry in value.split(",") if entry.strip())
        elif key == "mixed_scanners":
            if value.lower() not in ("refuse", "compare"):
                raise PolicyError(f"policy mixed_scanners: {value!r} is not refuse or compare")
            settings[key] = value.lower()
        else:
            known = ", ".join(Policy.model_fields)
            raise PolicyError(f"policy has no setting {key!r}; settings are {known}")
    return Policy.model_validate(settings)


def _severity(word: str, key: str) -> Severity:
    try:
        return Severity(word.strip())
    except ValueError:
        names = ", ".join(s.value.lower() for s in Severity)
        raise PolicyError(f"policy {key}: {word.strip()!r} is not a severity ({names})") from None


def _boolean(value: str, key: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise PolicyError(f"policy {key}: {value!r} is not true or false")


def _threshold(entry: str) -> tuple[Severity, int]:
    word, sep, count = entry.partition(":")
    if not sep or not count.strip().isdigit():
        raise PolicyError(f"policy max_new: {entry.strip()!r} is not severity:count (e.g. medium:5)")
    return _severity(word, "max_new"), int(count)


class GateResult(BaseModel):
    """What the gate decided and why, with the findings behind it."""

    outcome: Outcome
    reasons: list[str]
    fixed: list[Finding] = Field(default_factory=list)
    still_present: list[Finding] = Field(default_factory=list)
    new_from_base: list[Finding] = Field(default_factory=list)
    new_own: list[Finding] = Field(default_factory=list)
    # The new findings the policy blocked on, and those ignore_unfixed let through.
    blocking: list[Finding] = Field(default_factory=list)
    ignored_unfixed: list[Finding] = Field(default_factory=list)
    highest_new: Severity | None = None
    # The rebuilt image's results that are not vulnerabilities (secrets, misconfigurations, licenses).
    others: list[OtherResult] = Field(default_factory=list)

    @classmethod
    def failed(cls, reason: str) -> GateResult:
        """Nothing could be judged: never promoted."""
        return cls(outcome="failed", reasons=[reason])


def gate(
    report: ScanReport | None,
    previous: ScanReport | None,
    base: ScanReport | None,
    policy: Policy,
) -> GateResult:
    """Decide whether a rebuilt image is promoted, given the scans of it, its last build and its base."""
    if report is None:
        return GateResult.failed(
            "no scan report for the rebuilt image: it was not scanned, or the scan was lost"
        )
    compared: list[str] = []
    had_previous = previous is not None
    previous = _comparable(report, previous, "the previous build", policy, compared)
    base = _comparable(report, base, "the base image", policy, compared)
    base_keys = {finding.key for finding in base.findings} if base else set()
    report_keys = {finding.key for finding in report.findings}
    if previous is None:
        new, still_present, fixed = list(report.findings), [], []
    else:
        previous_keys = {finding.key for finding in previous.findings}
        new = [f for f in report.findings if f.key not in previous_keys]
        still_present = [f for f in report.findings if f.key in previous_keys]
        fixed = [f for f in previous.findings if f.key not in report_keys]
    new_from_base = _by_severity(f for f in new if f.key in base_keys)
    new_own = _by_severity(f for f in new if f.key not in base_keys)

    counted = new_own if policy.allow_from_base else new_own + new_from_base
    ignored = [f for f in counted if policy.ignore_unfixed and not f.fixed_version]
    counted = [f for f in counted if not (policy.ignore_unfixed and not f.fixed_version)]

    reasons: list[str] = []
    blocking: list[Finding] = []
    for severity in sorted(Severity, key=lambda s: s.order, reverse=True):
        at_severity = [f for f in counted if f.severity == severity]
        tolerated = policy.tolerated(severity)
        if tolerated is None or len(at_severity) <= tolerated:
            continue
        blocking += at_severity
        base_keyed = [f for f in at_severity if f.key in base_keys]
        own = [f for f in at_severity if f.key not in base_keys]
        for group, origin in (
            (own, "from the image's own packages"),
            (base_keyed, "that came with the base"),
        ):
            if group:
                reasons.append(_new_reason(group, severity, origin, len(at_severity), tolerated))

    outcome: Outcome = "blocked" if blocking else "promoted"
    if not blocking:
        reasons.append(f"No new finding that the policy blocks on: {_policy_summary(policy)}.")
    reasons += _others_said(report.others)
    reasons += compared
    reasons += _notes(previous, fixed, new_from_base, ignored, policy, previous_refused=had_previous)
    everything_new = new_own + new_from_base
    return GateResult(
        outcome=outcome,
        reasons=reasons,
        fixed=_by_severity(fixed),
        still_present=_by_severity(still_present),
        new_from_base=new_from_base,
        new_own=new_own,
        blocking=blocking,
        ignored_unfixed=ignored,
        highest_new=max((f.severity for f in everything_new), key=lambda s: s.order, default=None),
        others=report.others,
    )


def _comparable(
    report: ScanReport, other: ScanReport | None, whose: str, policy: Policy, said: list[str]
) -> ScanReport | None:
    """`other` when its findings can be compared with the report's; a note in `said` when not quite.

    Scanners name and match vulnerabilities differently (Trivy's CVE is Grype's GHSA, a package
    is `libssl3` in one and `openssl` in the other), so comparing them tells "fixed" and "new"
    findings that are neither.
    """
    if other is None:
        return None
    if other.tool == report.tool:
        if (
            other.scanner_version
            and report.scanner_version
            and other.scanner_version != report.scanner_version
        ):
            said.append(
                f"{whose.capitalize()} was scanned by {other.described}, the rebuilt image by "
                f"{report.described}: same scanner, other version; compared."
            )
        return other
    mixed = f"{whose.capitalize()} was scanned by {other.described}, the rebuilt image by {report.described}"
    if policy.mixed_scanners == "compare":
        said.append(
            f"{mixed}: compared anyway (mixed_scanners=compare); what one scanner names differently "
            "shows as fixed and new."
        )
        return other
    without = (
        "every finding counts as new"
        if whose == "the previous build"
        else "no new finding counts as from the base"
    )
    said.append(
        f"{mixed}: reports of different scanners are not compared (mixed_scanners=refuse), so {without}."
    )
    return None


_KIND_WORDS = {
    "secret": "secret",
    "misconfiguration": "misconfiguration",
    "license": "license finding",
    "other": "other result",
}


def _others_said(others: Sequence[OtherResult]) -> list[str]:
    """One line per kind of result that is not a vulnerability: told, never counted or gated."""
    lines = []
    for kind, word in _KIND_WORDS.items():
        of_kind = [o for o in others if o.kind == kind]
        if not of_kind:
            continue
        shown = "; ".join(o.summary() for o in of_kind[:REASON_LIST_LIMIT])
        more = len(of_kind) - REASON_LIST_LIMIT
        shown += f" and {more} more" if more > 0 else ""
        lines.append(
            f"{_plural(len(of_kind), word)} in the rebuilt image's scan (not vulnerabilities; "
            f"not counted by the gate): {shown}."
        )
    return lines


def _by_severity(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity.order, f.id, f.package))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _listing(findings: Sequence[Finding]) -> str:
    shown = ", ".join(f.summary() for f in findings[:REASON_LIST_LIMIT])
    more = len(findings) - REASON_LIST_LIMIT
    return f"{shown} and {more} more" if more > 0 else shown


def _new_reason(group: Sequence[Finding], severity: Severity, origin: str, total: int, tolerated: int) -> str:
    """E.g. "1 new HIGH finding from the image's own packages: CVE-2026-1234 in libfoo 1.2 (fixed in 1.3)"."""
    head = f"{_plural(len(group), f'new {severity.value} finding')} {origin}"
    if tolerated:
        head += f" ({total} new {severity.value} in all; the policy allows {tolerated})"
    return f"{head}: {_listing(group)}"


def _policy_summary(policy: Policy) -> str:
    """E.g. "it blocks on any new CRITICAL or HIGH finding from the image's own packages"."""
    ordered = sorted(Severity, key=lambda s: s.order, reverse=True)
    none_allowed = [s.value for s in ordered if policy.tolerated(s) == 0]
    limits = [f"any new {' or '.join(none_allowed)} finding"] if none_allowed else []
    limits += [
        f"more than {n} new {s.value} findings"
        for s in ordered
        if (n := policy.tolerated(s)) is not None and n > 0
    ]
    if not limits:
        return "it blocks on no severity"
    said = " or ".join(limits)
    origin = "from the image's own packages" if policy.allow_from_base else "from the image or its base"
    unfixed = ", not counting those with no fix yet" if policy.ignore_unfixed else ""
    return f"it blocks on {said} {origin}{unfixed}"


def _notes(
    previous: ScanReport | None,
    fixed: Sequence[Finding],
    new_from_base: Sequence[Finding],
    ignored: Sequence[Finding],
    policy: Policy,
    *,
    previous_refused: bool = False,
) -> list[str]:
    """What the reader should know besides the decision."""
    notes = []
    if previous is None and not previous_refused:
        notes.append("No scan of the previous build: every finding is compared with the base only.")
    elif fixed:
        notes.append(f"Fixed since the previous build: {_plural(len(fixed), 'finding')}.")
    if new_from_base and policy.allow_from_base:
        notes.append(
            f"{_plural(len(new_from_base), 'new finding')} came with the base; "
            "the policy does not block on those."
        )
    if ignored:
        notes.append(f"Ignored as they have no fix yet (ignore_unfixed): {_listing(ignored)}.")
    return notes
