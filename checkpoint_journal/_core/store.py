"""DynamoDB I/O for the journal.

Every request is a documented low-level call; every ConditionExpression says what it
protects. Requests go through ``aws.call``: throttling and transient failures are
retried by the client (``aws.clients``), and what still fails surfaces as a
``JournalError`` subclass naming the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from checkpoint_journal import errors
from checkpoint_journal._core import aws
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.items import Item, ItemPlan

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")

# BatchWriteItem takes at most 25 requests (DynamoDB limit).
BATCH_WRITE_MAX = 25
# Parallel chunk writes: enough to overlap round trips, few enough not to throttle a
# fresh on-demand partition (1,000 WCU per partition).
CHUNK_WRITE_CONCURRENCY = 8
# Re-sends of BatchWriteItem's UnprocessedItems before giving up.
_UNPROCESSED_RETRIES = 8


def thread_ids(client: DynamoDBClient, table: str) -> Iterator[str]:
    """Every thread with an item in the table: a keys-only Scan, for operators and
    auditors (rebuild --all, verify), never on an agent's path (I7)."""
    seen: set[str] = set()
    for page in aws.paginate(
        client.get_paginator("scan").paginate(
            TableName=table, ProjectionExpression="#pk", ExpressionAttributeNames={"#pk": "PK"}),
        service=aws.DYNAMODB, resource=table, what="list the table's threads (Scan)",
        denied_hint="Listing every thread needs dynamodb:Scan: attach the stack's "
        "AuditorPolicy.",
    ):
        for item in page.get("Items", []):
            pk = item["PK"]["S"]
            if pk not in seen and pk.startswith("T#"):
                seen.add(pk)
                yield _keys.thread_from_pk(pk)


class DynamoJournalStore:
    """The journal's DynamoDB I/O: conditional appends, consistent reads, batch writes."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self.client = client
        self.table = table_name
        self._pool = ThreadPoolExecutor(CHUNK_WRITE_CONCURRENCY, thread_name_prefix="cj-chunks")

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def _call(self, fn: Callable[[], T], what: str) -> T:
        return aws.call(fn, service=aws.DYNAMODB, resource=self.table, what=what)

    def _query(self, kw: dict[str, Any], what: str,
               first_limit: int | None = None) -> Iterator[list[Item]]:
        """Every page of a Query (``first_limit`` caps the first page's item count)."""
        kw = dict(kw)
        if first_limit is not None:
            kw["Limit"] = first_limit
        while True:
            page = self._call(lambda: self.client.query(**kw), what)
            yield list(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            if first_limit is not None:
                kw.pop("Limit", None)
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _put_new(self, item: Item) -> None:
        """Append one immutable item; an identical existing item is a retried append."""
        try:
            self._call(lambda: self.client.put_item(
                TableName=self.table,
                Item=item,
                # I1: journal items are never overwritten.
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": "PK"},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            ), "append to the journal")
        except aws.ConditionFailed as e:
            if e.item is not None and _same_content(e.item, item):
                return  # a retry of an append that had succeeded
            raise errors.ConflictError(
                f"journal item {item['SK']['S']!r} of {item['PK']['S']!r} already exists with "
                "different content; journal items are immutable. Checkpoint ids must be "
                "unique (LangGraph's uuid6 ids are)."
            ) from e

    def append(self, plan: ItemPlan) -> None:
        # I2: every chunk before the commit item that makes them visible.
        if plan.chunks:
            for f in [self._pool.submit(self._put_new, c) for c in plan.chunks]:
                f.result()
        self._put_new(plan.commit)

    def put_newer(self, item: Item, attr: str) -> bool:
        """Write a derived item unless the table holds one at least as new by the number
        ``attr`` (views by the writes events they folded, heads by projection time), so
        that a late or repeated projection is a no-op (I3). False when the existing one
        stays."""
        try:
            self._call(lambda: self.client.put_item(
                TableName=self.table, Item=item,
                # Monotonic: only a newer derivation replaces an existing one.
                ConditionExpression="attribute_not_exists(#pk) OR #v < :v",
                ExpressionAttributeNames={"#pk": "PK", "#v": attr},
                ExpressionAttributeValues={":v": item[attr]},
            ), "write a projected item")
        except aws.ConditionFailed:
            return False
        return True

    def put_plain(self, item: Item) -> None:
        """An unconditional put, for items that are not journal events (tombstones)."""
        self._call(lambda: self.client.put_item(TableName=self.table, Item=item), "put item")

    def pages(
        self,
        pk: str,
        *,
        prefix: str | None = None,
        between: tuple[str, str] | None = None,
        descending: bool = False,
        first_limit: int | None = None,
    ) -> Iterator[list[Item]]:
        """Pages of a partition under a prefix (or in an inclusive range), strongly
        consistent. ``first_limit`` caps the first page's item count (the read path's
        newest-first probe); later pages are DynamoDB's (1 MB)."""
        if between is not None:
            cond = "#pk = :pk AND #sk BETWEEN :lo AND :hi"
            values = {":pk": {"S": pk}, ":lo": {"S": between[0]}, ":hi": {"S": between[1]}}
        elif prefix:
            cond = "#pk = :pk AND begins_with(#sk, :prefix)"
            values = {":pk": {"S": pk}, ":prefix": {"S": prefix}}
        else:
            cond = "#pk = :pk"
            values = {":pk": {"S": pk}}
        kw: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": cond,
            "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK"} if prefix or between
            else {"#pk": "PK"},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not descending,
            # I4: a read right after a write must see it.
            "ConsistentRead": True,
        }
        return self._query(kw, "read the journal", first_limit)

    def with_chunks(self, pk: str, items: list[Item]) -> list[Item]:
        """``items`` plus the chunk items of every chunked record among them (one Query
        per record, in parallel): what the fold needs to reassemble their bodies."""
        commits = {i["SK"]["S"]: int(i["chunks"]["N"]) for i in items if "chunks" in i}
        if not commits:
            return items

        def chunks(sk: str, n: int) -> list[Item]:
            # The exact range of this record's chunks: a checkpoint's chunk prefix also
            # starts the chunks of its writes and carried values.
            bounds = (_keys.chunk_sk(sk, 0), _keys.chunk_sk(sk, max(n, 1) - 1))
            return [i for page in self.pages(pk, between=bounds) for i in page]

        found = run_parallel([lambda sk=sk, n=n: chunks(sk, n)  # type: ignore[misc]
                              for sk, n in commits.items()], self._pool)
        return items + [i for group in found for i in group]

    def summary(self, pk: str) -> list[Item]:
        """Every item of a partition with its keys and bookkeeping attributes only (no
        bodies): enough for ``fold.survey`` to tell which checkpoints are visible, and for
        the heads (the command line's thread listing)."""
        kw: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk",
            # md.step only: the rest of the plain metadata can be large and is not needed.
            "ProjectionExpression": "#pk, #sk, #wa, #exp, #vu, #md.#step, #latest, #step, #ts",
            "ExpressionAttributeNames": {
                "#pk": "PK", "#sk": "SK", "#wa": "written_at", "#exp": "expires_at",
                "#vu": "visible_until", "#md": "md", "#step": "step", "#latest": "latest",
                "#ts": "ts",
            },
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        return [i for page in self._query(kw, "read a thread's keys") for i in page]

    def get(self, pk: str, sk: str) -> Item | None:
        resp = self._call(
            lambda: self.client.get_item(
                TableName=self.table, Key={"PK": {"S": pk}, "SK": {"S": sk}}, ConsistentRead=True
            ),
            "read an item",
        )
        item: Item | None = resp.get("Item")
        return item

    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[Item]:
        """Items by key (eventually consistent, any order; missing keys are skipped)."""
        out: list[Item] = []
        for i in range(0, len(keys), 100):
            pending: Any = {
                self.table: {"Keys": [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in keys[i : i + 100]]}
            }
            for attempt in range(_UNPROCESSED_RETRIES + 1):
                req = pending
                resp = self._call(
                    lambda: self.client.batch_get_item(RequestItems=req), "read items"
                )
                out.extend(resp.get("Responses", {}).get(self.table, []))
                pending = resp.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt))
            else:
                raise errors.TransientError("reads stayed unprocessed after retries; try again")
        return out

    def index_keys(
        self, index: str, hash_name: str, hash_value: str, range_name: str,
        *, below: str | None = None, limit: int | None = None,
    ) -> Iterator[list[Item]]:
        """Pages of a GSI partition, newest (greatest range key) first."""
        cond = "#h = :h" + (" AND #r < :r" if below is not None else "")
        values: dict[str, Any] = {":h": {"S": hash_value}}
        names = {"#h": hash_name}
        if below is not None:
            values[":r"] = {"S": below}
            names["#r"] = range_name
        kw: dict[str, Any] = {
            "TableName": self.table, "IndexName": index, "KeyConditionExpression": cond,
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        if limit is not None:
            kw["Limit"] = limit  # every page
        return self._query(kw, f"query {index}")

    def keys(self, pk: str, sk_prefix: str) -> list[tuple[str, str]]:
        """Keys only (no bodies) of a partition under a prefix, for deletes."""
        kw: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK"},
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": sk_prefix}},
            "ProjectionExpression": "#pk, #sk",
            "ConsistentRead": True,
        }
        if not sk_prefix:  # the whole partition (DynamoDB refuses an empty prefix)
            kw["KeyConditionExpression"] = "#pk = :pk"
            kw["ExpressionAttributeValues"] = {":pk": {"S": pk}}
        return [(i["PK"]["S"], i["SK"]["S"])
                for page in self._query(kw, "list journal keys") for i in page]

    def run_keys(self, run_id: str) -> list[tuple[str, str]]:
        """Keys of the checkpoint events of a LangGraph run, from the RunIndex GSI."""
        kw: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "RunIndex",
            "KeyConditionExpression": "#run = :run",
            "ExpressionAttributeNames": {"#run": "run_id"},
            "ExpressionAttributeValues": {":run": {"S": run_id}},
        }
        return [(i["PK"]["S"], i["SK"]["S"])
                for page in self._query(kw, "find a run's checkpoints") for i in page]

    def delete_keys(self, keys: Sequence[tuple[str, str]]) -> None:
        self._batch_write(
            [{"DeleteRequest": {"Key": {"PK": {"S": pk}, "SK": {"S": sk}}}} for pk, sk in keys]
        )

    def put_many(self, items: Sequence[Item]) -> None:
        """Unconditional puts, 25 to a request (for items that are pure functions of
        immutable ones, so that writing one twice is harmless)."""
        self._batch_write([{"PutRequest": {"Item": item}} for item in items])

    def _batch_write(self, all_requests: Sequence[Any]) -> None:
        for i in range(0, len(all_requests), BATCH_WRITE_MAX):
            requests: list[Any] = list(all_requests[i : i + BATCH_WRITE_MAX])
            for attempt in range(_UNPROCESSED_RETRIES + 1):
                req = requests
                resp = self._call(
                    lambda: self.client.batch_write_item(RequestItems={self.table: req}),
                    "write a batch of items",
                )
                requests = list(resp.get("UnprocessedItems", {}).get(self.table, []))
                if not requests:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt))  # back off before re-sending
            else:
                raise errors.TransientError(
                    f"{len(requests)} writes stayed unprocessed after "
                    f"{_UNPROCESSED_RETRIES} retries; run the operation again"
                )

    def describe(self) -> dict[str, Any]:
        resp = self._call(lambda: self.client.describe_table(TableName=self.table), "describe")
        return dict(resp["Table"])


def _same_content(old: Item, new: Item) -> bool:
    """Equal apart from bookkeeping that differs between two attempts of one append."""
    skip = {"written_at", "expires_at", "visible_until"}
    if old.get("kind") != new.get("kind"):
        return False
    if "digest" in new or "digest" in old:
        return old.get("digest") == new.get("digest")
    if new.get("kind", {}).get("S") == "P":
        return old.get("body") == new.get("body")
    return {k: v for k, v in old.items() if k not in skip} == {
        k: v for k, v in new.items() if k not in skip
    }


def run_parallel(fns: Sequence[Callable[[], T]], pool: ThreadPoolExecutor) -> list[T]:
    return [f.result() for f in [pool.submit(fn) for fn in fns]]
