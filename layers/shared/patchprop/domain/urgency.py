"""How urgent a new digest of a base is: `now`, `batch` (wait for a window), `skip`, or `refused`.

`now` when the new digest fixes a finding at or above a severity (default HIGH) that the
dependents carry, or one in CISA's KEV list; `skip` when nothing but metadata changed; otherwise
`batch`: held up to a window (default 24 h) so several republishes make one cascade, the latest
digest winning. A soak holds every new digest a set time before fan-out. A base whose signature
fails is `refused`: nothing is rebuilt on it. An owner can force `now`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from patchprop.domain.base_check import BaseJudgement
from patchprop.domain.errors import PatchpropError
from patchprop.domain.findings import Finding, Severity
from patchprop.domain.key_ref import KeyRefError, parse_key_ref
from patchprop.domain.validation import first_problem

Urgency = Literal["now", "batch", "soak", "skip", "refused"]
HOLDING: frozenset[str] = frozenset({"batch", "soak"})


class BaseSettingsError(PatchpropError, ValueError):
    """BASE_CHECKS that cannot be read."""


class BaseSettings(BaseModel):
    """How one base is checked and how urgent its new digests are (BASE_CHECKS, per base)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The key its signature must verify with (domain/key_ref.py): PEM, a file, ssm:, secretsmanager:, awskms:.
    key: str | None = None
    # auto: decide by the diff; now: every digest rebuilds at once (urgency off for this base).
    mode: Literal["auto", "now"] = "auto"
    severity: Severity = Severity.HIGH
    window_hours: float = Field(default=24.0, ge=0, le=24 * 30)
    soak_hours: float = Field(default=0.0, ge=0, le=24 * 30)
    metadata_only: Literal["skip", "batch"] = "skip"
    # A base whose scan could not be had: go (rebuild, the comparison is weaker), batch, or stop.
    not_scanned: Literal["go", "batch", "stop"] = "go"
    # Set only by parse_base_settings, for an entry that does not read: that base fails closed.
    problem: str = Field(default="", exclude=True)


def parse_base_settings(text: str | None, *, strict: bool = False) -> dict[str, BaseSettings]:
    """BASE_CHECKS: a JSON object of base ref (or "*", every other base) -> settings.

    An entry that does not read fails closed for its base alone: it becomes settings whose
    `problem` names the entry and the field, and that base's digests are refused. A document
    that is no JSON object fails every base ("*"). `strict` raises on the first problem instead
    (deploy and start time, so the person setting it hears of it there)."""
    if not (text or "").strip():
        return {}
    try:
        document = json.loads(text or "")
        problem = "" if isinstance(document, dict) else "must be a JSON object of base -> settings"
    except ValueError as exc:
        document, problem = {}, f"is not valid JSON: {exc}"
    if problem:
        if strict:
            raise BaseSettingsError(f"BASE_CHECKS {problem}")
        return {"*": BaseSettings(problem=f"BASE_CHECKS {problem}")}
    settings = {}
    for base, value in document.items():
        why = entry_problem(str(base), value)
        if why and strict:
            raise BaseSettingsError(why)
        settings[str(base)] = BaseSettings(problem=why) if why else BaseSettings.model_validate(value)
    return settings


def entry_problem(base: str, value: object) -> str:
    """What is wrong with one BASE_CHECKS entry, naming it and the field ("" when it reads)."""
    where = f"BASE_CHECKS[{base!r}]"
    if not isinstance(value, dict):
        return f"{where}: must be a JSON object of settings"
    if "problem" in value:
        return f"{where} problem: not a setting"
    try:
        settings = BaseSettings.model_validate(value)
    except ValidationError as exc:
        return f"{where} {first_problem(exc, default=base)}"
    if settings.key is not None:
        try:
            parse_key_ref(settings.key)
        except KeyRefError as exc:
            return f"{where} key: {exc}"
    return ""


def settings_for(base: str, settings: Mapping[str, BaseSettings]) -> BaseSettings:
    """The base's own settings, else the "*" ones, else the defaults."""
    return settings.get(base) or settings.get("*") or BaseSettings()


@dataclass(frozen=True)
class Decision:
    urgency: Urgency
    reason: str
    release_at: datetime | None = None
    fixes: tuple[Finding, ...] = ()


def decide(
    judgement: BaseJudgement,
    settings: BaseSettings,
    *,
    now: datetime,
    carried: Collection[tuple[str, str]] | None = None,
    kev: Collection[str] = frozenset(),
    forced: bool = False,
    held_until: datetime | None = None,
) -> Decision:
    """The urgency of `judgement`'s digest. `carried`: finding keys the dependents have (None: those
    of the previous digest); `held_until`: when an older digest already held for the base is due."""
    if settings.problem:
        return Decision("refused", f"its settings do not read: {settings.problem}")
    if not judgement.verified:
        return Decision("refused", f"its signature does not verify: {judgement.signature_reason}")
    if forced:
        return Decision("now", "forced by hand (--now)")
    if settings.mode == "now":
        return Decision("now", "urgency is off for this base (mode=now)")
    soak = timedelta(hours=settings.soak_hours)
    if not judgement.scanned:
        if settings.not_scanned == "stop":
            return Decision("refused", "the base was not scanned (not_scanned=stop)")
        if settings.not_scanned == "go":
            return _soaked(
                Decision("now", "the base was not scanned: rebuilding (not_scanned=go)"), soak, now
            )
    fixes = tuple(
        f
        for f in judgement.diff.fixed
        if (f.severity.order >= settings.severity.order or f.id in kev)
        and (carried is None or f.key in carried)
    )
    if fixes:
        kev_fixed = [f.id for f in fixes if f.id in kev]
        why = f"fixes {_named(fixes)}" + (f" (in KEV: {', '.join(kev_fixed)})" if kev_fixed else "")
        return _soaked(Decision("now", why, fixes=fixes), soak, now)
    if judgement.diff.metadata_only and settings.metadata_only == "skip" and held_until is None:
        return Decision("skip", "nothing changed but metadata")
    window = now + timedelta(hours=settings.window_hours)
    until = min(held_until, window) if held_until else window
    why = "no fix at or above " + settings.severity.value
    if not judgement.scanned:
        why = "the base was not scanned (not_scanned=batch)"
    elif judgement.diff.metadata_only:
        why = "nothing changed but metadata"
    return _soaked(Decision("batch", why, release_at=until), soak, now)


def _soaked(decision: Decision, soak: timedelta, now: datetime) -> Decision:
    """Under a soak, nothing fans out before the digest has soaked."""
    if not soak:
        return decision
    until = max(decision.release_at or now, now + soak)
    urgency: Urgency = "soak" if decision.urgency == "now" else decision.urgency
    return Decision(urgency, f"{decision.reason}; soaking {soak}", release_at=until, fixes=decision.fixes)


def _named(fixes: tuple[Finding, ...], limit: int = 3) -> str:
    shown = ", ".join(f"{f.id} ({f.severity.value}) in {f.package}" for f in fixes[:limit])
    return shown + (f" and {len(fixes) - limit} more" if len(fixes) > limit else "")
