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


def create_pk_sk_table(ddb: Any, name: str) -> None:
    """A pay-per-request table keyed by string ``PK`` and ``SK`` (no stream): the layout
    DynamoDBSaver's sample template and the size tests use."""
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                   {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                              {"AttributeName": "SK", "AttributeType": "S"}])
