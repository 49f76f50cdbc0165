"""The concurrency cap: one counter of the builds patchprop started that have not finished.

A slot is taken just before StartBuild and given back when the rebuild's cascade node leaves
RUNNING.
"""

from __future__ import annotations

from patchprop.adapters.dynamodb import keys
from patchprop.adapters.dynamodb.table import TableAccess


class BuildSlotsTable(TableAccess):
    """The `BuildSlots` port on DynamoDB."""

    def claim_build_slot(self, cap: int) -> bool:
        claimed = self._update_if(
            "claiming a build slot",
            Key=keys.LIMIT_KEY,
            UpdateExpression="ADD in_flight :one",
            ConditionExpression="attribute_not_exists(in_flight) OR in_flight < :cap",
            ExpressionAttributeValues={":one": 1, ":cap": cap},
        )
        return claimed is not None

    def release_build_slot(self) -> None:
        self._update_if(  # already zero: nothing to give back
            "releasing a build slot",
            Key=keys.LIMIT_KEY,
            UpdateExpression="ADD in_flight :minus",
            ConditionExpression="in_flight > :zero",
            ExpressionAttributeValues={":minus": -1, ":zero": 0},
        )

    def build_slots_in_use(self) -> int:
        item = self._get(keys.LIMIT_KEY)
        return int(item.get("in_flight", 0)) if item else 0

    def set_build_slots_in_use(self, value: int, expect: int) -> bool:
        condition = "in_flight = :expect"
        if not expect:
            condition = f"attribute_not_exists(in_flight) OR {condition}"
        changed = self._update_if(
            "reconciling the build slots",
            Key=keys.LIMIT_KEY,
            UpdateExpression="SET in_flight = :value",
            ConditionExpression=condition,
            ExpressionAttributeValues={":value": value, ":expect": expect},
        )
        return changed is not None
