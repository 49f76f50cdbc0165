"""The store on DynamoDB: one table, split by aggregate (keys in `keys`)."""

from __future__ import annotations

from patchprop.adapters.dynamodb.base_checks import BaseChecksTable
from patchprop.adapters.dynamodb.base_scans import BaseScansTable
from patchprop.adapters.dynamodb.catalog import CatalogTable
from patchprop.adapters.dynamodb.patches import PatchesTable
from patchprop.adapters.dynamodb.rebuilds import RebuildsTable
from patchprop.adapters.dynamodb.rescans import RescansTable
from patchprop.adapters.dynamodb.slots import BuildSlotsTable


class Store(
    CatalogTable, PatchesTable, RebuildsTable, BuildSlotsTable, BaseChecksTable, RescansTable, BaseScansTable
):
    """Bases, dependents, patches, cascades, rebuilds, the cap, rescans and base scans in one table."""


__all__ = ["Store"]
