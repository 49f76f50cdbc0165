"""Judge a new digest of a base once, before fan-out; then release, hold, skip or refuse it.

The planner calls `admit_patch` for each patch the detectors send. The base check (signature,
scan reports, diff against the previous digest) runs once per (base, digest) and is stored; the
urgency decides what happens: `now` plans the cascade, `batch` and `soak` hold the digest in the
table (one hold per base, the latest digest winning) until the poller's tick releases it,
`skip` plans nothing, `refused` plans nothing and alerts the owner of every dependent. One
"base moved" message tells it, before any rebuild.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import BaseModel

from patchprop.domain.alerts import Template
from patchprop.domain.alerts.base_moved import base_moved_message
from patchprop.domain.base_check import BaseJudgement, SignatureError, diff_base
from patchprop.domain.cascade import affected
from patchprop.domain.errors import NotFound, NotPromotable
from patchprop.domain.findings import ScanReportError
from patchprop.domain.models import Dependent, PatchRequest, utcnow
from patchprop.domain.records import Hold
from patchprop.domain.refs import parse_ref
from patchprop.domain.scan import parse_report
from patchprop.domain.urgency import HOLDING, BaseSettings, decide, settings_for
from patchprop.logic.base_scan import BaseScanner, scan_first
from patchprop.logic.plan import DependentsOf, Plan, cascade_rebuilding, plan_rebuilds
from patchprop.ports import BaseSources, Queue, Reports, Store, Topic

log = logging.getLogger(__name__)
CARRIED_READS = 50  # past this many direct dependents, each is taken to carry the base's findings


@dataclass(frozen=True)
class Admission:
    """What became of a patch: its check, and the plan when it was released now."""

    check: BaseJudgement
    plan: Plan | None = None
    told: bool = False


def check_digest(patch: PatchRequest, settings: BaseSettings, *, sources: BaseSources) -> BaseJudgement:
    """Verify, read and diff the new digest against the previous one, and read what each one's
    provenance says (each read once)."""
    common = {"base": patch.base, "digest": patch.digest, "previous_digest": patch.previous_digest}
    if settings.problem:  # fail closed, reading nothing: the base's settings do not read
        return BaseJudgement(**common, notes=[f"Not checked: {settings.problem}."], checked_at=utcnow())
    ref = parse_ref(patch.base)
    signature, why = "not_configured", ""
    if settings.key:
        try:
            sources.verify(ref.with_digest(patch.digest), settings.key)
            signature = "verified"
        except SignatureError as exc:  # fail closed: unreadable key, no service, a bad signature
            signature, why = "failed", str(exc)
    if signature == "failed":
        return BaseJudgement(**common, signature="failed", signature_reason=why, checked_at=utcnow())
    new = sources.contents(ref.with_digest(patch.digest))
    old = sources.contents(ref.with_digest(patch.previous_digest)) if patch.previous_digest else None
    notes = [*new.notes, *(old.notes if old else [])]
    provenance = sources.provenance(ref.with_digest(patch.digest))
    previous = sources.provenance(ref.with_digest(patch.previous_digest)) if patch.previous_digest else None
    if new.report is None:
        notes.append(
            "The base was not scanned: the gates compare each rebuild with no base report, so a "
            "finding that came with the base counts as the image's own (a weaker comparison)."
        )
    return BaseJudgement(
        **common,
        signature=signature,
        scanned=new.report is not None,
        report_uri=new.report_uri if new.report is not None else None,
        previous_report_uri=old.report_uri if old and old.report is not None else None,
        diff=diff_base(new, old).capped(),
        notes=notes,
        checked_at=utcnow(),
        provenance=provenance,
        previous_provenance=previous,
    )


def admit_patch(
    patch: PatchRequest,
    *,
    store: Store,
    rebuild_queue: Queue,
    topic: Topic,
    sources: BaseSources,
    settings: Mapping[str, BaseSettings],
    template: Template = "email",
    now: datetime | None = None,
    reports: Reports | None = None,
    scanner: BaseScanner | None = None,
) -> Admission:
    """Check the patch's digest once, decide its urgency, and plan, hold, skip or refuse it.

    With `reports`, a fix is urgent only when a dependent's last report on its tag has it (when
    every direct dependent has one); otherwise every dependent is taken to carry the base's.
    With `scanner` (CodeBuild), a digest with no report waits for one check-only scan first."""
    now = now or utcnow()
    if patch.detected_by == "cascade" or cascade_rebuilding(patch.base, patch.digest, store=store):
        # Our own push of a rebuilt image: it was judged by its gate, its cascade goes on.
        return Admission(
            BaseJudgement(base=patch.base, digest=patch.digest), _plan(patch, None, store, rebuild_queue)
        )
    stored = store.get_base_check(patch.base, patch.digest)
    if patch.admitted and stored is not None:  # released from its hold: plan it, check nothing
        plan = _plan(patch, stored, store, rebuild_queue)
        return Admission(stored, plan)
    check = stored if stored is not None and not patch.force_now else None
    if check is None:
        config = settings_for(patch.base, settings)
        hold = store.get_hold(patch.base)
        older = hold if hold is not None and hold.patch.digest != patch.digest else None
        if older is not None:  # the fleet is still on the digest before the held one: diff with that
            patch = patch.model_copy(update={"previous_digest": older.patch.previous_digest})
        check = stored or check_digest(patch, config, sources=sources)
        if stored is None and scanner is not None:  # no report: one check-only scan first
            first = scan_first(patch, check, scanner=scanner, catalog=store)
            if first.waiting:  # kept with its scan; the scan's end sends it back
                return Admission(check.model_copy(update={"urgency": "checking"}))
            check = check.model_copy(update={"notes": [*check.notes, *first.notes]})
        decision = decide(
            check,
            config,
            now=now,
            kev=sources.kev() if check.diff.fixed else frozenset(),
            carried=carried_findings(patch.base, store, reports) if reports and check.diff.fixed else None,
            forced=patch.force_now,
            held_until=older.release_at if older and config.soak_hours == 0 else None,
        )
        if patch.rollback_of and decision.urgency == "now":  # why it rebuilds: said as it happened
            decision = replace(decision, reason=f"a rollback undid rebuild {patch.rollback_of}")
        check = check.model_copy(
            update={
                "urgency": decision.urgency,
                "urgency_reason": decision.reason,
                "release_at": decision.release_at,
            }
        )
        if not config.problem:  # a refusal for settings that do not read is not kept: fixed, it is judged
            check = store.put_base_check(check, replace=patch.force_now)
    return _act(patch, check, store=store, rebuild_queue=rebuild_queue, topic=topic, template=template)


def _act(
    patch: PatchRequest,
    check: BaseJudgement,
    *,
    store: Store,
    rebuild_queue: Queue,
    topic: Topic,
    template: Template,
) -> Admission:
    hold = store.get_hold(patch.base)
    if check.urgency in HOLDING and check.release_at is not None:
        store.put_hold(
            Hold(
                patch=patch.model_copy(update={"admitted": True, "force_now": False}),
                release_at=check.release_at,
                urgency=check.urgency,
                reason=check.urgency_reason,
            )
        )
        if hold is not None and hold.patch.digest != patch.digest:
            log.info("hold of %s: %s replaced by %s", patch.base, hold.patch.digest, patch.digest)
        return Admission(check, told=_tell(check, store, topic, template))
    if check.urgency == "now":
        if hold is not None:  # an older held digest: this one supersedes it
            store.drop_hold(patch.base, hold.patch.digest)
        # Told first, so the message comes before any rebuild (a retry plans; it tells once).
        told = _tell(check, store, topic, template)
        return Admission(check, _plan(patch, check, store, rebuild_queue), told=told)
    # skip or refused: the patch is recorded with its check, and nothing is rebuilt
    if store.get_patch(patch.base, patch.digest) is None:
        store.record_patch(patch, rebuilds=0, base_check=check)
    if check.urgency == "refused":
        return Admission(check, told=_tell_owners(check, store, topic, template))
    return Admission(check, told=_tell(check, store, topic, template, rebuilding=False))


def _plan(patch: PatchRequest, check: BaseJudgement | None, store: Store, queue: Queue) -> Plan:
    return plan_rebuilds(patch, store=store, rebuild_queue=queue, base_check=check)


def _affected(base: str, store: Store) -> dict[str, Dependent]:
    tracked = {b.ref for b in store.list_bases()}
    return affected(base, DependentsOf(store), tracked)


def _tell(
    check: BaseJudgement, store: Store, topic: Topic, template: Template, *, rebuilding: bool = True
) -> bool:
    """The one "base moved" message of this digest, its `owner` attribute the owners of every
    image it rebuilds (a String.Array); a redelivery tells nothing again."""
    if not store.claim_base_told(check.base, check.digest, check.urgency):
        return False
    dependents = _affected(check.base, store)
    owners = tuple(sorted({d.owner for d in dependents.values() if d.owner}))
    images = len(dependents) if rebuilding else 0
    try:
        topic.publish(base_moved_message(check, images, owners=owners, template=template))
    except Exception:
        store.release_base_told(check.base, check.digest, check.urgency)
        raise
    return True


def _tell_owners(check: BaseJudgement, store: Store, topic: Topic, template: Template) -> bool:
    """A refused base: told to the owner of every image built on it, each once."""
    if not store.claim_base_told(check.base, check.digest, check.urgency):
        return False
    dependents = _affected(check.base, store)
    owners = sorted({d.owner or "" for d in dependents.values()})
    try:
        for owner in owners or [""]:
            topic.publish(base_moved_message(check, len(dependents), owner=owner or None, template=template))
    except Exception:
        store.release_base_told(check.base, check.digest, check.urgency)
        raise
    return True


def carried_findings(
    base: str, store: Store, reports: Reports, limit: int = CARRIED_READS
) -> set[tuple[str, str]] | None:
    """The findings the base's direct dependents carry, from each one's last report on its tag;
    None (every dependent carries the base's findings) unless every one of them has such a report."""
    carried: set[tuple[str, str]] = set()
    for count, dependent in enumerate(store.dependents_of(base)):
        last = next(
            (r for r in store.recent_rebuilds(dependent.image, limit=20) if r.on_tag and r.report_uri), None
        )
        if count >= limit or last is None or last.report_uri is None:
            return None
        try:
            carried |= {f.key for f in parse_report(reports.read_report(last.report_uri)).findings}
        except ScanReportError:
            return None
    return carried or None


def release_due(*, store: Store, patches: Queue, now: datetime | None = None) -> list[str]:
    """The poller's tick: send each hold whose time came to the planner, then drop it (only if it
    still holds that digest). A crash in between sends it again; the planner plans it once."""
    released = []
    for hold in store.due_holds(now or utcnow()):
        patches.send(hold.patch)
        if store.drop_hold(hold.patch.base, hold.patch.digest):
            released.append(str(hold.patch.cascade_id))
    return released


class PatchNowAnswer(BaseModel):
    base: str
    digest: str
    previous_digest: str | None = None
    queued: bool = True

    @classmethod
    def of(cls, patch: PatchRequest) -> PatchNowAnswer:
        return cls(base=patch.base, digest=patch.digest, previous_digest=patch.previous_digest)


def patch_now(base: str, *, store: Store, patches: Queue) -> PatchRequest:
    """An owner's `patchprop patch BASE --now`: the base's current digest goes to the planner, forced
    now (a batched or skipped digest rebuilds at once; a refused signature stays refused)."""
    tracked = store.get_base(base)
    if tracked is None:
        raise NotFound(f"{base} is not a tracked base", field="base")
    if tracked.digest is None:
        raise NotPromotable(f"no digest of {base} is recorded yet: the next poll records one", field="base")
    patch = PatchRequest(
        base=tracked.ref,
        digest=tracked.digest,
        previous_digest=tracked.previous_digest,
        detected_by="person",
        force_now=True,
    )
    patches.send(patch)
    return patch
