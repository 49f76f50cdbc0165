"""Rebuilds: started once, in progress, finished once with the verdict and the alert that told it."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

from patchprop.adapters.dynamodb import keys
from patchprop.adapters.dynamodb.table import TableAccess
from patchprop.domain.alerts import Alert
from patchprop.domain.errors import StoreError
from patchprop.domain.records import FINAL_STATUSES, Finish, Outcome, Promotion, Rebuild, RebuildStatus

_ALERT_BYTES = 300_000  # of a DynamoDB item's 400 KB, what a rebuild's stored alert may take


def _item(rebuild: Rebuild) -> dict[str, Any]:
    return {
        **keys.rebuild_key(rebuild.rebuild_id),
        **keys.rebuild_index(rebuild.image, rebuild.detected_at.isoformat(), rebuild.rebuild_id),
        "kind": "rebuild",
        **keys.dump(rebuild),
    }


def _rebuild(item: dict[str, Any]) -> Rebuild:
    body = keys.plain(item)
    body.pop("alert", None)
    return Rebuild.model_validate(body)


class RebuildsTable(TableAccess):
    """The `Rebuilds` port on DynamoDB."""

    def get_rebuild(self, rebuild_id: str) -> Rebuild | None:
        item = self._get(keys.rebuild_key(rebuild_id))
        return _rebuild(item) if item else None

    def rebuild_id_for_build(self, build_id: str) -> str | None:
        item = self._get(keys.build_key(build_id))
        return str(item["rebuild_id"]) if item else None

    def recent_rebuilds(self, image: str, limit: int | None = None) -> Iterator[Rebuild]:
        """Rebuilds of `image`, the most recently detected first; at most `limit` of them."""
        items = self._query(index=keys.GSI1, key=keys.rebuilds_of(image), newest_first=True, page_size=limit)
        for count, item in enumerate(items):
            if limit is not None and count >= limit:
                return
            yield _rebuild(item)

    def last_rebuild(self, image: str) -> Rebuild | None:
        return next(self.recent_rebuilds(image, limit=1), None)

    def get_alert(self, rebuild_id: str) -> Alert | None:
        """The alert recorded with a rebuild's final status (record_finished), if any."""
        item = self._get(keys.rebuild_key(rebuild_id))
        stored = item.get("alert") if item else None
        if stored is None:
            return None
        data = stored.value if hasattr(stored, "value") else bytes(stored)
        return Alert.model_validate_json(zlib.decompress(data))

    def record_started(self, rebuild: Rebuild) -> Rebuild:
        """Store a started rebuild and its build id, unless it is stored already (then that one)."""
        lookup = {**keys.build_key(rebuild.build_id or ""), "kind": "build", "rebuild_id": rebuild.rebuild_id}
        table = self.table.name
        written = self._transact(
            [
                {
                    "Put": {
                        "TableName": table,
                        "Item": _item(rebuild),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
                {"Put": {"TableName": table, "Item": lookup}},
            ],
            f"recording rebuild {rebuild.rebuild_id}",
        )
        if written:
            return rebuild
        existing = self.get_rebuild(rebuild.rebuild_id)
        if existing is None:
            raise StoreError(f"rebuild {rebuild.rebuild_id} vanished")
        return existing

    def record_not_started(self, rebuild: Rebuild) -> Rebuild:
        """Store a rebuild that never started, unless one is stored already (then that one)."""
        if self._put(_item(rebuild), condition="attribute_not_exists(PK)"):
            return rebuild
        return self.get_rebuild(rebuild.rebuild_id) or rebuild

    def record_progress(self, rebuild_id: str, build_id: str, log_url: str | None) -> None:
        """Mark a rebuild in progress unless it has already finished (events arrive out of order)."""
        values: dict[str, Any] = {
            ":s": RebuildStatus.IN_PROGRESS.value,
            ":b": build_id,
            ":started": RebuildStatus.STARTED.value,
        }
        update = "SET #s = :s, build_id = :b"
        if log_url:
            update += ", log_url = :l"
            values[":l"] = log_url
        self._update_if(  # finished already (events arrive out of order): nothing to do
            f"recording progress of {rebuild_id}",
            Key=keys.rebuild_key(rebuild_id),
            UpdateExpression=update,
            ConditionExpression="attribute_exists(PK) AND #s = :started",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )

    def record_finished(self, rebuild_id: str, finish: Finish, alert: Alert | None = None) -> Rebuild | None:
        """Record a final status once, with its verdict. Returns the rebuild, or None if it is not ours.

        The alert (what was told about it) is kept compressed, so the Slack function can render
        it again; left out when even compressed it would not fit a DynamoDB item.
        """
        values: dict[str, Any] = {
            ":s": finish.status.value,
            ":b": finish.build_id,
            ":at": finish.at.isoformat(),
            **{f":f{i}": s.value for i, s in enumerate(sorted(FINAL_STATUSES))},
        }
        finals = ", ".join(f":f{i}" for i in range(len(FINAL_STATUSES)))
        update = "SET #s = :s, build_id = :b, finished_at = :at"
        packed = zlib.compress(alert.model_dump_json().encode()) if alert else None
        verdict = {
            **keys.dump(finish.model_copy(update={"status": None, "build_id": None, "at": None})),
            "alert": packed if packed and len(packed) <= _ALERT_BYTES else None,
        }
        for name, value in verdict.items():
            if value is not None:
                update += f", {name} = :{name}"
                values[f":{name}"] = value
        result = self._update_if(
            f"recording outcome of {rebuild_id}",
            Key=keys.rebuild_key(rebuild_id),
            UpdateExpression=update,
            ConditionExpression=f"attribute_exists(PK) AND NOT #s IN ({finals})",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        if result is None:
            return self.get_rebuild(rebuild_id)  # finished before, or unknown
        return _rebuild(result)

    def mark_notified(self, rebuild_id: str) -> None:
        self._update(keys.rebuild_key(rebuild_id), "SET notified = :t", {":t": True})

    def mark_announced(self, rebuild_id: str, outcome: Outcome) -> None:
        """Its outcome event for `outcome` is on the bus (logic/announce.py)."""
        self._update(keys.rebuild_key(rebuild_id), "SET announced = :o", {":o": outcome.value})

    def record_promotion(self, rebuild_id: str, promotion: Promotion) -> Rebuild | None:
        """Record that a finished rebuild's tag moved (or was moved away): outcome, who, when, why."""
        values: dict[str, Any] = {}
        parts: list[str] = []
        for name, value in keys.dump(promotion).items():
            if value is not None:
                parts.append(f"{name} = :{name}")
                values[f":{name}"] = value
        result = self._update_if(
            f"recording the promotion of {rebuild_id}",
            Key=keys.rebuild_key(rebuild_id),
            UpdateExpression="SET " + ", ".join(parts),
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return _rebuild(result) if result is not None else None

    def count_promotion_attempt(self, rebuild_id: str, reason: str) -> int:
        """One more failed tag move of a rebuild (with why); returns how many there were."""
        result = self._update_if(
            f"counting a promotion attempt of {rebuild_id}",
            Key=keys.rebuild_key(rebuild_id),
            UpdateExpression="ADD promote_attempts :one SET promotion_reason = :r",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeValues={":one": 1, ":r": reason},
            ReturnValues="ALL_NEW",
        )
        return int(result.get("promote_attempts", 1)) if result else 1
