"""One DynamoDB table: reads, writes and conditional updates, ClientError turned into StoreError."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from patchprop.domain.errors import LimitExceeded, StoreError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


def condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


def store_error(what: str, exc: ClientError) -> StoreError | LimitExceeded:
    """A failed call as the error it is: DynamoDB's ValidationException (an item over 400 KB, a
    transaction over 100 actions or 4 MB) is refused for good, anything else may pass on retry."""
    if exc.response.get("Error", {}).get("Code") == "ValidationException":
        return LimitExceeded(f"{what}: too large for the table: {exc}")
    return StoreError(f"{what}: {exc}")


class TableAccess:
    """The table the store's parts share, and the calls they make on it."""

    def __init__(self, table_name: str, table: Table | None = None) -> None:
        self.table: Table = table or boto3.resource("dynamodb").Table(table_name)

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        try:
            return self.table.get_item(Key=key, ConsistentRead=True).get("Item")
        except ClientError as exc:
            raise StoreError(f"reading {key['PK']}: {exc}") from exc

    def _put(self, item: dict[str, Any], condition: str | None = None) -> bool:
        """Write an item; False when `condition` did not hold."""
        try:
            if condition:
                self.table.put_item(Item=item, ConditionExpression=condition)
            else:
                self.table.put_item(Item=item)
        except ClientError as exc:
            if condition and condition_failed(exc):
                return False
            raise store_error(f"writing {item['PK']}", exc) from exc
        return True

    def _update(
        self, key: dict[str, str], update: str, values: dict[str, Any], names: dict[str, str] | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"Key": key, "UpdateExpression": update, "ExpressionAttributeValues": values}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self.table.update_item(**kwargs)
        except ClientError as exc:
            raise store_error(f"updating {key['PK']}", exc) from exc

    def _update_if(self, what: str, **kwargs: Any) -> dict[str, Any] | None:
        """A conditional UpdateItem: the attributes ReturnValues asked for ({} if none), or None
        when the condition did not hold."""
        try:
            return dict(self.table.update_item(**kwargs).get("Attributes", {}))
        except ClientError as exc:
            if condition_failed(exc):
                return None
            raise StoreError(f"{what}: {exc}") from exc

    def _transact(self, actions: list[dict[str, Any]], what: str) -> bool:
        """Write all or nothing; False when a condition did not hold."""
        try:
            self.table.meta.client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
        except ClientError as exc:
            if condition_failed(exc) and any(
                "ConditionExpression" in next(iter(a.values())) for a in actions
            ):
                return False
            raise store_error(what, exc) from exc
        return True

    def _query(
        self, index: str | None, key: Any, newest_first: bool = False, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"KeyConditionExpression": key}
        if index:
            kwargs["IndexName"] = index
        if newest_first:
            kwargs["ScanIndexForward"] = False
        if page_size:
            kwargs["Limit"] = page_size
        while True:
            try:
                page = self.table.query(**kwargs)
            except ClientError as exc:
                raise StoreError(f"querying {index or 'table'}: {exc}") from exc
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
