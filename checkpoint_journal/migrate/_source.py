"""Reading what ``langgraph-checkpoint-aws`` 1.x ``DynamoDBSaver`` stored: its table and
its offload bucket, read directly (no dependency on that library).

The layout, as 1.x writes it (``checkpoint/dynamodb/unified_repository.py``):

| item | PK | SK | attributes |
|---|---|---|---|
| checkpoint | ``CHECKPOINT_{thread}`` | ``{ns}#{checkpoint id}`` | ``id``, ``ns``, ``type``, ``ref_loc``, ``ref_key``, ``parent_checkpoint_id``?, ``compression``?, ``ttl``? |
| pending write | ``WRITES_{thread}#{ns}#{checkpoint id}`` | ``{task id}#{idx}`` | ``task_id``, ``channel``, ``idx`` (N), ``checkpoint_id``, ``type``, ``ref_loc``, ``ref_key``, ``task_path``?, ``compression``?, ``ttl``? |
| payload kept in the table | ``ref_key`` (``CHUNK_...``) | ``CHUNK`` | ``payload`` (B) |

``ref_loc`` says where the payload is: ``DYNAMODB`` (the ``CHUNK`` item above) or
``S3`` (object ``{key_prefix}/{ref_key}`` of the offload bucket, for payloads over
350 KB). A checkpoint's payload is ``serde.dumps_typed({"checkpoint": ..., "metadata":
...})``, a write's ``serde.dumps_typed(value)``, gzip-compressed when ``compression`` is
``gzip``. DynamoDBSaver writes an item before its payload, so a crash can leave an item
whose payload is missing: DynamoDBSaver's reads skip it, and so do we (reported, see
``Orphan``). Anything else not of this shape is refused with the item's key.

The parsing is pure (``checkpoint_item``, ``write_item``, ``decode``); ``Source`` does
the I/O, every request through ``aws.call``.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import WRITES_IDX_MAP
from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_journal import errors
from checkpoint_journal._core import aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

CHECKPOINT_PREFIX = "CHECKPOINT_"
WRITES_PREFIX = "WRITES_"
CHUNK_PREFIX = "CHUNK_"
CHUNK_SK = "CHUNK"
_LOCATIONS = ("DYNAMODB", "S3")
_COMPRESSIONS = (None, "gzip")
# BatchGetItem takes at most 100 keys per request (DynamoDB limit).
BATCH_GET_MAX = 100
# Rounds of BatchGetItem for keys DynamoDB left unprocessed (throttling, or the 16 MB
# response limit) before giving up with TransientError; with the back-off below the
# rounds span about 25 s, longer than a throttling burst on an on-demand table lasts.
UNPROCESSED_ROUNDS = 10
_BACKOFF_S = 0.05


Key = tuple[str, str]
"""An item's (PK, SK)."""


def where(key: Key) -> str:
    """An item's key as the messages name it."""
    return f"PK={key[0]!r} SK={key[1]!r}"


def _unrecognised(key: Key, why: str) -> errors.CorruptRecordError:
    return errors.CorruptRecordError(
        f"DynamoDBSaver item {where(key)} is not in a layout langgraph-checkpoint-aws 1.x "
        f"writes ({why}); nothing of its thread was imported past it. Check that the source "
        "table is a DynamoDBSaver table, or remove the item.")


@dataclass(frozen=True)
class Payload:
    """Where an item's payload is and how it is encoded."""

    key: Key
    """The item that points to it (for messages)."""
    type: str
    location: str
    """``DYNAMODB`` or ``S3``."""
    ref_key: str
    compression: str | None


@dataclass(frozen=True)
class CheckpointItem:
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    payload: Payload


@dataclass(frozen=True)
class WriteItem:
    task_id: str
    task_path: str
    channel: str
    idx: int
    payload: Payload


def _s(item: dict[str, Any], name: str, key: Key, *, required: bool = True) -> str | None:
    value = item.get(name)
    if value is None:
        if required:
            raise _unrecognised(key, f"no attribute {name!r}")
        return None
    if set(value) != {"S"}:
        raise _unrecognised(key, f"attribute {name!r} is not a string")
    text: str = value["S"]
    return text


def _payload(item: dict[str, Any], key: Key) -> Payload:
    location = _s(item, "ref_loc", key)
    if location not in _LOCATIONS:
        raise _unrecognised(key, f"ref_loc {location!r} is neither DYNAMODB nor S3")
    compression = _s(item, "compression", key, required=False)
    if compression not in _COMPRESSIONS:
        raise _unrecognised(key, f"compression {compression!r} is not gzip")
    return Payload(key, _s(item, "type", key) or "", location, _s(item, "ref_key", key) or "",
                   compression)


def checkpoint_item(thread_id: str, item: dict[str, Any]) -> CheckpointItem:
    """A checkpoint item of ``CHECKPOINT_{thread_id}``, checked against its key."""
    key = (item["PK"]["S"], item["SK"]["S"])
    cid = _s(item, "id", key) or ""
    ns = _s(item, "ns", key)
    if ns is None or key[1] != f"{ns}#{cid}":
        raise _unrecognised(key, "its sort key is not '{ns}#{id}' of its ns and id attributes")
    return CheckpointItem(thread_id, ns, cid, _s(item, "parent_checkpoint_id", key,
                                                 required=False), _payload(item, key))


def write_item(item: dict[str, Any], checkpoint_id: str) -> WriteItem:
    """A pending-write item of a checkpoint's ``WRITES_`` partition, checked."""
    key = (item["PK"]["S"], item["SK"]["S"])
    task_id = _s(item, "task_id", key) or ""
    channel = _s(item, "channel", key) or ""
    raw_idx = item.get("idx", {}).get("N")
    try:
        idx = int(raw_idx) if raw_idx is not None else None
    except ValueError:
        idx = None
    if idx is None:
        raise _unrecognised(key, "no whole-number attribute 'idx'")
    if key[1] != f"{task_id}#{idx}":
        raise _unrecognised(key, "its sort key is not '{task_id}#{idx}' of its attributes")
    owner = _s(item, "checkpoint_id", key, required=False)
    if owner is not None and owner != checkpoint_id:
        raise _unrecognised(key, f"it names checkpoint {owner}, not {checkpoint_id}")
    # LangGraph's indexes: a special channel's is fixed, a regular write's is its position.
    expected = WRITES_IDX_MAP.get(channel)
    if (expected is not None and idx != expected) or (expected is None and idx < 0):
        raise _unrecognised(key, f"index {idx} is not LangGraph's for channel {channel!r}")
    return WriteItem(task_id, _s(item, "task_path", key, required=False) or "", channel, idx,
                     _payload(item, key))


def decode(serde: SerializerProtocol, payload: Payload, data: bytes) -> Any:
    """A payload's value, as DynamoDBSaver's ``CheckpointSerializer`` reads it, with
    ``serde`` (strict: a type it does not admit raises BlockedTypeError naming the item,
    the type and ``--allow``)."""
    if payload.compression == "gzip":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise errors.CorruptRecordError(
                f"the gzip payload of DynamoDBSaver item {where(payload.key)} does not "
                f"decompress ({e})") from e
    try:
        return serde.loads_typed((payload.type, data))
    except errors.BlockedTypeError as e:
        if e.type_name == "pickle":
            raise errors.BlockedTypeError(f"DynamoDBSaver item {where(payload.key)}: {e}",
                                          e.type_name) from e
        module, _, name = e.type_name.rpartition(".")
        raise errors.BlockedTypeError(
            f"DynamoDBSaver item {where(payload.key)} holds a value of type {e.type_name}, "
            "which the deserialization allow-list does not admit, so it was not rebuilt "
            f"(stored data never runs code). If the type is yours, pass --allow "
            f"{e.type_name} (allow=[({module!r}, {name!r})] in Python).", e.type_name) from e
    except errors.JournalError:
        raise
    except Exception as e:  # msgpack / JSON errors: the bytes are not what they claim
        raise errors.CorruptRecordError(
            f"the payload of DynamoDBSaver item {where(payload.key)} (type {payload.type!r}) "
            f"cannot be read: {type(e).__name__}: {e}") from e


class Source:
    """A DynamoDBSaver table and (optionally) its offload bucket.

    Args:
        dynamodb, s3: clients from ``aws.clients``.
        table: the DynamoDBSaver table.
        bucket: its ``s3_offload_config["bucket_name"]``; None when it had none (a
            payload in S3 then raises NotConfiguredError saying to pass it).
        key_prefix: its ``s3_offload_config["key_prefix"]``, if it had one.
    """

    def __init__(self, dynamodb: DynamoDBClient, s3: S3Client, table: str,
                 bucket: str | None = None, key_prefix: str | None = None,
                 pool: ThreadPoolExecutor | None = None) -> None:
        self.dynamodb = dynamodb
        self.s3 = s3
        self.table = table
        self.bucket = bucket
        self.key_prefix = key_prefix.strip("/") if key_prefix else None
        self.pool = pool or ThreadPoolExecutor(8, thread_name_prefix="cj-import")
        self._lock = threading.Lock()
        self.s3_objects_read = 0
        """S3 objects read so far (the summary's count)."""

    def _ddb(self, fn: Callable[[], Any], what: str) -> Any:
        return aws.call(fn, service=aws.DYNAMODB, resource=self.table, what=what)

    # -- what is there -------------------------------------------------------------

    def threads(self) -> list[str]:
        """Every thread of the table (a keys-only Scan), sorted.

        Raises CorruptRecordError for an item that is none of DynamoDBSaver's."""
        found: set[str] = set()
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.table, ProjectionExpression="#pk, #sk",
            ExpressionAttributeNames={"#pk": "PK", "#sk": "SK"})
        for page in aws.paginate(pages, service=aws.DYNAMODB, resource=self.table,
                                 what="list the DynamoDBSaver table's threads (Scan)",
                                 denied_hint="--all needs dynamodb:Scan on the source table"):
            for item in page.get("Items", []):
                pk = item["PK"].get("S", "")
                if pk.startswith(CHECKPOINT_PREFIX):
                    found.add(pk[len(CHECKPOINT_PREFIX):])
                elif not pk.startswith((WRITES_PREFIX, CHUNK_PREFIX)):
                    raise _unrecognised((pk, item["SK"].get("S", "")),
                                        "its PK starts with none of CHECKPOINT_, WRITES_, CHUNK_")
        return sorted(found)

    def _query(self, pk: str, what: str) -> Iterator[dict[str, Any]]:
        kw: dict[str, Any] = {
            "TableName": self.table, "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": "PK"},
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            # The source may still be written to: read what was acknowledged.
            "ConsistentRead": True,
        }
        while True:
            page = self._ddb(lambda: self.dynamodb.query(**kw), what)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def exists(self, thread_id: str) -> bool:
        """Whether the table holds a checkpoint of ``thread_id`` (one small Query)."""
        page = self._ddb(lambda: self.dynamodb.query(
            TableName=self.table, KeyConditionExpression="#pk = :pk", Limit=1,
            ExpressionAttributeNames={"#pk": "PK"}, ProjectionExpression="#pk",
            ExpressionAttributeValues={":pk": {"S": CHECKPOINT_PREFIX + thread_id}},
        ), f"look up thread {thread_id!r}")
        return bool(page.get("Items"))

    def checkpoints(self, thread_id: str) -> list[CheckpointItem]:
        """The checkpoint items of a thread, every namespace (one Query, paged)."""
        return [checkpoint_item(thread_id, item) for item in self._query(
            CHECKPOINT_PREFIX + thread_id, f"read thread {thread_id!r}'s checkpoints")]

    def writes(self, cp: CheckpointItem) -> list[WriteItem]:
        """The pending-write items of a checkpoint (one Query on its partition)."""
        pk = f"{WRITES_PREFIX}{cp.thread_id}#{cp.checkpoint_ns}#{cp.checkpoint_id}"
        return [write_item(item, cp.checkpoint_id)
                for item in self._query(pk, f"read the writes of checkpoint {cp.checkpoint_id}")]

    def writes_of(self, cps: Iterable[CheckpointItem]) -> dict[str, list[WriteItem]]:
        """``writes`` of several checkpoints, their Queries in parallel; by checkpoint id."""
        futures = {cp.checkpoint_id: self.pool.submit(self.writes, cp) for cp in cps}
        return {cid: f.result() for cid, f in futures.items()}

    # -- payloads ------------------------------------------------------------------

    def payloads(self, wanted: Iterable[Payload]) -> dict[Key, bytes | None]:
        """The stored bytes of each payload, by the key of the item pointing to it; None
        for one that is missing (DynamoDBSaver skips its item). Table payloads by
        BatchGetItem (100 keys a request), S3 objects in parallel."""
        wanted = list(wanted)
        in_table = [p for p in wanted if p.location == "DYNAMODB"]
        in_s3 = [p for p in wanted if p.location == "S3"]
        if in_s3 and not self.bucket:
            raise errors.NotConfiguredError(
                f"the payload of DynamoDBSaver item {where(in_s3[0].key)} is in S3 "
                f"({in_s3[0].ref_key!r}): pass --source-bucket (source_bucket= in Python), "
                "the bucket_name of the DynamoDBSaver's s3_offload_config")
        s3_futures = {p.key: self.pool.submit(self._s3_object, p.ref_key) for p in in_s3}
        out: dict[Key, bytes | None] = {}
        chunks = self._chunks(sorted({p.ref_key for p in in_table}))
        for p in in_table:
            out[p.key] = chunks.get(p.ref_key)
        for key, f in s3_futures.items():
            out[key] = f.result()
        return out

    def _chunks(self, ref_keys: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for start in range(0, len(ref_keys), BATCH_GET_MAX):
            request: dict[str, Any] = {self.table: {
                "Keys": [{"PK": {"S": k}, "SK": {"S": CHUNK_SK}}
                         for k in ref_keys[start:start + BATCH_GET_MAX]],
                "ProjectionExpression": "#pk, #payload",
                "ExpressionAttributeNames": {"#pk": "PK", "#payload": "payload"},
                "ConsistentRead": True,
            }}
            for attempt in range(UNPROCESSED_ROUNDS):
                answer = self._ddb(lambda: self.dynamodb.batch_get_item(RequestItems=request),
                                   "read DynamoDBSaver payloads (BatchGetItem)")
                for item in answer.get("Responses", {}).get(self.table, []):
                    payload = item.get("payload", {}).get("B")
                    if payload is not None:
                        found[item["PK"]["S"]] = bytes(payload)
                request = dict(answer.get("UnprocessedKeys") or {})
                if not request:
                    break
                # DynamoDB asks for back-off before the unprocessed keys are sent again.
                time.sleep(_BACKOFF_S * 2 ** attempt)
            else:
                raise errors.TransientError(
                    f"read DynamoDBSaver payloads: DynamoDB {self.table!r} left keys "
                    f"unprocessed through {UNPROCESSED_ROUNDS} rounds. Retry later (the "
                    "import resumes where it stopped).")
        return found

    def _s3_object(self, ref_key: str) -> bytes | None:
        bucket = self.bucket or ""
        key = f"{self.key_prefix}/{ref_key}" if self.key_prefix else ref_key
        try:
            body: bytes = aws.call(
                lambda: self.s3.get_object(Bucket=bucket, Key=key)["Body"].read(),
                service=aws.S3, resource=f"{bucket}/{key}",
                what="read a DynamoDBSaver payload offloaded to S3",
                denied_hint="the import needs s3:GetObject on the source bucket")
        except errors.ObjectNotFoundError:
            return None
        with self._lock:
            self.s3_objects_read += 1
        return body

    def close(self) -> None:
        self.pool.shutdown(wait=False)
