"""The composition root: the adapters a handler talks to, built from its env model once per
container and on first use (never at import time), then passed down to logic."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from patchprop.adapters import idempotency, secrets
from patchprop.adapters.base_sources import BaseRegistry, BaseSourcesAdapter
from patchprop.adapters.built_on import BuiltOnReader
from patchprop.adapters.codebuild import CodeBuild
from patchprop.adapters.dynamodb import Store as DynamoDBStore
from patchprop.adapters.ecr_scan import EcrScans
from patchprop.adapters.eventbridge import EventBus as EventBridgeBus
from patchprop.adapters.kms_signer import KmsSigner, kms_client
from patchprop.adapters.promotion import TagMovers
from patchprop.adapters.registry import RegistryClient
from patchprop.adapters.registry_rebase import Rebaser
from patchprop.adapters.registry_write import RegistryWriter
from patchprop.adapters.s3 import Reports as S3Reports
from patchprop.adapters.slack import SlackWebhook
from patchprop.adapters.sns import Topic as SNSTopic
from patchprop.adapters.sqs import Queue as SQSQueue
from patchprop.config import PlannerEnv, Resources
from patchprop.logic.base_scan import BaseScanner
from patchprop.logic.promote import Evidence
from patchprop.logic.rescan import RescanParts
from patchprop.ports import (
    BaseScans,
    BaseSources,
    Builds,
    BuiltOn,
    ChatWebhook,
    EventBus,
    Queue,
    Rebasing,
    Referrers,
    Registry,
    Reports,
    Rescans,
    Scans,
    Signer,
    Store,
    TagMover,
    Topic,
)

# Builders by name (Resources.PATCHPROP_BUILDS): CodeBuild, or one `patchprop local` registers.
_BUILDERS: dict[str, Callable[[], Builds]] = {"codebuild": CodeBuild}


# The signer of promoted digests, when one is registered (`patchprop local` with a cosign key);
# else, with SIGNING_KEY_ARN, the KMS signer (AWS).
_SIGNERS: dict[str, Callable[[], Signer]] = {}


def register_signer(factory: Callable[[], Signer] | None) -> None:
    """Sign every promoted digest with `factory()`; None: promoted digests are not signed here."""
    if factory is None:
        _SIGNERS.pop("signer", None)
    else:
        _SIGNERS["signer"] = factory


def register_builds(name: str, factory: Callable[[], Builds] | None) -> None:
    """Make `PATCHPROP_BUILDS=<name>` start rebuilds with `factory()`; None takes it back."""
    if factory is None:
        _BUILDERS.pop(name, None)
    else:
        _BUILDERS[name] = factory


@dataclass(frozen=True)
class Adapters:
    """One handler's adapters. Each is built the first time logic needs it."""

    env: Resources

    @cached_property
    def store(self) -> Store:
        return DynamoDBStore(self.env.TABLE_NAME)

    @cached_property
    def rescans(self) -> Rescans:
        return DynamoDBStore(self.env.TABLE_NAME)

    @cached_property
    def base_scans(self) -> BaseScans:
        return DynamoDBStore(self.env.TABLE_NAME)

    @cached_property
    def patch_queue(self) -> Queue:
        return SQSQueue(self.env.PATCH_QUEUE_URL)

    @cached_property
    def rebuild_queue(self) -> Queue:
        return SQSQueue(self.env.REBUILD_QUEUE_URL)

    @cached_property
    def slack_queue(self) -> Queue:
        return SQSQueue(self.env.SLACK_QUEUE_URL)

    @cached_property
    def topic(self) -> Topic:
        return SNSTopic(self.env.TOPIC_ARN)

    @cached_property
    def bus(self) -> EventBus | None:
        """The bus outcome events go to, or None when EVENT_BUS_NAME is not set."""
        return EventBridgeBus(self.env.EVENT_BUS_NAME) if self.env.EVENT_BUS_NAME else None

    @cached_property
    def scans(self) -> Scans:
        return EcrScans()

    @cached_property
    def reports(self) -> Reports:
        return S3Reports(bucket=self.env.REPORTS_BUCKET)

    @cached_property
    def builds(self) -> Builds:
        return _BUILDERS[self.env.PATCHPROP_BUILDS]()

    # Not cached here: credentials, URLs and tokens rotate (their secret is cached instead).

    @property
    def registry(self) -> Registry:
        credentials = secrets.registry_credentials(self.env.REGISTRY_CREDENTIALS_SECRET_ID)
        return _registry(tuple(sorted(credentials.items())))

    @property
    def writer(self) -> RegistryWriter:
        credentials = secrets.registry_credentials(self.env.REGISTRY_CREDENTIALS_SECRET_ID)
        return _writer(tuple(sorted(credentials.items())))

    @property
    def rebaser(self) -> Rebasing:
        credentials = secrets.registry_credentials(self.env.REGISTRY_CREDENTIALS_SECRET_ID)
        return _rebaser(tuple(sorted(credentials.items())))

    @property
    def base_sources(self) -> BaseSources:
        credentials = secrets.registry_credentials(self.env.REGISTRY_CREDENTIALS_SECRET_ID)
        return BaseSourcesAdapter(
            _base_registry(tuple(sorted(credentials.items()))),
            self.reports,
            self.env.BASE_REPORTS_URI or None,
            syft=self.env.BASE_SYFT or None,
            kev_source=self.env.KEV_SOURCE or None,
        )

    @property
    def built_on(self) -> BuiltOn:
        return BuiltOnReader(self.writer)

    @property
    def tag_mover(self) -> TagMover:
        return TagMovers(self.writer)

    @property
    def referrers(self) -> Referrers:
        return self.writer

    @property
    def signer(self) -> Signer | None:
        """Who signs promoted digests: the registered signer, else KMS with SIGNING_KEY_ARN, else none."""
        registered = _SIGNERS.get("signer")
        if registered is not None:
            return registered()
        if self.env.SIGNING_KEY_ARN:
            return KmsSigner(self.env.SIGNING_KEY_ARN, self.writer, _kms(self.env.SIGNING_KEY_ARN))
        return None

    @property
    def evidence(self) -> Evidence:
        return Evidence(referrers=self.referrers, reports=self.reports, signer=self.signer)

    def base_scanner(self, env: PlannerEnv) -> BaseScanner | None:
        """On CodeBuild, a base digest with no report gets one check-only scan before its cascade."""
        if not env.scans_bases_by_build:
            return None
        return BaseScanner(self.builds, self.base_scans, env.BASE_REPORTS_URI, env.projects)

    def rescan_parts(self, scan_source: str, projects: Collection[str] = ()) -> RescanParts:
        """What rescans of promoted images use (logic/rescan.py): with ScanSource=trivy also the
        builder, for the scan-only builds, and where those leave their reports."""
        by_build = scan_source == "trivy"
        return RescanParts(
            store=self.store,
            rescans=self.rescans,
            scans=self.scans,
            reports=self.reports,
            rebuild_queue=self.rebuild_queue,
            builds=self.builds if by_build and self.env.RESCAN_REPORTS_URI else None,
            reports_uri=self.env.RESCAN_REPORTS_URI,
            projects=projects,
        )

    @property
    def slack_webhook(self) -> ChatWebhook:
        return _slack_webhook(secrets.slack_webhook_url(self.env.SLACK_WEBHOOK_SECRET_ID))

    @property
    def webhook_tokens(self) -> tuple[str, ...]:
        return secrets.webhook_tokens(self.env.WEBHOOK_SECRET_ID)


@lru_cache
def adapters(env: Resources) -> Adapters:
    """The adapters for a handler's env (one set per container)."""
    return Adapters(env)


@lru_cache(maxsize=4)
def _registry(credentials: tuple) -> RegistryClient:
    return RegistryClient(credentials=dict(credentials))


@lru_cache(maxsize=4)
def _base_registry(credentials: tuple) -> BaseRegistry:
    return BaseRegistry(credentials=dict(credentials))


@lru_cache(maxsize=4)
def _writer(credentials: tuple) -> RegistryWriter:
    return RegistryWriter(credentials=dict(credentials))


@lru_cache(maxsize=4)
def _rebaser(credentials: tuple) -> Rebaser:
    return Rebaser(RegistryWriter(credentials=dict(credentials)))


@lru_cache(maxsize=2)
def _kms(key_id: str) -> Any:
    return kms_client(key_id)


@lru_cache(maxsize=2)
def _slack_webhook(url: str) -> SlackWebhook:
    return SlackWebhook(url)


def idempotency_store(table_name: Callable[[], str]) -> idempotency.LazyDynamoDBPersistenceLayer:
    """Powertools Idempotency's table for one handler's module-level decorator, built on first use.

    One per handler: a persistence layer keeps the first IdempotencyConfig it is configured with.
    """
    return idempotency.LazyDynamoDBPersistenceLayer(table_name)


def reset() -> None:
    """Forget every adapter and secret (a new container: tests switch AWS endpoints)."""
    for factory in (adapters, _registry, _base_registry, _writer, _rebaser, _kms, _slack_webhook):
        factory.cache_clear()
    idempotency.forget_all()
    secrets.clear_cache()
