"""The base checks (one per base and digest) and the holds (one per base) in the table.

A check is `BASE#<base>` / `CHECK#<digest>`, written once (a condition), its JSON in `check`.
A hold is `HOLDS` / `BASE#<base>`: the held patch and when it is due. Holds are few (one per
base at most), so the poller's tick reads them all with one query.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from patchprop.adapters.dynamodb.table import TableAccess, condition_failed
from patchprop.domain.base_check import BaseJudgement
from patchprop.domain.errors import StoreError
from patchprop.domain.records import Hold

HOLDS = "HOLDS"


def check_key(base: str, digest: str) -> dict[str, str]:
    return {"PK": f"BASE#{base}", "SK": f"CHECK#{digest}"}


def told_key(base: str, digest: str, urgency: str) -> dict[str, str]:
    return {"PK": f"BASE#{base}", "SK": f"TOLD#{digest}#{urgency}"}


def hold_key(base: str) -> dict[str, str]:
    return {"PK": HOLDS, "SK": f"BASE#{base}"}


class BaseChecksTable(TableAccess):
    """The `BaseChecks` port on DynamoDB."""

    def get_base_check(self, base: str, digest: str) -> BaseJudgement | None:
        item = self._get(check_key(base, digest))
        return BaseJudgement.model_validate_json(item["check"]) if item else None

    def put_base_check(self, judgement: BaseJudgement, replace: bool = False) -> BaseJudgement:
        item = {**check_key(judgement.base, judgement.digest), "kind": "base_check"}
        item["check"] = judgement.model_dump_json()
        if self._put(item, None if replace else "attribute_not_exists(PK)"):
            return judgement
        return self.get_base_check(judgement.base, judgement.digest) or judgement

    def claim_base_told(self, base: str, digest: str, urgency: str) -> bool:
        item = {**told_key(base, digest, urgency), "kind": "base_told"}
        return self._put(item, "attribute_not_exists(PK)")

    def release_base_told(self, base: str, digest: str, urgency: str) -> None:
        self._delete(told_key(base, digest, urgency))

    def get_hold(self, base: str) -> Hold | None:
        item = self._get(hold_key(base))
        return Hold.model_validate_json(item["hold"]) if item else None

    def put_hold(self, hold: Hold) -> None:
        item = {**hold_key(hold.patch.base), "kind": "hold", "digest": hold.patch.digest}
        self._put({**item, "release_at": hold.release_at.isoformat(), "hold": hold.model_dump_json()})

    def due_holds(self, now: datetime) -> Iterator[Hold]:
        for item in self._query(index=None, key=Key("PK").eq(HOLDS)):
            hold = Hold.model_validate_json(item["hold"])
            if hold.release_at <= now:
                yield hold

    def drop_hold(self, base: str, digest: str) -> bool:
        return self._delete(hold_key(base), "digest = :d", {":d": digest})

    def _delete(
        self, key: dict[str, str], condition: str | None = None, values: dict[str, Any] | None = None
    ) -> bool:
        kwargs: dict[str, Any] = {"Key": key}
        if condition:
            kwargs |= {"ConditionExpression": condition, "ExpressionAttributeValues": values or {}}
        try:
            self.table.delete_item(**kwargs)
        except ClientError as exc:
            if condition and condition_failed(exc):
                return False
            raise StoreError(f"deleting {key['PK']} {key['SK']}: {exc}") from exc
        return True
