"""Adapters built once per container, on first use (never at import time)."""

from __future__ import annotations

from functools import lru_cache

from aws_lambda_powertools.utilities import parameters

from patchprop.builds import CodeBuild
from patchprop.config import registry_credentials
from patchprop.notify import Topic
from patchprop.queues import Queue
from patchprop.registry import RegistryClient
from patchprop.store import Store


@lru_cache
def store(table_name: str) -> Store:
    return Store(table_name)


@lru_cache
def queue(url: str) -> Queue:
    return Queue(url)


@lru_cache
def topic(arn: str) -> Topic:
    return Topic(arn)


@lru_cache
def codebuild() -> CodeBuild:
    return CodeBuild()


def registry(credentials_secret_id: str | None) -> RegistryClient:
    # Not cached whole: credentials rotate (the secret is cached for SECRET_MAX_AGE instead).
    return _registry(tuple(sorted(registry_credentials(credentials_secret_id).items())))


@lru_cache(maxsize=4)
def _registry(credentials: tuple) -> RegistryClient:
    return RegistryClient(credentials=dict(credentials))


def reset() -> None:
    """Forget every adapter (tests switch AWS endpoints between cases)."""
    for factory in (store, queue, topic, codebuild, _registry):
        factory.cache_clear()
    parameters.clear_caches()
