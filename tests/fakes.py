"""In-memory fakes of the ports (patchprop.ports), for unit tests of logic: no I/O, no mocks.

They keep the adapters' contracts that logic relies on (conditional moves happen once, counts
once per id), not their storage.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel
from support import FakeBuilds

from patchprop.domain.alerts import Alert, Message
from patchprop.domain.base_check import BaseJudgement
from patchprop.domain.base_scan import BaseScan, ScanState
from patchprop.domain.cascade import Node
from patchprop.domain.errors import NotFound
from patchprop.domain.models import Base, CascadeId, Dependent, PatchRequest, utcnow
from patchprop.domain.records import (
    CascadeNode,
    Finish,
    Hold,
    NodeStatus,
    Outcome,
    Patch,
    Promotion,
    Rebuild,
    RebuildStatus,
)
from patchprop.domain.refs import ImageRef

__all__ = [
    "FakeBuilds",
    "FakeQueue",
    "FakeRegistry",
    "FakeReports",
    "FakeTopic",
    "InMemoryBaseScans",
    "InMemoryStore",
]


@dataclass
class InMemoryStore:
    """The Store port in dicts."""

    bases: dict[str, Base] = field(default_factory=dict)
    dependents: dict[str, Dependent] = field(default_factory=dict)
    patches: dict[CascadeId, Patch] = field(default_factory=dict)
    counted: dict[CascadeId, set[str]] = field(default_factory=dict)
    nodes: dict[tuple[str, str], CascadeNode] = field(default_factory=dict)
    rebuilds: dict[str, Rebuild] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    builds: dict[str, str] = field(default_factory=dict)
    in_flight: int = 0
    base_checks: dict[tuple[str, str], BaseJudgement] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)
    told: set[tuple[str, str, str]] = field(default_factory=set)
    # Images whose stored record does not read (image -> its bases): skipped, and named as such.
    unreadable: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rollbacks: set[tuple[str, str, str]] = field(default_factory=set)  # claimed (image, digest, rebuild)

    # ---- catalog
    def get_base(self, ref: str) -> Base | None:
        return self.bases.get(ref)

    def list_bases(self) -> Iterator[Base]:
        yield from sorted(self.bases.values(), key=lambda b: b.ref)

    def record_digest(self, ref: str, old: str | None, new: str, at: datetime | None = None) -> bool:
        base = self.bases.get(ref)
        if base is None or base.digest != old:
            return False
        self.bases[ref] = base.model_copy(
            update={"digest": new, "previous_digest": old, "changed_at": at or utcnow()}
        )
        return True

    def put_dependent(self, dependent: Dependent) -> None:
        self.dependents[dependent.image] = dependent
        for ref in dependent.bases:
            self.bases.setdefault(ref, Base(ref=ref))

    def get_dependent(self, image: str) -> Dependent | None:
        return self.dependents.get(image)

    def list_dependents(self, skipped: list[str] | None = None) -> Iterator[Dependent]:
        if skipped is not None:
            skipped += sorted(self.unreadable)
        yield from sorted(self.dependents.values(), key=lambda d: d.image)

    def dependents_of(self, base: str, skipped: list[str] | None = None) -> Iterator[Dependent]:
        if skipped is not None:
            skipped += sorted(image for image, bases in self.unreadable.items() if base in bases)
        yield from (d for d in self.dependents.values() if base in d.bases)

    def remove_dependent(self, image: str) -> None:
        if self.dependents.pop(image, None) is None:
            raise NotFound(f"no dependent image {image}")

    # ---- patches and cascades
    def record_patch(
        self, patch: PatchRequest, rebuilds: int, base_check: BaseJudgement | None = None
    ) -> None:
        self.patches[patch.cascade_id] = Patch(**patch.model_dump(), rebuilds=rebuilds, base_check=base_check)

    # ---- base checks and holds
    def get_base_check(self, base: str, digest: str) -> BaseJudgement | None:
        return self.base_checks.get((base, digest))

    def put_base_check(self, judgement: BaseJudgement, replace: bool = False) -> BaseJudgement:
        key = (judgement.base, judgement.digest)
        if replace or key not in self.base_checks:
            self.base_checks[key] = judgement
        return self.base_checks[key]

    def claim_base_told(self, base: str, digest: str, urgency: str) -> bool:
        if (base, digest, urgency) in self.told:
            return False
        self.told.add((base, digest, urgency))
        return True

    def release_base_told(self, base: str, digest: str, urgency: str) -> None:
        self.told.discard((base, digest, urgency))

    def claim_rollback(self, image: str, digest: str, rolled_back: str) -> bool:
        if (image, digest, rolled_back) in self.rollbacks:
            return False
        self.rollbacks.add((image, digest, rolled_back))
        return True

    def release_rollback(self, image: str, digest: str, rolled_back: str) -> None:
        self.rollbacks.discard((image, digest, rolled_back))

    def get_hold(self, base: str) -> Hold | None:
        return self.holds.get(base)

    def put_hold(self, hold: Hold) -> None:
        self.holds[hold.patch.base] = hold

    def due_holds(self, now: datetime) -> Iterator[Hold]:
        yield from [h for h in self.holds.values() if h.release_at <= now]

    def drop_hold(self, base: str, digest: str) -> bool:
        hold = self.holds.get(base)
        if hold is None or hold.patch.digest != digest:
            return False
        del self.holds[base]
        return True

    def get_patch(self, base: str, digest: str) -> Patch | None:
        return self.patches.get(CascadeId.of(base, digest))

    def patches_of(self, base: str) -> Iterator[Patch]:
        yield from (p for p in self.patches.values() if p.base == base)

    def count_finished(
        self, patch: CascadeId, counted_id: str, outcome: str, at: datetime
    ) -> tuple[bool, Patch | None]:
        found = self.patches.get(patch)
        if found is None or counted_id in self.counted.setdefault(patch, set()):
            return False, found
        self.counted[patch].add(counted_id)
        update = {
            "finished": found.finished + 1,
            outcome: getattr(found, outcome) + 1,
            "last_finished_at": at,
        }
        self.patches[patch] = found.model_copy(update=update)
        return True, self.patches[patch]

    def uncount_finished(self, patch: CascadeId, counted_id: str, outcome: str) -> bool:
        found = self.patches.get(patch)
        if found is None or counted_id not in self.counted.get(patch, set()):
            return False
        self.counted[patch].discard(counted_id)
        update = {"finished": found.finished - 1, outcome: getattr(found, outcome) - 1, "summarized": False}
        update["announced"] = False
        self.patches[patch] = found.model_copy(update=update)
        return True

    def claim_summary(self, patch: CascadeId) -> bool:
        found = self.patches.get(patch)
        if found is None or found.summarized:
            return False
        self.patches[patch] = found.model_copy(update={"summarized": True})
        return True

    def release_summary(self, patch: CascadeId) -> None:
        self.patches[patch] = self.patches[patch].model_copy(update={"summarized": False})

    def mark_patch_announced(self, patch: CascadeId) -> None:
        self.patches[patch] = self.patches[patch].model_copy(update={"announced": True})

    def put_cascade(self, cascade: CascadeId, nodes: Iterable[Node]) -> int:
        count = 0
        for node in nodes:
            status = NodeStatus.WAITING if node.parents else NodeStatus.READY
            self.nodes[(cascade, node.image)] = CascadeNode(
                cascade=cascade,
                image=node.image,
                dependent=node.dependent,
                children=node.children,
                priority=node.priority,
                status=status,
                waiting=frozenset(node.parents),
            )
            count += 1
        return count

    def cascade_nodes(self, cascade: CascadeId) -> Iterator[CascadeNode]:
        yield from (n for (c, _), n in self.nodes.items() if c == cascade)

    def get_node(self, cascade: CascadeId, image: str) -> CascadeNode | None:
        return self.nodes.get((cascade, image))

    def parent_rebuilt(self, cascade: CascadeId, child: str, parent: str) -> bool:
        node = self.nodes.get((cascade, child))
        if node is None or node.status is not NodeStatus.WAITING:
            return False
        node = node.model_copy(update={"waiting": node.waiting - {parent}})
        self.nodes[(cascade, child)] = node
        return not node.waiting and self.set_node_status(
            cascade, child, NodeStatus.READY, (NodeStatus.WAITING,)
        )

    def set_node_status(
        self, cascade: CascadeId, image: str, status: NodeStatus, expect: Iterable[NodeStatus]
    ) -> bool:
        node = self.nodes.get((cascade, image))
        if node is None or node.status not in tuple(expect):
            return False
        self.nodes[(cascade, image)] = node.model_copy(update={"status": status})
        return True

    # ---- rebuilds
    def get_rebuild(self, rebuild_id: str) -> Rebuild | None:
        return self.rebuilds.get(rebuild_id)

    def rebuild_id_for_build(self, build_id: str) -> str | None:
        return self.builds.get(build_id)

    def recent_rebuilds(self, image: str, limit: int | None = None) -> Iterator[Rebuild]:
        found = sorted((r for r in self.rebuilds.values() if r.image == image), key=lambda r: r.detected_at)
        yield from list(reversed(found))[:limit]

    def last_rebuild(self, image: str) -> Rebuild | None:
        return next(self.recent_rebuilds(image, 1), None)

    def get_alert(self, rebuild_id: str) -> Alert | None:
        return self.alerts.get(rebuild_id)

    def record_started(self, rebuild: Rebuild) -> Rebuild:
        self.builds[rebuild.build_id or ""] = rebuild.rebuild_id
        return self.rebuilds.setdefault(rebuild.rebuild_id, rebuild)

    def record_not_started(self, rebuild: Rebuild) -> Rebuild:
        return self.rebuilds.setdefault(rebuild.rebuild_id, rebuild)

    def record_progress(self, rebuild_id: str, build_id: str, log_url: str | None) -> None:
        rebuild = self.rebuilds[rebuild_id]
        if rebuild.status is RebuildStatus.STARTED:
            self.rebuilds[rebuild_id] = rebuild.model_copy(update={"status": RebuildStatus.IN_PROGRESS})

    def record_finished(self, rebuild_id: str, finish: Finish, alert: Alert | None = None) -> Rebuild | None:
        rebuild = self.rebuilds.get(rebuild_id)
        if rebuild is None or rebuild.status.final:
            return rebuild
        changes = {k: v for k, v in finish.model_dump(exclude={"at"}).items() if v is not None}
        self.rebuilds[rebuild_id] = rebuild.model_copy(update={**changes, "finished_at": finish.at})
        if alert is not None:
            self.alerts[rebuild_id] = alert
        return self.rebuilds[rebuild_id]

    def mark_notified(self, rebuild_id: str) -> None:
        self.rebuilds[rebuild_id] = self.rebuilds[rebuild_id].model_copy(update={"notified": True})

    def mark_announced(self, rebuild_id: str, outcome: Outcome) -> None:
        self.rebuilds[rebuild_id] = self.rebuilds[rebuild_id].model_copy(update={"announced": outcome})

    def record_promotion(self, rebuild_id: str, promotion: Promotion) -> Rebuild | None:
        rebuild = self.rebuilds.get(rebuild_id)
        if rebuild is None:
            return None
        changes = {k: v for k, v in promotion.model_dump().items() if v is not None}
        self.rebuilds[rebuild_id] = rebuild.model_copy(update=changes)
        return self.rebuilds[rebuild_id]

    def count_promotion_attempt(self, rebuild_id: str, reason: str) -> int:
        rebuild = self.rebuilds[rebuild_id]
        attempts = rebuild.promote_attempts + 1
        self.rebuilds[rebuild_id] = rebuild.model_copy(
            update={"promote_attempts": attempts, "promotion_reason": reason}
        )
        return attempts

    # ---- the cap
    def claim_build_slot(self, cap: int) -> bool:
        if self.in_flight >= cap:
            return False
        self.in_flight += 1
        return True

    def release_build_slot(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    def build_slots_in_use(self) -> int:
        return self.in_flight

    def set_build_slots_in_use(self, value: int, expect: int) -> bool:
        if self.in_flight != expect:
            return False
        self.in_flight = value
        return True


@dataclass
class InMemoryBaseScans:
    """The BaseScans port in a dict: a claim is taken once."""

    scans: dict[tuple[str, str], BaseScan] = field(default_factory=dict)

    def claim_base_scan(self, scan: BaseScan) -> bool:
        return self.scans.setdefault((scan.base, scan.digest), scan) is scan

    def get_base_scan(self, base: str, digest: str) -> BaseScan | None:
        return self.scans.get((base, digest))

    def set_base_scan_build(self, base: str, digest: str, build_id: str) -> None:
        self.scans[(base, digest)] = self.scans[(base, digest)].model_copy(update={"build_id": build_id})

    def finish_base_scan(self, base: str, digest: str, state: ScanState, reason: str, build_id: str) -> bool:
        scan = self.scans[(base, digest)]
        if scan.state != "checking":
            return False
        self.scans[(base, digest)] = scan.model_copy(
            update={"state": state, "reason": reason, "build_id": build_id}
        )
        return True

    def checking_base_scans(self, started_before: datetime) -> Iterator[BaseScan]:
        return iter(
            [s for s in self.scans.values() if s.state == "checking" and s.started_at < started_before]
        )

    def keep_patch(self, scan: BaseScan) -> bool:
        held = self.scans.get((scan.base, scan.digest))
        if held is None or held.state != "checking":
            return False
        self.scans[(scan.base, scan.digest)] = held.model_copy(update={"patch": scan.patch})
        return True

    def drop_base_scan(self, base: str, digest: str) -> None:
        self.scans.pop((base, digest), None)


@dataclass
class FakeQueue:
    sent: list[tuple[BaseModel, int]] = field(default_factory=list)
    delayed: dict[str, int] = field(default_factory=dict)

    def send(self, message: BaseModel, delay: int = 0) -> None:
        self.sent.append((message, delay))

    def send_batch(self, messages: Sequence[BaseModel]) -> None:
        self.sent += [(m, 0) for m in messages]

    def retry_later(self, receipt_handle: str, seconds: int) -> None:
        self.delayed[receipt_handle] = seconds

    @property
    def messages(self) -> list[BaseModel]:
        return [m for m, _ in self.sent]


@dataclass
class FakeTopic:
    published: list[Message] = field(default_factory=list)

    def publish(self, message: Message) -> str:
        self.published.append(message)
        return f"msg-{len(self.published)}"

    def outcomes(self) -> list[str]:
        return [str(m.attributes.get("outcome")) for m in self.published]


@dataclass
class FakeRegistry:
    """Tags to digests; every lookup is recorded."""

    digests: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def resolve_digest(self, ref: ImageRef) -> str:
        self.asked.append(str(ref))
        return self.digests[str(ref)]


@dataclass
class FakeReports:
    reports: dict[str, bytes] = field(default_factory=dict)

    def read_report(self, uri: str) -> bytes:
        return self.reports[uri]
