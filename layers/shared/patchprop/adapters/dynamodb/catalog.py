"""Bases and dependents, with one edge item per (dependent, base) for planning by GSI1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from patchprop.adapters.dynamodb import keys
from patchprop.adapters.dynamodb.table import TableAccess
from patchprop.domain.errors import NotFound
from patchprop.domain.models import Base, Dependent, utcnow


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
        old = self.get_dependent(dependent.image)
        stale = set(old.bases) - set(dependent.bases) if old else set()
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
        item = self._get(keys.dependent_key(image))
        return Dependent.model_validate(keys.plain(item)) if item else None

    def list_dependents(self) -> Iterator[Dependent]:
        """Every registered dependent, by image (one paginated GSI1 query)."""
        for item in self._query(index=keys.GSI1, key=keys.every(keys.ALL_DEPENDENTS)):
            yield Dependent.model_validate(keys.plain(item))

    def dependents_of(self, base: str) -> Iterator[Dependent]:
        """Every dependent built directly on `base` (one paginated GSI1 query)."""
        for item in self._query(index=keys.GSI1, key=keys.on_base(base)):
            yield Dependent.model_validate(keys.plain(item))

    def remove_dependent(self, image: str) -> None:
        dependent = self.get_dependent(image)
        if dependent is None:
            raise NotFound(f"no dependent image {image}")
        table = self.table.name
        actions = [{"Delete": {"TableName": table, "Key": keys.dependent_key(image)}}]
        actions += [{"Delete": {"TableName": table, "Key": keys.edge_key(image, b)}} for b in dependent.bases]
        self._transact(actions, f"removing {image}")
