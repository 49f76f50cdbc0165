"""The check-only scans of base digests: `BASE#<base>` / `SCAN#<digest>`, claimed once (a
condition), with the patch they hold back in `scan` (JSON) and their `state` beside it. While
`checking` it is also on GSI1 (`GSI1PK = BASESCANS#checking`, `GSI1SK = <started at>#<base>@<digest>`),
so the poller's sweep finds the ones whose end never came; its end removes it from there."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from patchprop.adapters.dynamodb.table import TableAccess
from patchprop.domain.base_scan import BaseScan, ScanState
from patchprop.domain.errors import StoreError

CHECKING = "BASESCANS#checking"


def scan_key(base: str, digest: str) -> dict[str, str]:
    return {"PK": f"BASE#{base}", "SK": f"SCAN#{digest}"}


def _scan_of(item: dict[str, Any]) -> BaseScan:
    scan = BaseScan.model_validate_json(item["scan"])
    update = {"state": item.get("state", scan.state), "build_id": item.get("build_id") or scan.build_id}
    return scan.model_copy(update={**update, "reason": item.get("reason", scan.reason)})


class BaseScansTable(TableAccess):
    """The `BaseScans` port on DynamoDB."""

    def claim_base_scan(self, scan: BaseScan) -> bool:
        item = {**scan_key(scan.base, scan.digest), "kind": "base_scan", "state": scan.state}
        waiting = {"GSI1PK": CHECKING, "GSI1SK": f"{scan.started_at.isoformat()}#{scan.base}@{scan.digest}"}
        return self._put({**item, **waiting, "scan": scan.model_dump_json()}, "attribute_not_exists(PK)")

    def get_base_scan(self, base: str, digest: str) -> BaseScan | None:
        item = self._get(scan_key(base, digest))
        return _scan_of(item) if item is not None else None

    def checking_base_scans(self, started_before: datetime) -> Iterator[BaseScan]:
        key = Key("GSI1PK").eq(CHECKING) & Key("GSI1SK").lt(started_before.isoformat())
        for item in self._query(index="GSI1", key=key):
            scan = _scan_of(item)
            if scan.state == "checking":  # the index lags the table a little
                yield scan

    def set_base_scan_build(self, base: str, digest: str, build_id: str) -> None:
        self._update(scan_key(base, digest), "SET build_id = :b", {":b": build_id})

    def finish_base_scan(self, base: str, digest: str, state: ScanState, reason: str, build_id: str) -> bool:
        done = self._update_if(
            f"ending the scan of {base}@{digest}",
            Key=scan_key(base, digest),
            UpdateExpression="SET #s = :s, reason = :r, build_id = :b REMOVE GSI1PK, GSI1SK",
            ConditionExpression="#s = :checking",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":s": state, ":r": reason, ":b": build_id, ":checking": "checking"},
        )
        return done is not None

    def keep_patch(self, scan: BaseScan) -> bool:
        """The patch a still-checking scan holds, replaced by `scan.patch`; False if it ended."""
        done = self._update_if(
            f"keeping a patch with the scan of {scan.base}@{scan.digest}",
            Key=scan_key(scan.base, scan.digest),
            UpdateExpression="SET #scan = :scan",
            ConditionExpression="#s = :checking",
            ExpressionAttributeNames={"#s": "state", "#scan": "scan"},
            ExpressionAttributeValues={":scan": scan.model_dump_json(), ":checking": "checking"},
        )
        return done is not None

    def drop_base_scan(self, base: str, digest: str) -> None:
        self._delete_item(scan_key(base, digest))

    def _delete_item(self, key: dict[str, str]) -> None:
        try:
            self.table.delete_item(Key=key)
        except ClientError as exc:
            raise StoreError(f"deleting {key['PK']} {key['SK']}: {exc}") from exc
