"""DynamoDB adapter: one table, keys below. The only module that knows the key schema.

| item       | PK                 | SK             | GSI1PK           | GSI1SK               |
|------------|--------------------|----------------|------------------|----------------------|
| base       | BASE#<ref>         | #BASE          | BASES            | <ref>                |
| dependent  | IMAGE#<image>      | #IMAGE         | DEPENDENTS       | <image>              |
| edge       | IMAGE#<image>      | BASE#<ref>     | BASE#<ref>       | IMAGE#<image>        |
| patch      | BASE#<ref>         | PATCH#<digest> |                  |                      |
| rebuild    | REBUILD#<id>       | #REBUILD       | IMAGE#<image>    | REBUILD#<detected>   |
| build      | BUILD#<build id>   | #BUILD         |                  |                      |
| node       | CASCADE#<ref@dgst> | NODE#<image>   |                  |                      |
| build cap  | LIMIT              | #BUILDS        |                  |                      |

An edge carries the whole dependent, so planning a patch is one paginated GSI1 query; listing
every dependent is one query on `GSI1PK = DEPENDENTS`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from patchprop.domain.errors import NotFound, StoreError
from patchprop.domain.models import (
    FINAL_STATUSES,
    Base,
    Dependent,
    PatchRequest,
    Rebuild,
    RebuildRequest,
    RebuildStatus,
    utcnow,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

    from patchprop.domain.cascade import Node

GSI1 = "GSI1"
_ALERT_BYTES = 300_000  # of a DynamoDB item's 400 KB, what a rebuild's stored alert may take
_KEY_ATTRS = ("PK", "SK", "GSI1PK", "GSI1SK")


def base_key(ref: str) -> dict[str, str]:
    return {"PK": f"BASE#{ref}", "SK": "#BASE"}


def dependent_key(image: str) -> dict[str, str]:
    return {"PK": f"IMAGE#{image}", "SK": "#IMAGE"}


def edge_key(image: str, base: str) -> dict[str, str]:
    return {"PK": f"IMAGE#{image}", "SK": f"BASE#{base}"}


def patch_key(base: str, digest: str) -> dict[str, str]:
    return {"PK": f"BASE#{base}", "SK": f"PATCH#{digest}"}


def rebuild_key(rebuild_id: str) -> dict[str, str]:
    return {"PK": f"REBUILD#{rebuild_id}", "SK": "#REBUILD"}


LIMIT_KEY = {"PK": "LIMIT", "SK": "#BUILDS"}


def node_key(cascade: str, image: str) -> dict[str, str]:
    return {"PK": f"CASCADE#{cascade}", "SK": f"NODE#{image}"}


def build_key(build_id: str) -> dict[str, str]:
    return {"PK": f"BUILD#{build_id}", "SK": "#BUILD"}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in _KEY_ATTRS and k != "kind"}


def _dump(model: Any) -> dict[str, Any]:
    """A model as a DynamoDB item body: JSON types, no None values."""
    return {k: v for k, v in model.model_dump(mode="json").items() if v is not None}


def _condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


class Store:
    """Bases, dependents, patches and rebuilds in one DynamoDB table."""

    def __init__(self, table_name: str, table: Table | None = None) -> None:
        self.table: Table = table or boto3.resource("dynamodb").Table(table_name)

    # ---- bases -----------------------------------------------------------------------

    def get_base(self, ref: str) -> Base | None:
        item = self._get(base_key(ref))
        return Base.model_validate(_plain(item)) if item else None

    def list_bases(self) -> Iterator[Base]:
        for item in self._query(index=GSI1, key=Key("GSI1PK").eq("BASES")):
            yield Base.model_validate(_plain(item))

    def track_base(self, ref: str, digest: str | None = None) -> None:
        """Start tracking a base; keeps what is known if it is tracked already."""
        updates = ["kind = :k", "#ref = :ref", "GSI1PK = :all", "GSI1SK = :ref"]
        values: dict[str, Any] = {":k": "base", ":ref": ref, ":all": "BASES"}
        if digest:
            updates.append("digest = if_not_exists(digest, :d)")
            values[":d"] = digest
        self._update(base_key(ref), "SET " + ", ".join(updates), values, names={"#ref": "ref"})

    def record_digest(self, ref: str, old: str | None, new: str, at: datetime | None = None) -> bool:
        """Move a base from `old` to `new`; False if someone else moved it first."""
        at = at or utcnow()
        condition = "attribute_exists(PK) AND " + ("digest = :old" if old else "attribute_not_exists(digest)")
        values: dict[str, Any] = {":new": new, ":at": at.isoformat()}
        update = "SET digest = :new, changed_at = :at"
        if old:
            values[":old"] = old
            update += ", previous_digest = :old"
        moved = self._update_if(
            f"recording digest of {ref}",
            Key=base_key(ref),
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )
        return moved is not None

    # ---- dependents ------------------------------------------------------------------

    def put_dependent(self, dependent: Dependent) -> None:
        """Write a dependent and one edge per base, atomically; bases become tracked."""
        body = _dump(dependent)
        old = self.get_dependent(dependent.image)
        stale = set(old.bases) - set(dependent.bases) if old else set()
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table.name,
                    "Item": {
                        **dependent_key(dependent.image),
                        "GSI1PK": "DEPENDENTS",
                        "GSI1SK": dependent.image,
                        "kind": "dependent",
                        **body,
                    },
                }
            }
        ]
        for base in dependent.bases:
            item = {
                **edge_key(dependent.image, base),
                "GSI1PK": f"BASE#{base}",
                "GSI1SK": f"IMAGE#{dependent.image}",
                "kind": "edge",
                **body,
            }
            actions.append({"Put": {"TableName": self.table.name, "Item": item}})
        for base in stale:
            actions.append({"Delete": {"TableName": self.table.name, "Key": edge_key(dependent.image, base)}})
        self._transact(actions, f"registering {dependent.image}")
        for base in dependent.bases:
            self.track_base(base)

    def get_dependent(self, image: str) -> Dependent | None:
        item = self._get(dependent_key(image))
        return Dependent.model_validate(_plain(item)) if item else None

    def list_dependents(self) -> Iterator[Dependent]:
        """Every registered dependent, by image (one paginated GSI1 query)."""
        for item in self._query(index=GSI1, key=Key("GSI1PK").eq("DEPENDENTS")):
            yield Dependent.model_validate(_plain(item))

    def dependents_of(self, base: str) -> Iterator[Dependent]:
        """Every dependent built directly on `base` (one paginated GSI1 query)."""
        key = Key("GSI1PK").eq(f"BASE#{base}") & Key("GSI1SK").begins_with("IMAGE#")
        for item in self._query(index=GSI1, key=key):
            yield Dependent.model_validate(_plain(item))

    def remove_dependent(self, image: str) -> None:
        dependent = self.get_dependent(image)
        if dependent is None:
            raise NotFound(f"no dependent image {image}")
        actions = [{"Delete": {"TableName": self.table.name, "Key": dependent_key(image)}}]
        actions += [
            {"Delete": {"TableName": self.table.name, "Key": edge_key(image, b)}} for b in dependent.bases
        ]
        self._transact(actions, f"removing {image}")

    # ---- patches ---------------------------------------------------------------------

    def record_patch(self, patch: PatchRequest, rebuilds: int) -> None:
        item = {
            **patch_key(patch.base, patch.digest),
            "kind": "patch",
            **_dump(patch),
            "rebuilds": rebuilds,
        }
        self._put(item)

    def count_finished(
        self, base: str, digest: str, rebuild_id: str, outcome: str, at: datetime
    ) -> tuple[bool, dict[str, Any] | None]:
        """Count a finished rebuild on its patch, once per rebuild id, atomically.

        Returns whether this call counted it, and the patch as it is now (None: no such patch).
        `finished` and one counter per outcome go up by one; `counted` is the set of rebuild ids
        counted, so a replayed event counts nothing.
        """
        answer = self._update_if(
            f"counting {rebuild_id} on patch {base}@{digest}",
            Key=patch_key(base, digest),
            UpdateExpression="ADD finished :one, #o :one, counted :id SET last_finished_at = :at",
            ConditionExpression="attribute_exists(PK) AND NOT contains(counted, :rid)",
            ExpressionAttributeNames={"#o": outcome},
            ExpressionAttributeValues={
                ":one": 1,
                ":id": {rebuild_id},
                ":rid": rebuild_id,
                ":at": at.isoformat(),
            },
            ReturnValues="ALL_NEW",
        )
        if answer is None:
            return False, self._get(patch_key(base, digest))
        return True, answer

    def claim_summary(self, base: str, digest: str) -> bool:
        """Mark the patch summarized; False if it was already (so one summary is sent)."""
        claimed = self._update_if(
            f"summarizing patch {base}@{digest}",
            Key=patch_key(base, digest),
            UpdateExpression="SET summarized = :t",
            ConditionExpression="attribute_exists(PK) AND attribute_not_exists(summarized)",
            ExpressionAttributeValues={":t": True},
        )
        return claimed is not None

    def release_summary(self, base: str, digest: str) -> None:
        """Undo claim_summary (the summary could not be published; a retry sends it)."""
        try:
            self.table.update_item(Key=patch_key(base, digest), UpdateExpression="REMOVE summarized")
        except ClientError as exc:
            raise StoreError(f"releasing the summary of {base}@{digest}: {exc}") from exc

    # ---- rebuilds --------------------------------------------------------------------

    def get_rebuild(self, rebuild_id: str) -> Rebuild | None:
        item = self._get(rebuild_key(rebuild_id))
        return Rebuild.model_validate(_plain(item)) if item else None

    def rebuild_id_for_build(self, build_id: str) -> str | None:
        item = self._get(build_key(build_id))
        return str(item["rebuild_id"]) if item else None

    def rebuilds_of(self, image: str) -> Iterator[Rebuild]:
        key = Key("GSI1PK").eq(f"IMAGE#{image}") & Key("GSI1SK").begins_with("REBUILD#")
        for item in self._query(index=GSI1, key=key):
            yield Rebuild.model_validate(_plain(item))

    def recent_rebuilds(self, image: str, limit: int | None = None) -> Iterator[Rebuild]:
        """Rebuilds of `image`, the most recently detected first; at most `limit` of them."""
        key = Key("GSI1PK").eq(f"IMAGE#{image}") & Key("GSI1SK").begins_with("REBUILD#")
        items = self._query(index=GSI1, key=key, newest_first=True, page_size=limit)
        for count, item in enumerate(items):
            if limit is not None and count >= limit:
                return
            yield Rebuild.model_validate(_plain(item))

    def last_rebuild(self, image: str) -> Rebuild | None:
        return next(self.recent_rebuilds(image, limit=1), None)

    def last_promoted(self, image: str, other_than: str, within: int = 100) -> Rebuild | None:
        """The most recent promoted rebuild of `image` with a scan report, besides `other_than`."""
        for rebuild in self.recent_rebuilds(image, limit=within):
            if rebuild.rebuild_id != other_than and rebuild.outcome == "promoted" and rebuild.report_uri:
                return rebuild
        return None

    def alert_json(self, rebuild_id: str) -> str | None:
        """The alert recorded with a rebuild's final status (record_finished), if any."""
        item = self._get(rebuild_key(rebuild_id))
        stored = item.get("alert") if item else None
        if stored is None:
            return None
        data = stored.value if hasattr(stored, "value") else bytes(stored)
        return zlib.decompress(data).decode()

    def record_started(self, request: RebuildRequest, build_id: str) -> Rebuild:
        """Store a started rebuild and its build id, unless it is stored already."""
        rebuild = Rebuild(
            **request.model_dump(exclude={"source_location", "source_version", "build_args"}),
            status=RebuildStatus.STARTED,
            build_id=build_id,
            started_at=utcnow(),
        )
        item = {
            **rebuild_key(rebuild.rebuild_id),
            "GSI1PK": f"IMAGE#{rebuild.image}",
            "GSI1SK": f"REBUILD#{rebuild.detected_at.isoformat()}#{rebuild.rebuild_id}",
            "kind": "rebuild",
            **_dump(rebuild),
        }
        lookup = {**build_key(build_id), "kind": "build", "rebuild_id": rebuild.rebuild_id}
        try:
            self.table.meta.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table.name,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                    {"Put": {"TableName": self.table.name, "Item": lookup}},
                ]
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise StoreError(f"recording rebuild {rebuild.rebuild_id}: {exc}") from exc
            existing = self.get_rebuild(rebuild.rebuild_id)
            if existing is None:
                raise StoreError(f"rebuild {rebuild.rebuild_id} vanished") from exc
            return existing
        return rebuild

    def record_not_started(self, request: RebuildRequest, reason: str) -> Rebuild:
        rebuild = Rebuild(
            **request.model_dump(exclude={"source_location", "source_version", "build_args"}),
            status=RebuildStatus.NOT_STARTED,
            reason=reason,
            outcome="failed",
            finished_at=utcnow(),
        )
        item = {
            **rebuild_key(rebuild.rebuild_id),
            "GSI1PK": f"IMAGE#{rebuild.image}",
            "GSI1SK": f"REBUILD#{rebuild.detected_at.isoformat()}#{rebuild.rebuild_id}",
            "kind": "rebuild",
            **_dump(rebuild),
        }
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(PK)")
        except ClientError as exc:
            if not _condition_failed(exc):
                raise StoreError(f"recording rebuild {rebuild.rebuild_id}: {exc}") from exc
            existing = self.get_rebuild(rebuild.rebuild_id)
            return existing or rebuild
        return rebuild

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
            Key=rebuild_key(rebuild_id),
            UpdateExpression=update,
            ConditionExpression="attribute_exists(PK) AND #s = :started",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )

    def record_finished(
        self,
        rebuild_id: str,
        status: RebuildStatus,
        build_id: str,
        log_url: str | None,
        at: datetime | None = None,
        *,
        outcome: str | None = None,
        reasons: list[str] | None = None,
        report_uri: str | None = None,
        image_digest: str | None = None,
        alert_json: str | None = None,
    ) -> Rebuild | None:
        """Record a final status once, with its verdict. Returns the rebuild, or None if it is not ours.

        `alert_json` (what was told about it) is kept compressed, so the Slack function can render
        it again; left out when even compressed it would not fit a DynamoDB item.
        """
        values: dict[str, Any] = {
            ":s": status.value,
            ":b": build_id,
            ":at": (at or utcnow()).isoformat(),
            **{f":f{i}": s.value for i, s in enumerate(sorted(FINAL_STATUSES))},
        }
        finals = ", ".join(f":f{i}" for i in range(len(FINAL_STATUSES)))
        update = "SET #s = :s, build_id = :b, finished_at = :at"
        packed = zlib.compress(alert_json.encode()) if alert_json else None
        verdict = {
            "log_url": log_url,
            "outcome": outcome,
            "reasons": reasons,
            "report_uri": report_uri,
            "image_digest": image_digest,
            "alert": packed if packed and len(packed) <= _ALERT_BYTES else None,
        }
        for name, value in verdict.items():
            if value is not None:
                update += f", {name} = :{name}"
                values[f":{name}"] = value
        result = self._update_if(
            f"recording outcome of {rebuild_id}",
            Key=rebuild_key(rebuild_id),
            UpdateExpression=update,
            ConditionExpression=f"attribute_exists(PK) AND NOT #s IN ({finals})",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        if result is None:
            return self.get_rebuild(rebuild_id)  # finished before, or unknown
        return Rebuild.model_validate(_plain(result))

    def mark_notified(self, rebuild_id: str) -> None:
        self._update(rebuild_key(rebuild_id), "SET notified = :t", {":t": True})

    # ---- cascades ------------------------------------------------------------------------
    # Node items: PK CASCADE#<base@digest>, SK NODE#<image>; `waiting` is the string set of
    # patched parents not yet rebuilt (absent when none), `status` WAITING, READY (enqueued),
    # DONE, FAILED, BLOCKED (a parent failed) or SUPERSEDED (a newer digest of the base).

    def get_patch(self, base: str, digest: str) -> dict[str, Any] | None:
        return self._get({"PK": f"BASE#{base}", "SK": f"PATCH#{digest}"})

    def patches_of(self, base: str) -> Iterator[dict[str, Any]]:
        key = Key("PK").eq(f"BASE#{base}") & Key("SK").begins_with("PATCH#")
        yield from self._query(index=None, key=key)

    def put_cascade(self, cascade: str, nodes: Iterable[Node]) -> int:
        """Write every node of a cascade in batches of 25; returns how many."""
        count = 0
        try:
            with self.table.batch_writer() as batch:
                for node in nodes:
                    item: dict[str, Any] = {
                        **node_key(cascade, node.image),
                        "kind": "node",
                        "cascade": cascade,
                        "image": node.image,
                        "dependent": _dump(node.dependent),
                        "children": node.children,
                        "priority": Decimal(str(round(node.priority, 3))),
                        "status": "WAITING" if node.parents else "READY",
                    }
                    if node.parents:
                        item["waiting"] = set(node.parents)
                    batch.put_item(Item=item)
                    count += 1
        except ClientError as exc:
            raise StoreError(f"writing cascade {cascade}: {exc}") from exc
        return count

    def cascade_nodes(self, cascade: str) -> Iterator[dict[str, Any]]:
        key = Key("PK").eq(f"CASCADE#{cascade}") & Key("SK").begins_with("NODE#")
        yield from self._query(index=None, key=key)

    def get_node(self, cascade: str, image: str) -> dict[str, Any] | None:
        return self._get(node_key(cascade, image))

    def parent_rebuilt(self, cascade: str, child: str, parent: str) -> bool:
        """Strike `parent` off `child`'s wait list; True if this made the child ready (once)."""
        answer = self._update_if(
            f"releasing {child}",
            Key=node_key(cascade, child),
            UpdateExpression="DELETE waiting :p",
            ConditionExpression="#s = :waiting",
            ReturnValues="ALL_NEW",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":p": {parent}, ":waiting": "WAITING"},
        )
        if answer is None or answer.get("waiting"):
            return False
        return self.set_node_status(cascade, child, "READY", expect=("WAITING",))

    def set_node_status(self, cascade: str, image: str, status: str, expect: Iterable[str]) -> bool:
        """Move a node to `status` if it is in one of `expect`; False if it was not."""
        expected = list(expect)
        values: dict[str, Any] = {":s": status, **{f":e{i}": e for i, e in enumerate(expected)}}
        moved = self._update_if(
            f"updating node {image}",
            Key=node_key(cascade, image),
            UpdateExpression="SET #s = :s",
            ConditionExpression=f"#s IN ({', '.join(f':e{i}' for i in range(len(expected)))})",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )
        return moved is not None

    # ---- the concurrency cap ----------------------------------------------------------
    # One counter item: builds patchprop started that have not finished. A slot is taken just
    # before StartBuild and given back when the rebuild's cascade node leaves RUNNING.

    def claim_build_slot(self, cap: int) -> bool:
        claimed = self._update_if(
            "claiming a build slot",
            Key=LIMIT_KEY,
            UpdateExpression="ADD in_flight :one",
            ConditionExpression="attribute_not_exists(in_flight) OR in_flight < :cap",
            ExpressionAttributeValues={":one": 1, ":cap": cap},
        )
        return claimed is not None

    def release_build_slot(self) -> None:
        self._update_if(  # already zero: nothing to give back
            "releasing a build slot",
            Key=LIMIT_KEY,
            UpdateExpression="ADD in_flight :minus",
            ConditionExpression="in_flight > :zero",
            ExpressionAttributeValues={":minus": -1, ":zero": 0},
        )

    def builds_in_flight(self) -> int:
        item = self._get(LIMIT_KEY)
        return int(item.get("in_flight", 0)) if item else 0

    # ---- plumbing --------------------------------------------------------------------

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        try:
            return self.table.get_item(Key=key, ConsistentRead=True).get("Item")
        except ClientError as exc:
            raise StoreError(f"reading {key['PK']}: {exc}") from exc

    def _put(self, item: dict[str, Any]) -> None:
        try:
            self.table.put_item(Item=item)
        except ClientError as exc:
            raise StoreError(f"writing {item['PK']}: {exc}") from exc

    def _update(
        self, key: dict[str, str], update: str, values: dict[str, Any], names: dict[str, str] | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"Key": key, "UpdateExpression": update, "ExpressionAttributeValues": values}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self.table.update_item(**kwargs)
        except ClientError as exc:
            raise StoreError(f"updating {key['PK']}: {exc}") from exc

    def _update_if(self, what: str, **kwargs: Any) -> dict[str, Any] | None:
        """A conditional UpdateItem: the attributes ReturnValues asked for ({} if none), or None
        when the condition did not hold."""
        try:
            return dict(self.table.update_item(**kwargs).get("Attributes", {}))
        except ClientError as exc:
            if _condition_failed(exc):
                return None
            raise StoreError(f"{what}: {exc}") from exc

    def _transact(self, actions: list[dict[str, Any]], what: str) -> None:
        try:
            self.table.meta.client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
        except ClientError as exc:
            raise StoreError(f"{what}: {exc}") from exc

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
