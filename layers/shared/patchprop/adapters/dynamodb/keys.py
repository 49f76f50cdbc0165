"""The table's key schema, the only place that knows it, and DynamoDB's types in and out.

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

from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import ConditionBase, Key

GSI1 = "GSI1"
KEY_ATTRS = ("PK", "SK", "GSI1PK", "GSI1SK")
LIMIT_KEY = {"PK": "LIMIT", "SK": "#BUILDS"}
ALL_BASES = "BASES"
ALL_DEPENDENTS = "DEPENDENTS"


def base_key(ref: str) -> dict[str, str]:
    return {"PK": f"BASE#{ref}", "SK": "#BASE"}


def dependent_key(image: str) -> dict[str, str]:
    return {"PK": f"IMAGE#{image}", "SK": "#IMAGE"}


def edge_key(image: str, base: str) -> dict[str, str]:
    return {"PK": f"IMAGE#{image}", "SK": f"{EDGE_PREFIX}{base}"}


EDGE_PREFIX = "BASE#"  # an edge's SK, before the base


def items_of_image(image: str) -> ConditionBase:
    """A dependent's own item and its edges (the table's PK, not GSI1)."""
    return Key("PK").eq(f"IMAGE#{image}")


def key_of(item: dict[str, Any]) -> dict[str, str]:
    return {"PK": item["PK"], "SK": item["SK"]}


def edge_index(image: str, base: str) -> dict[str, str]:
    return {"GSI1PK": f"BASE#{base}", "GSI1SK": f"IMAGE#{image}"}


def on_base(base: str) -> ConditionBase:
    """The edges of every dependent built directly on `base` (GSI1)."""
    return Key("GSI1PK").eq(f"BASE#{base}") & Key("GSI1SK").begins_with("IMAGE#")


def patch_key(base: str, digest: str) -> dict[str, str]:
    return {"PK": f"BASE#{base}", "SK": f"PATCH#{digest}"}


def rollback_key(image: str, digest: str, rolled_back: str) -> dict[str, str]:
    """A rollback of `image` to `digest` that started its dependents' patch (written once)."""
    return {"PK": f"ROLLBACK#{image}", "SK": f"{digest}#{rolled_back}"}


def patches_of(base: str) -> ConditionBase:
    return Key("PK").eq(f"BASE#{base}") & Key("SK").begins_with("PATCH#")


def rebuild_key(rebuild_id: str) -> dict[str, str]:
    return {"PK": f"REBUILD#{rebuild_id}", "SK": "#REBUILD"}


def rebuild_index(image: str, detected_at: str, rebuild_id: str) -> dict[str, str]:
    return {"GSI1PK": f"IMAGE#{image}", "GSI1SK": f"REBUILD#{detected_at}#{rebuild_id}"}


def rebuilds_of(image: str) -> ConditionBase:
    return Key("GSI1PK").eq(f"IMAGE#{image}") & Key("GSI1SK").begins_with("REBUILD#")


def build_key(build_id: str) -> dict[str, str]:
    return {"PK": f"BUILD#{build_id}", "SK": "#BUILD"}


def node_key(cascade: str, image: str) -> dict[str, str]:
    return {"PK": f"CASCADE#{cascade}", "SK": f"NODE#{image}"}


def nodes_of(cascade: str) -> ConditionBase:
    return Key("PK").eq(f"CASCADE#{cascade}") & Key("SK").begins_with("NODE#")


def every(kind: str) -> ConditionBase:
    """Every base (`BASES`) or every dependent (`DEPENDENTS`), by GSI1."""
    return Key("GSI1PK").eq(kind)


def dump(model: Any) -> dict[str, Any]:
    """A model as a DynamoDB item body: JSON types, no None values."""
    return {k: v for k, v in model.model_dump(mode="json").items() if v is not None}


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """An item without its keys, with DynamoDB's numbers and sets as Python's."""
    return {k: _python(v) for k, v in item.items() if k not in KEY_ATTRS and k != "kind"}


def _python(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set):
        return sorted(_python(v) for v in value)
    if isinstance(value, dict):
        return {k: _python(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_python(v) for v in value]
    return value
