"""DynamoDB I/O for the journal.

Every request is a documented low-level call; every ConditionExpression says what it
protects. Requests go through ``aws.call``: throttling and transient failures are
retried by the client (``aws.clients``), and what still fails surfaces as a
``JournalError`` subclass naming the table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from checkpoint_journal import errors
from checkpoint_journal._core import aws
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import seal as _seal
from checkpoint_journal._core.items import Item, ItemPlan, run_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")

logger = logging.getLogger(__name__)

# BatchWriteItem takes at most 25 requests (DynamoDB limit).
BATCH_WRITE_MAX = 25
# Parallel chunk writes: enough to overlap round trips, few enough not to throttle a
# fresh on-demand partition (1,000 WCU per partition).
CHUNK_WRITE_CONCURRENCY = 8
# Re-sends of BatchWriteItem's UnprocessedItems before giving up.
_UNPROCESSED_RETRIES = 8
# A bounded read's later pages: item limits grow so (``_query``), unbounded from 4096.
_PAGE_GROWTH, _UNBOUNDED_PAGE = 8, 4096


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


def derived(sk: str) -> bool:
    """Whether the item at ``sk`` is derived from the journal (a view, head or index
    entry, which the projector rebuilds), rather than the journal itself."""
    return not (sk.startswith(("J#", "P#", "R#")) and not sk.endswith("#" + _keys.KIND_VIEW))


class DynamoJournalStore:
    """The journal's DynamoDB I/O: conditional appends, consistent reads, batch writes.

    Every item written carries its seal (``_core.seal``); every whole item read is checked
    against it (I2b). A damaged journal item raises CorruptRecordError naming it; a
    damaged derived item (view, head, index entry) is left out, with a warning, so the
    reader answers from the journal behind it. ``check_seals=False`` returns items as
    stored, for ``verify``, which reports damage rather than stopping at it.
    """

    def __init__(self, client: DynamoDBClient, table_name: str, *,
                 check_seals: bool = True) -> None:
        self.client = client
        self.table = table_name
        self.check_seals = check_seals
        self._pool = ThreadPoolExecutor(CHUNK_WRITE_CONCURRENCY, thread_name_prefix="cj-chunks")

    def _checked(self, items: list[Item]) -> list[Item]:
        """The intact items among ``items`` (I2b); raises for a damaged journal item."""
        if not self.check_seals:
            return items
        out: list[Item] = []
        for item in items:
            why = _seal.damage(item)
            if why is None:
                out.append(item)
                continue
            sk = item.get("SK", {}).get("S", "")
            if not derived(sk):
                raise errors.CorruptRecordError(
                    f"journal item {_seal.where(item)} of table {self.table!r} is damaged: "
                    f"{why}. Nothing was read from it. Run `checkpoint-journal verify` for "
                    "a report.")
            logger.warning("ignoring derived item %s: %s; reading the journal behind it "
                           "(the projector or `checkpoint-journal rebuild` rewrites it)",
                           _seal.where(item), why)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def _call(self, fn: Callable[[], T], what: str) -> T:
        return aws.call(fn, service=aws.DYNAMODB, resource=self.table, what=what)

    def _query(self, kw: dict[str, Any], what: str,
               first_limit: int | None = None) -> Iterator[list[Item]]:
        """Every page of a Query. ``first_limit`` caps the first page's item count, and
        each later page's at eight times the one before (DynamoDB's 1 MB aside): a read
        that stops once it has what it needs reads at most about that much again."""
        kw = dict(kw)
        if first_limit is not None:
            kw["Limit"] = first_limit
        while True:
            page = self._call(lambda: self.client.query(**kw), what)
            yield list(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            if "Limit" in kw:
                kw["Limit"] *= _PAGE_GROWTH
                if kw["Limit"] >= _UNBOUNDED_PAGE:
                    kw.pop("Limit")
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _put_new(self, item: Item) -> bool:
        """Append one immutable item; an identical existing item is a retried append.
        True when this call created it."""
        item = _seal.sealed(item)
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
                return False  # a retry of an append that had succeeded
            conflict = errors.ConflictError(
                f"journal item {item['SK']['S']!r} of {item['PK']['S']!r} already exists with "
                "different content; journal items are immutable. Checkpoint ids must be "
                "unique (LangGraph's uuid6 ids are)."
            )
            written = (e.item or {}).get("written_at", {}).get("N")
            # The existing item's time: a retry planned again at it makes the same items.
            conflict.written_at_ms = int(written) if written is not None else None
            raise conflict from e
        return True

    def append(self, plan: ItemPlan) -> None:
        # I2: every chunk before the commit item that makes them visible.
        self._put_chunks(plan)
        self._put_new(plan.commit)

    def _put_chunks(self, plan: ItemPlan) -> None:
        """Write a record's chunks (in parallel). When one already exists with other
        content (an earlier attempt of the same put, at another time), the chunks this
        call wrote are deleted again, no commit pointing to them, before the conflict is
        raised: the caller's retry at the earlier attempt's time then writes the same
        chunks that attempt did."""
        if not plan.chunks:
            return
        futures = [(c, self._pool.submit(self._put_new, c)) for c in plan.chunks]
        conflict: errors.ConflictError | None = None
        written: list[tuple[str, str]] = []
        for chunk, f in futures:
            try:
                if f.result():
                    written.append((chunk["PK"]["S"], chunk["SK"]["S"]))
            except errors.ConflictError as e:
                conflict = conflict or e
        if conflict is not None:
            if written:
                self.delete_keys(written)
            raise conflict

    def put_newer(self, item: Item, attr: str) -> bool:
        """Write a derived item unless the table holds one at least as new by the number
        ``attr`` (views by the writes events they folded, heads by projection time), so
        that a late or repeated projection is a no-op (I3). False when the existing one
        stays."""
        item = _seal.sealed(item)
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
        item = _seal.sealed(item)
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
        kw = {**self._range(pk, prefix, between), "ScanIndexForward": not descending}
        return (self._checked(page) for page in self._query(kw, "read the journal", first_limit))

    def _range(self, pk: str, prefix: str | None,
               between: tuple[str, str] | None) -> dict[str, Any]:
        """A strongly consistent Query's key condition (I4: a read right after a write
        sees it): a partition, under a prefix or in an inclusive range."""
        names, values = {"#pk": "PK", "#sk": "SK"}, {":pk": {"S": pk}}
        if between is not None:
            cond = "#pk = :pk AND #sk BETWEEN :lo AND :hi"
            values |= {":lo": {"S": between[0]}, ":hi": {"S": between[1]}}
        elif prefix:
            cond = "#pk = :pk AND begins_with(#sk, :prefix)"
            values |= {":prefix": {"S": prefix}}
        else:
            cond, names = "#pk = :pk", {"#pk": "PK"}
        return {"TableName": self.table, "KeyConditionExpression": cond,
                "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
                "ConsistentRead": True}

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
        if item is None:
            return None
        kept = self._checked([item])
        return kept[0] if kept else None

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
                out.extend(self._checked(resp.get("Responses", {}).get(self.table, [])))
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

    def keys(self, pk: str, sk_prefix: str, *,
             between: tuple[str, str] | None = None) -> list[tuple[str, str]]:
        """Keys only (no bodies) of a partition under a prefix (or in an inclusive range):
        for deletes, and for a read that holds the items' content already."""
        kw = self._range(pk, sk_prefix, between)
        kw["ExpressionAttributeNames"]["#sk"] = "SK"
        kw["ProjectionExpression"] = "#pk, #sk"
        return [(i["PK"]["S"], i["SK"]["S"])
                for page in self._query(kw, "list journal keys") for i in page]

    def run_keys(self, run_id: str) -> list[tuple[str, str]]:
        """Keys of the checkpoint events of a LangGraph run, from the RunIndex GSI."""
        kw: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "RunIndex",
            "KeyConditionExpression": "#run = :run",
            "ExpressionAttributeNames": {"#run": "run_id"},
            "ExpressionAttributeValues": {":run": {"S": run_key(run_id)}},
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
        self._batch_write([{"PutRequest": {"Item": _seal.sealed(item)}} for item in items])

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

    def describe_ttl(self) -> dict[str, Any]:
        resp = self._call(lambda: self.client.describe_time_to_live(TableName=self.table),
                          "describe the table's TTL")
        return dict(resp.get("TimeToLiveDescription") or {})

    def check(self, *, ttl_seconds: int | None) -> dict[str, str]:
        """What the journal needs of its table, checked (see :func:`table_findings`)."""
        return table_findings(self.table, self.describe(), self.describe_ttl(),
                              ttl_seconds=ttl_seconds)

    # -- write ownership: a thread's owner item, keys.owner_sk (saver/_ownership.py) ------

    OWNER_ATTR = "owner"  # the owner item's attribute holding the current owner's token
    # Re-sends of a claim refused as transient: botocore does not retry a
    # TransactionConflictException, met while a fenced write holds the owner item in a
    # transaction (milliseconds). A claim is idempotent: re-sending is safe.
    CLAIM_RETRIES = 3
    # Re-sends of a fenced append cancelled by a conflict (concurrent fenced writes of a
    # thread all check its owner item; DynamoDB cancels transactions overlapping on an
    # item) or by throttling. Nothing was applied, so re-sending is safe; with the
    # jittered back-off below, about 2.5 s in all before giving up.
    FENCED_RETRIES = 8
    _FENCED_RETRY_CODES = frozenset(
        {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})

    def claim_owner(self, pk: str, token: str, claimed_at_ms: int) -> None:
        """Make ``token`` the owner of the thread partition ``pk``: one PutItem."""
        item: Item = _seal.sealed({
            "PK": {"S": pk},
            "SK": {"S": _keys.owner_sk()},
            "kind": {"S": _keys.KIND_OWNER},
            self.OWNER_ATTR: {"S": token},
            "claimed_at": {"N": str(claimed_at_ms)},
        })
        for attempt in range(self.CLAIM_RETRIES + 1):
            try:
                # No condition: a claim supersedes whoever owned the thread. Monotonic
                # because every claim brings a fresh random token, which no earlier
                # owner holds.
                self._call(lambda: self.client.put_item(TableName=self.table, Item=item),
                           "claim write ownership of a thread")
                return
            except errors.TransientError:
                if attempt == self.CLAIM_RETRIES:
                    raise
                time.sleep(min(1.0, 0.05 * 2**attempt))

    def check_owner(self, pk: str, token: str) -> None:
        """StaleWriteOwnerError unless ``token`` is the owner of ``pk`` (one consistent
        GetItem)."""
        item = self.get(pk, _keys.owner_sk())
        if item is None or item.get(self.OWNER_ATTR, {}).get("S") != token:
            raise errors.StaleWriteOwnerError(_keys.thread_from_pk(pk), self._superseded(item))

    def append_fenced(self, plan: ItemPlan, owner_pk: str, token: str) -> None:
        """``append``, accepted only while ``token`` owns the thread ``owner_pk``:
        StaleWriteOwnerError otherwise, with nothing of ``plan`` left in the table.

        The commit item is written by one TransactWriteItems: a ConditionCheck on the
        owner item and the Put (two requests' worth of write capacity: transactional
        writes cost double). Chunks go first as in ``append`` (invisible without their
        commit), after one consistent read of the owner item so that a writer already
        superseded writes none; if the commit is refused they are deleted again (best
        effort).
        """
        if plan.chunks:
            self.check_owner(owner_pk, token)
            self._put_chunks(plan)
        self._commit_fenced(plan, owner_pk, token)

    def _commit_fenced(self, plan: ItemPlan, owner_pk: str, token: str) -> None:
        import contextlib
        import random  # jitter, for the re-sends below

        commit = _seal.sealed(plan.commit)
        request: dict[str, Any] = {"TransactItems": [
            {"ConditionCheck": {
                "TableName": self.table,
                "Key": {"PK": {"S": owner_pk}, "SK": {"S": _keys.owner_sk()}},
                # The fence: applied only while this writer's claim is the thread's
                # latest (a later claim replaced the token, delete_thread removed it).
                "ConditionExpression": "#o = :token",
                "ExpressionAttributeNames": {"#o": self.OWNER_ATTR},
                "ExpressionAttributeValues": {":token": {"S": token}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }},
            {"Put": {
                "TableName": self.table,
                "Item": commit,
                # I1: journal items are never overwritten.
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": "PK"},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }},
        ]}
        for attempt in range(self.FENCED_RETRIES + 1):
            try:
                self._call(lambda: self.client.transact_write_items(**request),
                           "append to the journal (fenced)")
                return
            except aws.TransactionCanceled as e:
                fence, put = e.code(0), e.code(1)
                existing = e.item(1)
                if put == "ConditionalCheckFailed" and existing is not None \
                        and _same_content(existing, commit):
                    # A retry of an append that had succeeded, under the fence then
                    # (botocore re-sends with the same ClientRequestToken; emulators
                    # may ignore it and evaluate the conditions again).
                    return
                if fence == "ConditionalCheckFailed":
                    if plan.chunks and put != "ConditionalCheckFailed":
                        # Ours (their commit does not exist): deleted, best effort; left
                        # over they stay invisible, and expire with the TTL if any.
                        with contextlib.suppress(errors.JournalError):
                            self.delete_keys([(c["PK"]["S"], c["SK"]["S"])
                                              for c in plan.chunks])
                    raise errors.StaleWriteOwnerError(
                        _keys.thread_from_pk(owner_pk), self._superseded(e.item(0))) from e
                if put == "ConditionalCheckFailed":
                    conflict = errors.ConflictError(
                        f"journal item {commit['SK']['S']!r} of {commit['PK']['S']!r} already "
                        "exists with different content; journal items are immutable. "
                        "Checkpoint ids must be unique (LangGraph's uuid6 ids are)."
                    )
                    # As in _put_new: the existing item's time, for a retry planned again.
                    written = (existing or {}).get("written_at", {}).get("N")
                    conflict.written_at_ms = int(written) if written is not None else None
                    raise conflict from e
                codes = {fence, put} - {"None"}
                if not codes <= self._FENCED_RETRY_CODES:
                    raise errors.JournalError(
                        f"{e}; reasons: {', '.join(sorted(codes)) or 'none given'}") from e
                if attempt == self.FENCED_RETRIES:
                    raise errors.TransientError(
                        f"a fenced append to {owner_pk!r} was cancelled "
                        f"{self.FENCED_RETRIES + 1} times ({', '.join(sorted(codes))}): "
                        "other writes of the thread kept holding its owner item. Retry "
                        "the write, or write the thread from fewer tasks at once."
                    ) from e
                time.sleep(min(1.0, 0.02 * 2**attempt) * random.uniform(0.5, 1.0))

    @staticmethod
    def _superseded(owner_item: Item | None) -> str:
        """What superseded a writer, from the thread's owner item (None: none)."""
        if owner_item is None:
            return "the thread has no owner any more: it was deleted after this claim"
        from datetime import UTC, datetime  # message formatting only

        ms = int(owner_item.get("claimed_at", {}).get("N", "0"))
        at = datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
        return f"superseded by a claim made at {at}"


TTL_ATTRIBUTE = "expires_at"


def table_findings(table: str, desc: dict[str, Any], ttl: dict[str, Any], *,
                   ttl_seconds: int | None) -> dict[str, str]:
    """What was checked of a table, each with what was found; NotConfiguredError when
    the journal cannot work on it: keys other than ``PK`` (S, hash) and ``SK`` (S,
    range), TTL on another attribute, or a saver TTL without the table's TTL (items
    would be hidden but never deleted). A table without a stream works (no projector:
    reads fold the journal) and is reported as such."""
    keys = {k["AttributeName"]: k["KeyType"] for k in desc.get("KeySchema", [])}
    types = {a["AttributeName"]: a["AttributeType"]
             for a in desc.get("AttributeDefinitions", [])}
    if keys != {"PK": "HASH", "SK": "RANGE"} or types.get("PK") != "S" or types.get(
            "SK") != "S":
        found = ", ".join(f"{n} ({types.get(n, '?')}, {t.lower()})" for n, t in keys.items())
        raise errors.NotConfiguredError(
            f"table {table!r} has keys {found or 'none'}; the journal needs PK (S, hash) and "
            "SK (S, range). Point the saver at the stack's TableName output.")
    stream = desc.get("StreamSpecification") or {}
    view = stream.get("StreamViewType") if stream.get("StreamEnabled") else None
    ttl_attr, ttl_status = ttl.get("AttributeName"), ttl.get("TimeToLiveStatus", "DISABLED")
    if ttl_attr and ttl_attr != TTL_ATTRIBUTE and ttl_status in ("ENABLED", "ENABLING"):
        raise errors.NotConfiguredError(
            f"table {table!r} expires items by {ttl_attr!r}; the journal writes "
            f"{TTL_ATTRIBUTE!r}. Enable TTL on {TTL_ATTRIBUTE!r} (template.yaml does).")
    if ttl_seconds is not None and ttl_status not in ("ENABLED", "ENABLING"):
        raise errors.NotConfiguredError(
            f"the saver has ttl_seconds={ttl_seconds} but table {table!r} has TTL "
            f"{ttl_status.lower()}: expired items would be hidden but never deleted. Enable "
            f"TTL on {TTL_ATTRIBUTE!r} (template.yaml does), or drop ttl_seconds.")
    return {
        "table": table,
        "keys": "PK (S, hash), SK (S, range)",
        "stream": (f"{view}: the projector can follow it" if view in (
            "NEW_IMAGE", "NEW_AND_OLD_IMAGES") else
            f"{view}: the projector needs NEW_IMAGE" if view else
            "disabled: no projector; reads fold the journal (correct, slower)"),
        "ttl": f"{ttl_status.lower()} on {ttl_attr or TTL_ATTRIBUTE!r}",
    }


def _same_content(old: Item, new: Item) -> bool:
    """Equal apart from bookkeeping that differs between two attempts of one append."""
    skip = {"written_at", "expires_at", "visible_until", _seal.SEAL_ATTR}
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
