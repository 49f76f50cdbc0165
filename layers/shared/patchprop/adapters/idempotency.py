"""Powertools Idempotency's DynamoDB table, built on first use rather than at import.

Powertools' DynamoDBPersistenceLayer makes its boto3 client in its constructor; record handlers
are decorated once at module level, so the layer they are given waits for its first use (its
`configure`) to learn its table name and build the client.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

_LAYERS: weakref.WeakSet[LazyDynamoDBPersistenceLayer] = weakref.WeakSet()


class LazyDynamoDBPersistenceLayer(DynamoDBPersistenceLayer):
    """DynamoDBPersistenceLayer whose table name (from the env) and client come on first use."""

    def __init__(self, table_name: Callable[[], str]) -> None:
        BasePersistenceLayer.__init__(self)
        self._table_name_of = table_name
        self._built = False
        _LAYERS.add(self)

    def configure(
        self, config: IdempotencyConfig, function_name: str | None = None, key_prefix: str | None = None
    ) -> None:
        if not self._built:
            DynamoDBPersistenceLayer.__init__(self, table_name=self._table_name_of())
            self._built = True
        super().configure(config, function_name, key_prefix)

    def forget(self) -> None:
        """Build again on next use (a new table or endpoint: tests, the local stack)."""
        self._built = False
        self.configured = False


def forget_all() -> None:
    for layer in list(_LAYERS):
        layer.forget()
