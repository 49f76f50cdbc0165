"""Rescans of promoted images: one state item per image, one budget counter per UTC day.

| item          | PK                 | SK         |
|---------------|--------------------|------------|
| rescan state  | RESCAN#<image>     | #RESCAN    |
| rescan budget | RESCANS#<day>      | #BUDGET    |
"""

from __future__ import annotations

from typing import Any

from patchprop.adapters.dynamodb import keys
from patchprop.adapters.dynamodb.table import TableAccess
from patchprop.domain.rescan import RescanState


def rescan_key(image: str) -> dict[str, str]:
    return {"PK": f"RESCAN#{image}", "SK": "#RESCAN"}


def budget_key(day: str) -> dict[str, str]:
    return {"PK": f"RESCANS#{day}", "SK": "#BUDGET"}


class RescansTable(TableAccess):
    """The `Rescans` port on DynamoDB."""

    def get_rescan(self, image: str) -> RescanState | None:
        item = self._get(rescan_key(image))
        return RescanState.model_validate(keys.plain(item)) if item else None

    def claim_rescan(self, image: str, day: str, budget: int) -> bool:
        """The day's counter below `budget` and the image not yet claimed that day, both or neither:
        a tick delivered twice rescans no image twice, and a restart loses no count."""
        table = self.table.name
        actions: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": table,
                    "Key": budget_key(day),
                    "UpdateExpression": "ADD used :one",
                    "ConditionExpression": "attribute_not_exists(used) OR used < :budget",
                    "ExpressionAttributeValues": {":one": 1, ":budget": budget},
                }
            },
            {
                "Update": {
                    "TableName": table,
                    "Key": rescan_key(image),
                    "UpdateExpression": "SET #day = :day, image = :image, kind = :kind",
                    "ConditionExpression": "attribute_not_exists(#day) OR #day <> :day",
                    "ExpressionAttributeNames": {"#day": "day"},
                    "ExpressionAttributeValues": {":day": day, ":image": image, ":kind": "rescan"},
                }
            },
        ]
        return self._transact(actions, f"claiming a rescan of {image}")

    def rescans_spent(self, day: str) -> int:
        item = self._get(budget_key(day))
        return int(item.get("used", 0)) if item else 0

    def put_rescan(self, state: RescanState) -> None:
        self._put({**rescan_key(state.image), "kind": "rescan", **keys.dump(state)})
