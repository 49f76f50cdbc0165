"""The store on DynamoDB: one table, split by aggregate (keys in `keys`)."""

from __future__ import annotations

from patchprop.adapters.dynamodb.base_checks import BaseChecksTable
from patchprop.adapters.dynamodb.catalog import CatalogTable
from patchprop.adapters.dynamodb.patches import PatchesTable
from patchprop.adapters.dynamodb.rebuilds import RebuildsTable
from patchprop.adapters.dynamodb.slots import BuildSlotsTable


class Store(CatalogTable, PatchesTable, RebuildsTable, BuildSlotsTable, BaseChecksTable):
    """Bases, dependents, patches, cascades, rebuilds and the cap in one DynamoDB table."""


__all__ = ["Store"]
