"""Adapters built once per container, on first use (never at import time)."""

from __future__ import annotations

from functools import lru_cache

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from patchprop.adapters.codebuild import CodeBuild
from patchprop.adapters.dynamodb import Store
from patchprop.adapters.registry import RegistryClient
from patchprop.adapters.s3 import Reports
from patchprop.adapters.slack import SlackWebhook
from patchprop.adapters.sns import Topic
from patchprop.adapters.sqs import Queue
from patchprop.config import registry_credentials, slack_webhook_url
from patchprop.ports import Builds


@lru_cache
def store(table_name: str) -> Store:
    return Store(table_name)


@lru_cache
def queue(url: str) -> Queue:
    return Queue(url)


@lru_cache
def idempotency_store(table_name: str, user: str) -> DynamoDBPersistenceLayer:
    """Powertools Idempotency's table, one layer object per `user` (handler).

    Not shared between handlers: a persistence layer keeps the first IdempotencyConfig it is
    configured with, so a shared one would key the rebuilder's records by the planner's key.
    """
    return DynamoDBPersistenceLayer(table_name=table_name)


@lru_cache
def topic(arn: str) -> Topic:
    return Topic(arn)


@lru_cache
def reports(bucket: str | None = None) -> Reports:
    return Reports(bucket=bucket)


_local_builds: Builds | None = None


def codebuild() -> Builds:
    """CodeBuild, or the local builder `patchprop local` installed with use_builds()."""
    return _local_builds or _codebuild()


@lru_cache
def _codebuild() -> CodeBuild:
    return CodeBuild()


def use_builds(builds: Builds | None) -> None:
    """Run rebuilds on `builds` instead of CodeBuild (the local stack's builder), or undo it."""
    global _local_builds
    _local_builds = builds


def registry(credentials_secret_id: str | None) -> RegistryClient:
    # Not cached whole: credentials rotate (the secret is cached for SECRET_MAX_AGE instead).
    return _registry(tuple(sorted(registry_credentials(credentials_secret_id).items())))


@lru_cache(maxsize=4)
def _registry(credentials: tuple) -> RegistryClient:
    return RegistryClient(credentials=dict(credentials))


def slack_webhook(secret_id: str) -> SlackWebhook:
    # Not cached whole, as the URL may be rotated in its secret (cached for SECRET_MAX_AGE).
    return _slack_webhook(slack_webhook_url(secret_id))


@lru_cache(maxsize=2)
def _slack_webhook(url: str) -> SlackWebhook:
    return SlackWebhook(url)


def reset() -> None:
    """Forget every adapter (tests switch AWS endpoints between cases)."""
    for factory in (store, queue, topic, idempotency_store, reports, _codebuild, _registry, _slack_webhook):
        factory.cache_clear()
    parameters.clear_caches()
