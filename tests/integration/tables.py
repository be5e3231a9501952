"""Raw reads of the local deployment's table for tests: what is stored, as stored."""

from __future__ import annotations

from typing import Any

from checkpoint_journal._core import keys as _keys
from checkpoint_journal.local import LocalDeployment


def partition(dep: LocalDeployment, thread: str) -> list[dict[str, Any]]:
    """Every item of a thread's partition (consistent reads, every page)."""
    ddb = dep.client("dynamodb")
    kw: dict[str, Any] = {
        "TableName": dep.table_name, "KeyConditionExpression": "PK = :pk",
        "ExpressionAttributeValues": {":pk": {"S": _keys.thread_pk(thread)}},
        "ConsistentRead": True,
    }
    items: list[dict[str, Any]] = []
    while True:
        page = ddb.query(**kw)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]
