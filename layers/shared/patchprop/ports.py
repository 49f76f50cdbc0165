"""Ports: what logic needs from the outside world, as Protocols. Adapters implement them; unit
tests pass in-memory fakes (tests/fakes.py)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from patchprop.domain.alerts import Alert, Message
from patchprop.domain.base_check import BaseContents, BaseJudgement
from patchprop.domain.base_scan import BaseScan, ScanState
from patchprop.domain.cascade import Node
from patchprop.domain.events import BuildResult
from patchprop.domain.models import Base, CascadeId, Dependent, PatchRequest
from patchprop.domain.outcome_events import OutcomeEvent
from patchprop.domain.provenance import Provenance
from patchprop.domain.rebase import Rebase
from patchprop.domain.records import CascadeNode, Finish, Hold, NodeStatus, Outcome, Patch, Promotion, Rebuild
from patchprop.domain.refs import ImageRef
from patchprop.domain.rescan import RescanState
from patchprop.domain.scan.ecr import EcrScan


class Catalog(Protocol):
    """Tracked bases and the dependents registered on them."""

    def get_base(self, ref: str) -> Base | None: ...
    def list_bases(self) -> Iterator[Base]: ...
    def record_digest(self, ref: str, old: str | None, new: str, at: datetime | None = None) -> bool: ...
    def put_dependent(self, dependent: Dependent) -> None: ...
    def get_dependent(self, image: str) -> Dependent | None: ...
    # A stored dependent that does not read is skipped (logged, counted), its image appended to
    # `skipped` when given: one bad record never stops a listing or a plan.
    def list_dependents(self, skipped: list[str] | None = None) -> Iterator[Dependent]: ...
    def dependents_of(self, base: str, skipped: list[str] | None = None) -> Iterator[Dependent]: ...
    def remove_dependent(self, image: str) -> None: ...


class Patches(Protocol):
    """Patches (a base moved to a digest) with their counters, and the nodes of their cascades."""

    def record_patch(
        self, patch: PatchRequest, rebuilds: int, base_check: BaseJudgement | None = None
    ) -> None: ...
    def get_patch(self, base: str, digest: str) -> Patch | None: ...
    def patches_of(self, base: str) -> Iterator[Patch]: ...
    def count_finished(
        self, patch: CascadeId, counted_id: str, outcome: str, at: datetime
    ) -> tuple[bool, Patch | None]: ...
    def uncount_finished(self, patch: CascadeId, counted_id: str, outcome: str) -> bool: ...
    def claim_summary(self, patch: CascadeId) -> bool: ...
    def release_summary(self, patch: CascadeId) -> None: ...
    def mark_patch_announced(self, patch: CascadeId) -> None: ...
    def claim_rollback(self, image: str, digest: str, rolled_back: str) -> bool:
        """True once per rollback of `image` to `digest` undoing the rebuild `rolled_back`."""
        ...

    def release_rollback(self, image: str, digest: str, rolled_back: str) -> None: ...
    def put_cascade(self, cascade: CascadeId, nodes: Iterable[Node]) -> int: ...
    def cascade_nodes(self, cascade: CascadeId) -> Iterator[CascadeNode]: ...
    def get_node(self, cascade: CascadeId, image: str) -> CascadeNode | None: ...
    def parent_rebuilt(self, cascade: CascadeId, child: str, parent: str) -> bool: ...
    def set_node_status(
        self, cascade: CascadeId, image: str, status: NodeStatus, expect: Iterable[NodeStatus]
    ) -> bool: ...


class Rebuilds(Protocol):
    """Rebuilds: started, in progress, finished with their verdict and the alert that told it."""

    def get_rebuild(self, rebuild_id: str) -> Rebuild | None: ...
    def rebuild_id_for_build(self, build_id: str) -> str | None: ...
    def recent_rebuilds(self, image: str, limit: int | None = None) -> Iterator[Rebuild]: ...
    def last_rebuild(self, image: str) -> Rebuild | None: ...
    def get_alert(self, rebuild_id: str) -> Alert | None: ...
    def record_started(self, rebuild: Rebuild) -> Rebuild: ...
    def record_not_started(self, rebuild: Rebuild) -> Rebuild: ...
    def record_progress(self, rebuild_id: str, build_id: str, log_url: str | None) -> None: ...
    def record_finished(
        self, rebuild_id: str, finish: Finish, alert: Alert | None = None
    ) -> Rebuild | None: ...
    def mark_notified(self, rebuild_id: str) -> None: ...
    def mark_announced(self, rebuild_id: str, outcome: Outcome) -> None: ...
    def record_promotion(self, rebuild_id: str, promotion: Promotion) -> Rebuild | None: ...
    def count_promotion_attempt(self, rebuild_id: str, reason: str) -> int: ...


class BuildSlots(Protocol):
    """The concurrency cap: how many builds patchprop has running."""

    def claim_build_slot(self, cap: int) -> bool: ...
    def release_build_slot(self) -> None: ...


class SlotLedger(Protocol):
    """The cap's counter as a number, for the reconciler (logic/reconcile.py)."""

    def build_slots_in_use(self) -> int: ...
    def set_build_slots_in_use(self, value: int, expect: int) -> bool:
        """Set the counter to `value` if it still is `expect`; False if it changed meanwhile."""
        ...


class BaseChecks(Protocol):
    """The one check of each (base, digest), and the digests held for a batch window or a soak."""

    def get_base_check(self, base: str, digest: str) -> BaseJudgement | None: ...
    def put_base_check(self, judgement: BaseJudgement, replace: bool = False) -> BaseJudgement:
        """Record the check unless one is recorded already (or `replace`); returns the one recorded."""
        ...

    def claim_base_told(self, base: str, digest: str, urgency: str) -> bool:
        """True once per (base, digest, urgency): that "base moved" message is to be sent now."""
        ...

    def release_base_told(self, base: str, digest: str, urgency: str) -> None: ...

    def get_hold(self, base: str) -> Hold | None: ...
    def put_hold(self, hold: Hold) -> None: ...
    def due_holds(self, now: datetime) -> Iterator[Hold]: ...
    def drop_hold(self, base: str, digest: str) -> bool:
        """Remove the base's hold if it still holds `digest`; False if it does not (once only)."""
        ...


class Rescans(Protocol):
    """The rescans of promoted images (logic/rescan.py): a budget per day, one state per image."""

    def get_rescan(self, image: str) -> RescanState | None: ...
    def claim_rescan(self, image: str, day: str, budget: int) -> bool:
        """Take one of the day's `budget` rescans for `image`, unless it had one that day (atomic)."""
        ...

    def put_rescan(self, state: RescanState) -> None: ...
    def rescans_spent(self, day: str) -> int:
        """How many of the day's rescans were taken."""
        ...


class BaseScans(Protocol):
    """The one check-only scan of a base digest that has no report (logic/base_scan.py)."""

    def claim_base_scan(self, scan: BaseScan) -> bool:
        """Record the scan unless one of (base, digest) is recorded (a conditional put): True once."""
        ...

    def get_base_scan(self, base: str, digest: str) -> BaseScan | None: ...
    def set_base_scan_build(self, base: str, digest: str, build_id: str) -> None: ...
    def finish_base_scan(self, base: str, digest: str, state: ScanState, reason: str, build_id: str) -> bool:
        """Record its end if it is still `checking`; False if it was recorded ended already."""
        ...

    def checking_base_scans(self, started_before: datetime) -> Iterator[BaseScan]:
        """The scans still `checking` that were claimed before `started_before`."""
        ...

    def keep_patch(self, scan: BaseScan) -> bool:
        """Replace the patch a still-`checking` scan holds with `scan.patch`; False if it ended."""
        ...

    def drop_base_scan(self, base: str, digest: str) -> None:
        """Forget a scan whose build could not start for now (the patch's retry claims it again)."""
        ...


class Store(Catalog, Patches, Rebuilds, BuildSlots, SlotLedger, BaseChecks, Protocol):
    """Everything stored (one DynamoDB table in AWS)."""


class Queue(Protocol):
    """A message queue of pydantic messages."""

    def send(self, message: BaseModel, delay: int = 0) -> None: ...
    def send_batch(self, messages: Sequence[BaseModel]) -> None: ...
    def retry_later(self, receipt_handle: str, seconds: int) -> None: ...


class Topic(Protocol):
    """Where alerts are published (SNS in AWS)."""

    def publish(self, message: Message) -> str: ...


class EventBus(Protocol):
    """Where outcome events go for deployment tools (EventBridge in AWS)."""

    def put(self, event: OutcomeEvent) -> None: ...


class Builds(Protocol):
    """Starts builds. CodeBuild in AWS, the local builder in `patchprop local`."""

    def start_build(
        self,
        project: str,
        env: Mapping[str, str],
        idempotency_token: str,
        source_version: str | None = None,
        source_location: str | None = None,
    ) -> str: ...

    def build_result(self, build_id: str) -> BuildResult | None:
        """What the finished build `build_id` (`project:uuid`) left behind, or None if nothing.
        Raises UnreadableResult when what it left is not a result (domain/events.py)."""
        ...

    def running_builds(self, projects: Collection[str]) -> int:
        """How many builds of `projects` patchprop started are running now (the cap's reconciler)."""
        ...


class Registry(Protocol):
    """Resolves a tag to the digest it points at now."""

    def resolve_digest(self, ref: ImageRef) -> str: ...


class BuiltOn(Protocol):
    """What an image says it is built on: its org.opencontainers.image.base.* annotations."""

    def base_annotations(self, image: ImageRef) -> Mapping[str, str]:
        """The manifest's annotations, else the config's labels; {} when it has none.
        Raises RegistryError when the image cannot be read."""
        ...


class TagMover(Protocol):
    """Moves an image's tag to a manifest already in its repository; copies no layers."""

    def tag_digest(self, repository: ImageRef, tag: str) -> str | None: ...

    def move_tag(self, repository: ImageRef, tag: str, digest: str, expect_current: str | None) -> bool:
        """Raises TagMoved (the tag is not at expect_current), TagMoveRefused, RegistryUnavailable."""
        ...


class Rebasing(Protocol):
    """Puts an image's own layers on its base's new digest with the registry API; pushes the
    result by digest only (a candidate). Raises RebaseRefused when that would not be exact."""

    def rebase(
        self, image: ImageRef, base: ImageRef, new_digest: str, previous_digest: str | None
    ) -> Rebase: ...


class Referrers(Protocol):
    """Attaches artifacts to an image digest as OCI 1.1 referrers (with the tag-schema fallback)."""

    def attach_referrer(
        self,
        subject: ImageRef,
        artifact_type: str,
        blob: bytes,
        media_type: str,
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]: ...


class Signer(Protocol):
    """Signs a promoted digest (never a candidate)."""

    def sign(self, image: ImageRef) -> str | None: ...


class Scans(Protocol):
    """An image's scan in its registry (ECR's scan findings)."""

    def scan(self, image: ImageRef, digest: str) -> EcrScan: ...


class Reports(Protocol):
    """Reads scan reports by URI (s3:// in AWS, file:// on one machine)."""

    def read_report(self, uri: str) -> bytes: ...


class BaseSources(Protocol):
    """What the base check reads: the base's signature, its scan report, SBOM and config."""

    def verify(self, image: ImageRef, key: str) -> None:
        """Raises SignatureError unless `image` (pinned) has a signature that verifies with `key`."""
        ...

    def contents(self, image: ImageRef) -> BaseContents:
        """The digest's report (the publisher's or a check-only scan's, after its VEX), packages and
        config; what cannot be had is None with a note, never raised."""
        ...

    def kev(self) -> frozenset[str]:
        """CVE ids in the configured KEV list (empty when none is configured)."""
        ...

    def provenance(self, image: ImageRef) -> Provenance:
        """The SLSA provenance the digest publishes: state none when none, unreadable (why said)
        when it cannot be read; never raised."""
        ...


class ChatWebhook(Protocol):
    """A chat incoming webhook (Slack)."""

    def post(self, payload: dict[str, Any]) -> None: ...
