"""Bases and dependents, with one edge item per (dependent, base) for planning by GSI1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from patchprop.adapters.dynamodb import keys
from patchprop.adapters.dynamodb.table import TableAccess
from patchprop.domain.errors import NotFound
from patchprop.domain.models import Base, Dependent, utcnow
from patchprop.domain.validation import first_problem

logger = Logger(child=True)
metrics = Metrics()
UNREADABLE_METRIC = "UnreadableDependent"


class CatalogTable(TableAccess):
    """The `Catalog` port on DynamoDB."""

    def get_base(self, ref: str) -> Base | None:
        item = self._get(keys.base_key(ref))
        return Base.model_validate(keys.plain(item)) if item else None

    def list_bases(self) -> Iterator[Base]:
        for item in self._query(index=keys.GSI1, key=keys.every(keys.ALL_BASES)):
            yield Base.model_validate(keys.plain(item))

    def track_base(self, ref: str, digest: str | None = None) -> None:
        """Start tracking a base; keeps what is known if it is tracked already."""
        updates = ["kind = :k", "#ref = :ref", "GSI1PK = :all", "GSI1SK = :ref"]
        values: dict[str, Any] = {":k": "base", ":ref": ref, ":all": keys.ALL_BASES}
        if digest:
            updates.append("digest = if_not_exists(digest, :d)")
            values[":d"] = digest
        self._update(keys.base_key(ref), "SET " + ", ".join(updates), values, names={"#ref": "ref"})

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
            Key=keys.base_key(ref),
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )
        return moved is not None

    def put_dependent(self, dependent: Dependent) -> None:
        """Write a dependent and one edge per base, atomically; bases become tracked."""
        body = keys.dump(dependent)
        # The edges there are, read as keys: an old registration that no longer reads is replaced too.
        stale = self._edge_bases(dependent.image) - set(dependent.bases)
        table = self.table.name
        item = {
            **keys.dependent_key(dependent.image),
            "GSI1PK": keys.ALL_DEPENDENTS,
            "GSI1SK": dependent.image,
            "kind": "dependent",
            **body,
        }
        actions: list[dict[str, Any]] = [{"Put": {"TableName": table, "Item": item}}]
        for base in dependent.bases:
            edge = {
                **keys.edge_key(dependent.image, base),
                **keys.edge_index(dependent.image, base),
                "kind": "edge",
                **body,
            }
            actions.append({"Put": {"TableName": table, "Item": edge}})
        for base in stale:
            actions.append({"Delete": {"TableName": table, "Key": keys.edge_key(dependent.image, base)}})
        self._transact(actions, f"registering {dependent.image}")
        for base in dependent.bases:
            self.track_base(base)

    def get_dependent(self, image: str) -> Dependent | None:
        """The dependent, or None when it is not registered or its record does not read."""
        item = self._get(keys.dependent_key(image))
        return _dependent(item) if item else None

    def list_dependents(self, skipped: list[str] | None = None) -> Iterator[Dependent]:
        """Every registered dependent, by image (one paginated GSI1 query); a record that does not
        read is logged, counted and named in `skipped`, and the others are read on."""
        for item in self._query(index=keys.GSI1, key=keys.every(keys.ALL_DEPENDENTS)):
            if (dependent := _dependent(item, skipped)) is not None:
                yield dependent

    def dependents_of(self, base: str, skipped: list[str] | None = None) -> Iterator[Dependent]:
        """Every dependent built directly on `base` (one paginated GSI1 query), as list_dependents."""
        for item in self._query(index=keys.GSI1, key=keys.on_base(base)):
            if (dependent := _dependent(item, skipped)) is not None:
                yield dependent

    def remove_dependent(self, image: str) -> None:
        """The dependent and its edges, by their keys: one whose record does not read goes too."""
        found = list(self._query(index=None, key=keys.items_of_image(image)))
        if not any(item["SK"] == keys.dependent_key(image)["SK"] for item in found):
            raise NotFound(f"no dependent image {image}", field="image")
        table = self.table.name
        actions = [{"Delete": {"TableName": table, "Key": keys.key_of(item)}} for item in found]
        self._transact(actions, f"removing {image}")

    def _edge_bases(self, image: str) -> set[str]:
        return {
            item["SK"].removeprefix(keys.EDGE_PREFIX)
            for item in self._query(index=None, key=keys.items_of_image(image))
            if item["SK"].startswith(keys.EDGE_PREFIX)
        }


def _dependent(item: dict[str, Any], skipped: list[str] | None = None) -> Dependent | None:
    """A stored dependent, or None (logged, counted) when it does not read: written by an older
    version or corrupted. One such record must not stop the listing or plan it is part of."""
    try:
        return Dependent.model_validate(keys.plain(item))
    except ValidationError as exc:
        image = str(item.get("image") or item.get("PK", "?")).removeprefix("IMAGE#")
        logger.error(
            "unreadable dependent record skipped",
            extra={"image": image, "key": keys.key_of(item), "problem": first_problem(exc)},
        )
        metrics.add_metric(UNREADABLE_METRIC, MetricUnit.Count, 1)
        if skipped is not None:
            skipped.append(image)
        return None
