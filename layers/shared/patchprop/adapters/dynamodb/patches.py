"""Patches with their counters, and the nodes of each patch's cascade."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from patchprop.adapters.dynamodb import keys
from patchprop.adapters.dynamodb.table import TableAccess
from patchprop.domain.base_check import BaseJudgement
from patchprop.domain.cascade import Node
from patchprop.domain.errors import StoreError
from patchprop.domain.models import CascadeId, PatchRequest
from patchprop.domain.records import CascadeNode, NodeStatus, Patch


def _patch(item: dict[str, Any]) -> Patch:
    body = keys.plain(item)
    body.pop("counted", None)
    return Patch.model_validate(body)


def _node(item: dict[str, Any]) -> CascadeNode:
    return CascadeNode.model_validate(keys.plain(item))


class PatchesTable(TableAccess):
    """The `Patches` port on DynamoDB. A node's `waiting` is the string set of patched parents
    not yet rebuilt (absent when none)."""

    def record_patch(
        self, patch: PatchRequest, rebuilds: int, base_check: BaseJudgement | None = None
    ) -> None:
        check = {"base_check": base_check.model_dump_json()} if base_check else {}
        self._put(
            {
                **keys.patch_key(patch.base, patch.digest),
                "kind": "patch",
                **keys.dump(patch),
                "rebuilds": rebuilds,
                **check,
            }
        )

    def get_patch(self, base: str, digest: str) -> Patch | None:
        item = self._get(keys.patch_key(base, digest))
        return _patch(item) if item else None

    def patches_of(self, base: str) -> Iterator[Patch]:
        for item in self._query(index=None, key=keys.patches_of(base)):
            yield _patch(item)

    def count_finished(
        self, patch: CascadeId, counted_id: str, outcome: str, at: datetime
    ) -> tuple[bool, Patch | None]:
        """Count a finished piece of work on its patch, once per `counted_id`, atomically.

        Returns whether this call counted it, and the patch as it is now (None: no such patch).
        `finished` and one counter per outcome go up by one; `counted` is the set of ids counted,
        so a replayed event counts nothing.
        """
        key = keys.patch_key(patch.base, patch.digest)
        answer = self._update_if(
            f"counting {counted_id} on patch {patch}",
            Key=key,
            UpdateExpression="ADD finished :one, #o :one, counted :id SET last_finished_at = :at",
            ConditionExpression="attribute_exists(PK) AND NOT contains(counted, :rid)",
            ExpressionAttributeNames={"#o": outcome},
            ExpressionAttributeValues={
                ":one": 1,
                ":id": {counted_id},
                ":rid": counted_id,
                ":at": at.isoformat(),
            },
            ReturnValues="ALL_NEW",
        )
        if answer is None:
            item = self._get(key)
            return False, _patch(item) if item else None
        return True, _patch(answer)

    def uncount_finished(self, patch: CascadeId, counted_id: str, outcome: str) -> bool:
        """Take back what count_finished counted under `counted_id` (e.g. an image counted skipped
        whose cascade resumed), once, and let the patch be summed up again; False if not counted."""
        answer = self._update_if(
            f"uncounting {counted_id} on patch {patch}",
            Key=keys.patch_key(patch.base, patch.digest),
            UpdateExpression="ADD finished :minus, #o :minus DELETE counted :id REMOVE summarized, announced",
            ConditionExpression="attribute_exists(PK) AND contains(counted, :rid)",
            ExpressionAttributeNames={"#o": outcome},
            ExpressionAttributeValues={":minus": -1, ":id": {counted_id}, ":rid": counted_id},
            ReturnValues="ALL_NEW",
        )
        return answer is not None

    def claim_summary(self, patch: CascadeId) -> bool:
        """Mark the patch summarized; False if it was already (so one summary is sent)."""
        claimed = self._update_if(
            f"summarizing patch {patch}",
            Key=keys.patch_key(patch.base, patch.digest),
            UpdateExpression="SET summarized = :t",
            ConditionExpression="attribute_exists(PK) AND attribute_not_exists(summarized)",
            ExpressionAttributeValues={":t": True},
        )
        return claimed is not None

    def release_summary(self, patch: CascadeId) -> None:
        """Undo claim_summary (the summary could not be published; a retry sends it)."""
        try:
            self.table.update_item(
                Key=keys.patch_key(patch.base, patch.digest), UpdateExpression="REMOVE summarized"
            )
        except ClientError as exc:
            raise StoreError(f"releasing the summary of {patch}: {exc}") from exc

    def mark_patch_announced(self, patch: CascadeId) -> None:
        """Its "Patch Completed" event is on the bus (logic/announce.py)."""
        self._update(keys.patch_key(patch.base, patch.digest), "SET announced = :t", {":t": True})

    def claim_rollback(self, image: str, digest: str, rolled_back: str) -> bool:
        item = {**keys.rollback_key(image, digest, rolled_back), "kind": "rollback"}
        return self._put(item, "attribute_not_exists(PK)")

    def release_rollback(self, image: str, digest: str, rolled_back: str) -> None:
        try:
            self.table.delete_item(Key=keys.rollback_key(image, digest, rolled_back))
        except ClientError as exc:
            raise StoreError(f"releasing the rollback of {image} to {digest}: {exc}") from exc

    def put_cascade(self, cascade: CascadeId, nodes: Iterable[Node]) -> int:
        """Write every node of a cascade in batches of 25; returns how many."""
        count = 0
        try:
            with self.table.batch_writer() as batch:
                for node in nodes:
                    item: dict[str, Any] = {
                        **keys.node_key(cascade, node.image),
                        "kind": "node",
                        "cascade": str(cascade),
                        "image": node.image,
                        "dependent": keys.dump(node.dependent),
                        "children": node.children,
                        "priority": Decimal(str(round(node.priority, 3))),
                        "status": (NodeStatus.WAITING if node.parents else NodeStatus.READY).value,
                    }
                    if node.parents:
                        item["waiting"] = set(node.parents)
                    batch.put_item(Item=item)
                    count += 1
        except ClientError as exc:
            raise StoreError(f"writing cascade {cascade}: {exc}") from exc
        return count

    def cascade_nodes(self, cascade: CascadeId) -> Iterator[CascadeNode]:
        for item in self._query(index=None, key=keys.nodes_of(cascade)):
            yield _node(item)

    def get_node(self, cascade: CascadeId, image: str) -> CascadeNode | None:
        item = self._get(keys.node_key(cascade, image))
        return _node(item) if item else None

    def parent_rebuilt(self, cascade: CascadeId, child: str, parent: str) -> bool:
        """Strike `parent` off `child`'s wait list; True if this made the child ready (once)."""
        answer = self._update_if(
            f"releasing {child}",
            Key=keys.node_key(cascade, child),
            UpdateExpression="DELETE waiting :p",
            ConditionExpression="#s = :waiting",
            ReturnValues="ALL_NEW",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":p": {parent}, ":waiting": NodeStatus.WAITING.value},
        )
        if answer is None or answer.get("waiting"):
            return False
        return self.set_node_status(cascade, child, NodeStatus.READY, expect=(NodeStatus.WAITING,))

    def set_node_status(
        self, cascade: CascadeId, image: str, status: NodeStatus, expect: Iterable[NodeStatus]
    ) -> bool:
        """Move a node to `status` if it is in one of `expect`; False if it was not."""
        expected = [NodeStatus(e).value for e in expect]
        values: dict[str, Any] = {
            ":s": NodeStatus(status).value,
            **{f":e{i}": e for i, e in enumerate(expected)},
        }
        moved = self._update_if(
            f"updating node {image}",
            Key=keys.node_key(cascade, image),
            UpdateExpression="SET #s = :s",
            ConditionExpression=f"#s IN ({', '.join(f':e{i}' for i in range(len(expected)))})",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )
        return moved is not None
