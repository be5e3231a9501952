"""The archiver's pure core (stream_handlers/_archiver.py) and its handler on in-process
moto S3.

Stream records are built the way they reach the function: journal items laid out by the
saver's own ``plan_items``, made Lambda-shaped by the stream runner's ``to_stream_record``
(base64 binaries, epoch-second creation times).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
from typing import Any

import boto3
import botocore.exceptions
import fastavro
import pytest

from checkpoint_journal import schemas
from checkpoint_journal._core import archive as _archive
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import shred as _shred
from checkpoint_journal._core.archive import (
    AVRO_CODEC,
    RECORD_ARCHIVE,
    SCHEMAS_METADATA_KEY,
    STREAM_METADATA_KEY,
    container,
    object_key,
)
from checkpoint_journal._core.items import metadata_attrs, plan_items
from checkpoint_journal.errors import (
    BucketNotFoundError,
    CorruptRecordError,
    TransientError,
)
from checkpoint_journal.local._events import to_stream_record
from checkpoint_journal.stream_handlers._archiver import (
    Archiver,
    archive_record,
    needs_key,
    plan_file,
    seal_record,
)
from checkpoint_journal.stream_handlers.archiver import make_handler

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/journal/stream/2026-01-01T00:00:00.000"
# 2026-01-01T23:59:59Z: a batch starting there crosses midnight.
LAST_SECOND = 1767311999
BUCKET = "archive-unit"
THREAD = "user#42%"  # needs escaping: '#' and '%'
SECRET = "4111-1111-1111-1111"  # a payload that must never reach a log line


def _checkpoint_item(cid: str, *, metadata: dict[str, Any], payload: bytes = b"x" * 10,
                     max_item_bytes: int = 400_000) -> list[dict[str, Any]]:
    """The items of a checkpoint event, chunks first, commit last."""
    record = {
        "thread_id": THREAD, "checkpoint_ns": "sub:1", "checkpoint_id": cid,
        "parent_checkpoint_id": None, "written_at": 1_767_000_000_000,
        "checkpoint": {"type": "msgpack", "data": payload},
        "metadata": {"type": "json", "data": json.dumps(metadata).encode()},
        "blobs": [], "channel_versions": [],
    }
    encoded = schemas.encode(schemas.RECORD_CHECKPOINT, record, compress=False)
    plan = plan_items(
        _keys.thread_pk(THREAD), _keys.checkpoint_sk("sub:1", cid), _keys.KIND_CHECKPOINT,
        encoded, written_at_ms=1_767_000_000_000, expires_at=None,
        extra=metadata_attrs(metadata), max_item_bytes=max_item_bytes,
    )
    return [*plan.chunks, plan.commit]


def _writes_item(cid: str, task: str) -> dict[str, Any]:
    record = {
        "thread_id": THREAD, "checkpoint_ns": "sub:1", "checkpoint_id": cid, "task_id": task,
        "task_path": "", "written_at": 1_767_000_000_001,
        "writes": [{"channel": "messages", "idx": 0,
                    "value": {"type": "json", "data": json.dumps([SECRET]).encode()}}],
    }
    encoded = schemas.encode(schemas.RECORD_WRITES, record, compress=True)
    return plan_items(
        _keys.thread_pk(THREAD), _keys.writes_sk("sub:1", cid, task, "0001"),
        _keys.KIND_WRITES, encoded, written_at_ms=1_767_000_000_001, expires_at=None,
    ).commit


def _tombstone_item() -> dict[str, Any]:
    return {
        "PK": {"S": _keys.thread_pk(THREAD)}, "SK": {"S": _keys.tombstone_sk("sub:1")},
        "kind": {"S": _keys.KIND_TOMBSTONE}, "written_at": {"N": "1767000000002"},
        "expires_at": {"N": "1767600000"},
    }


def _record(item: dict[str, Any], seq: int, *, event: str = "INSERT",
            at: float = 1_767_225_600) -> dict[str, Any]:
    """The Lambda-shaped stream record of a put of ``item``."""
    keys = {"PK": item["PK"], "SK": item["SK"]}
    raw: dict[str, Any] = {
        "eventID": f"ev-{seq}", "eventName": event,
        "dynamodb": {
            "ApproximateCreationDateTime": dt.datetime.fromtimestamp(at, tz=dt.UTC),
            "Keys": keys, "SequenceNumber": str(seq), "SizeBytes": 100,
            "StreamViewType": "NEW_IMAGE",
        },
    }
    if event != "REMOVE":
        raw["dynamodb"]["NewImage"] = item
    return dict(to_stream_record(raw, region="us-east-1", stream_arn=STREAM_ARN,
                                 shard_id="shardId-1").record)


METADATA = {"source": "loop", "step": 3, "run_id": "run-1", "parents": {}, "user": SECRET}


# -- the schema ----------------------------------------------------------------------------


def test_the_archive_schema_is_registered_like_the_journal_schemas() -> None:
    info = schemas.current(RECORD_ARCHIVE)
    assert info.record == "archive_event" and info.version == 2
    assert schemas.registry()[info.fingerprint] is info
    names = [f["name"] for f in info.raw["fields"]]
    # The fields the brief promises consumers, by name; v2 adds the sealing.
    assert {"thread_id", "checkpoint_ns", "checkpoint_id", "kind", "event_name",
            "sequence_number", "approximate_creation_time", "written_at", "fingerprint",
            "codec", "body", "metadata_json", "run_id", "source", "step", "key_id",
            "metadata_sealed"} <= set(names)
    # One record across versions: Avro resolves a v1 file against v2 by full name, and
    # every field v2 adds has a default.
    (v1,) = [i for i in schemas.registry().values()
             if i.record == RECORD_ARCHIVE and i.version == 1]
    assert (v1.raw["name"], v1.raw["namespace"]) == (info.raw["name"], info.raw["namespace"])
    old = {f["name"] for f in v1.raw["fields"]}
    assert all("default" in f for f in info.raw["fields"] if f["name"] not in old)


# -- one record ----------------------------------------------------------------------------


def test_a_checkpoint_event_is_archived_with_its_body_as_stored() -> None:
    (item,) = _checkpoint_item("c1", metadata=METADATA)
    rec = archive_record(_record(item, 7))
    assert rec is not None
    assert rec["thread_id"] == THREAD and rec["checkpoint_ns"] == "sub:1"
    assert rec["checkpoint_id"] == "c1" and rec["kind"] == "C" and rec["task_id"] is None
    assert (rec["pk"], rec["sk"]) == (item["PK"]["S"], item["SK"]["S"])
    assert rec["event_name"] == "INSERT" and rec["sequence_number"] == "7"
    assert rec["event_id"] == "ev-7"
    assert rec["approximate_creation_time"] == 1_767_225_600_000
    assert rec["written_at"] == 1_767_000_000_000
    assert rec["fingerprint"] == item["fp"]["S"] and rec["codec"] == item["codec"]["S"]
    assert rec["body"] == item["body"]["B"]
    decoded = schemas.decode(schemas.RECORD_CHECKPOINT, rec["body"], rec["fingerprint"],
                             rec["codec"])
    assert decoded["checkpoint_id"] == "c1"
    # Metadata as plain fields, and as canonical JSON of the item's md attribute.
    assert (rec["run_id"], rec["source"], rec["step"]) == ("run-1", "loop", 3)
    assert json.loads(rec["metadata_json"]) == METADATA
    assert rec["metadata_json"] == json.dumps(METADATA, sort_keys=True, separators=(",", ":"))


def test_a_writes_event_names_its_task() -> None:
    item = _writes_item("c1", "task#1")
    rec = archive_record(_record(item, 8))
    assert rec is not None
    assert rec["kind"] == "W" and rec["task_id"] == "task#1" and rec["checkpoint_id"] == "c1"
    assert rec["metadata_json"] is None and rec["step"] is None
    decoded = schemas.decode(schemas.RECORD_WRITES, rec["body"], rec["fingerprint"], rec["codec"])
    assert decoded["task_id"] == "task#1"


@pytest.mark.parametrize("event", ["INSERT", "MODIFY"])
def test_a_tombstone_is_archived_without_a_body(event: str) -> None:
    # MODIFY: a later delete_thread wrote the namespace's tombstone again.
    rec = archive_record(_record(_tombstone_item(), 9, event=event))
    assert rec is not None
    assert rec["kind"] == "X" and rec["event_name"] == event
    assert rec["checkpoint_id"] is None and rec["checkpoint_ns"] == "sub:1"
    assert rec["body"] is None and rec["fingerprint"] is None and rec["codec"] is None
    assert rec["written_at"] == 1_767_000_000_002


def _keyed(pk: str, sk: str, kind: str) -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}, "kind": {"S": kind}, "body": {"B": b"x"}}


@pytest.mark.parametrize(
    "record",
    [
        # Removals: a deletion is archived as its tombstone.
        _record(_tombstone_item(), 1, event="REMOVE"),
        # The projector's items and chunks.
        _record(_keyed("T#t", _keys.view_sk("", "c1"), "V"), 1),
        _record(_keyed("T#t", _keys.head_sk(""), "H"), 1),
        _record(_keyed("T#t", _keys.index_sk("", "c1", "abc"), "I"), 1),
        _record(_keyed("T#t", _keys.chunk_sk(_keys.checkpoint_sk("", "c1"), 0), "P"), 1),
        # Items that are not the journal's (another application's, a test's).
        _record(_keyed("fault-ok", "0", "C"), 1),
        _record(_keyed("T#t", "J#x", "C"), 1),
        # A key that says checkpoint with an item that says otherwise.
        _record(_keyed("T#t", _keys.checkpoint_sk("", "c1"), "W"), 1),
    ],
    ids=["remove", "view", "head", "index", "chunk", "foreign-pk", "foreign-sk", "kind-mismatch"],
)
def test_what_is_not_a_journal_event_is_left_out(record: dict[str, Any]) -> None:
    assert archive_record(record) is None


def test_a_body_above_the_inline_limit_is_referenced() -> None:
    (item,) = _checkpoint_item("c1", metadata={}, payload=bytes(range(256)) * 8)
    body = item["body"]["B"]
    rec = archive_record(_record(item, 1), inline_limit=len(body) - 1)
    assert rec is not None
    assert rec["body"] == {"digest": hashlib.sha256(body).hexdigest(), "size": len(body),
                           "chunks": 0}
    kept = archive_record(_record(item, 1), inline_limit=len(body))
    assert kept is not None and kept["body"] == body


def test_a_chunked_record_is_referenced_by_its_commit_items_digest() -> None:
    items = _checkpoint_item("c1", metadata={}, payload=bytes(range(256)) * 1000,
                             max_item_bytes=64 * 1024)
    *chunks, commit = items
    assert len(chunks) >= 2 and "body" not in commit
    rec = archive_record(_record(commit, 1))
    assert rec is not None
    assert rec["body"] == {"digest": commit["digest"]["S"], "size": None,
                           "chunks": len(chunks)}
    # The digest is the SHA-256 of the whole stored body, as for an inline reference.
    whole = b"".join(c["body"]["B"] for c in chunks)
    assert hashlib.sha256(whole).hexdigest() == commit["digest"]["S"]
    assert rec["fingerprint"] == commit["fp"]["S"]
    # The chunks themselves are never archived.
    assert all(archive_record(_record(c, 2)) is None for c in chunks)


def test_a_damaged_body_fails_rather_than_archive_garbage() -> None:
    (item,) = _checkpoint_item("c1", metadata={})
    record = _record(item, 1)
    record["dynamodb"]["NewImage"]["body"]["B"] = "not base64!"
    with pytest.raises(CorruptRecordError, match="stream record 1"):
        archive_record(record)


# -- one batch -----------------------------------------------------------------------------


def test_the_object_key_is_the_batch_date_and_sequence_range() -> None:
    (item,) = _checkpoint_item("c1", metadata={})
    records = [_record(item, 1_100_000_000_000_000_000_103, at=LAST_SECOND),
               _record(item, 1_100_000_000_000_000_000_101, at=LAST_SECOND),
               _record(item, 1_100_000_000_000_000_000_250, at=LAST_SECOND + 1)]
    key = object_key(records)
    # The first record's day (UTC), though the last is past midnight; the range from the
    # smallest to the largest sequence number, 40 digits each so that keys sort.
    assert key == (
        "archive/date=2026-01-01/"
        "0000000000000000001100000000000000000101-0000000000000000001100000000000000000250.avro"
    )
    assert object_key(list(reversed(records))) == key
    with pytest.raises(ValueError):
        object_key([])


def test_a_batch_keeps_stream_order_and_counts_what_it_leaves_out() -> None:
    (c1,) = _checkpoint_item("c1", metadata={})
    w1 = _writes_item("c1", "t")
    view = _keyed(c1["PK"]["S"], _keys.view_sk("sub:1", "c1"), "V")
    planned = plan_file([_record(c1, 5), _record(view, 6), _record(w1, 7)])
    assert [r["sequence_number"] for r in planned.records] == ["5", "7"]
    assert planned.skipped == 1 and planned.stream_arn == STREAM_ARN
    assert planned.key is not None and planned.key.endswith(f"{5:040d}-{7:040d}.avro")
    nothing = plan_file([_record(view, 6)])
    assert nothing.key is None and nothing.records == [] and nothing.skipped == 1


def test_the_file_is_plain_avro_and_the_same_batch_gives_the_same_bytes() -> None:
    (c1,) = _checkpoint_item("c1", metadata=METADATA)
    records = [_record(c1, 5), _record(_writes_item("c1", "t"), 6), _record(_tombstone_item(), 7)]
    planned = plan_file(records)
    assert planned.key is not None
    body = container(planned.records, key=planned.key, stream_arn=STREAM_ARN)
    assert container(plan_file(records).records, key=planned.key, stream_arn=STREAM_ARN) == body
    # The sync marker comes from the key: another key, other bytes.
    assert container(planned.records, key="archive/other.avro", stream_arn=STREAM_ARN) != body

    reader = fastavro.reader(io.BytesIO(body))
    assert reader.codec == AVRO_CODEC == "deflate"
    got = list(reader)
    assert [r["kind"] for r in got] == ["C", "W", "X"]
    assert got[0]["body"] == c1["body"]["B"]
    assert got[0]["approximate_creation_time"] == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    # The writer schemas of the bodies travel with the file, for readers without this
    # package; and the stream (hence table) a reference points into.
    meta = reader.metadata
    writers = json.loads(meta[SCHEMAS_METADATA_KEY])
    assert set(writers) == {c1["fp"]["S"], got[1]["fingerprint"]}
    assert writers[c1["fp"]["S"]]["name"] == "CheckpointEvent"
    assert meta[STREAM_METADATA_KEY] == STREAM_ARN
    for r in got[:2]:
        payload = fastavro.schemaless_reader(
            io.BytesIO(_unzstd(r["body"]) if r["codec"] == "zstd" else r["body"]),
            fastavro.parse_schema(writers[r["fingerprint"]]), None,
        )
        assert isinstance(payload, dict) and payload["checkpoint_id"] == "c1"


def _unzstd(body: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 24)


# -- sealing (pure) ---------------------------------------------------------------------------


KEY = _shred.new_key(THREAD, 1_767_000_000_000)


def _sealed_batch(*items: dict[str, Any]) -> list[dict[str, Any]]:
    planned = plan_file([_record(item, 20 + i) for i, item in enumerate(items)])
    return planned.records


def test_sealing_hides_body_and_metadata_and_keeps_the_plain_fields() -> None:
    (c1,) = _checkpoint_item("c1", metadata=METADATA)
    (clear,) = _sealed_batch(c1)
    sealed = seal_record(clear, KEY)
    # Plain: what Athena filters on and what verify checks the chain's shape with.
    for name in ("thread_id", "checkpoint_ns", "checkpoint_id", "kind", "task_id", "pk",
                 "sk", "event_name", "sequence_number", "event_id",
                 "approximate_creation_time", "written_at", "fingerprint", "codec",
                 "run_id", "source", "step"):
        assert sealed[name] == clear[name], name
    assert sealed["key_id"] == KEY.key_id and sealed["metadata_json"] is None
    assert set(sealed["body"]) == {"nonce", "ciphertext"}
    assert len(sealed["body"]["nonce"]) == 12
    encoded = container([sealed], key="archive/x.avro")
    assert SECRET.encode() not in encoded and SECRET.encode() not in json.dumps(
        sealed, default=repr).encode()
    body = _shred.unseal(KEY, _shred.Sealed(**sealed["body"]), pk=clear["pk"], sk=clear["sk"],
                         field_name="body")
    assert body == clear["body"]
    md = _shred.unseal(KEY, _shred.Sealed(**sealed["metadata_sealed"]), pk=clear["pk"],
                       sk=clear["sk"], field_name="metadata_json")
    assert md.decode() == clear["metadata_json"]


def test_sealed_content_cannot_move_to_another_record_or_field_or_key() -> None:
    (c1,) = _checkpoint_item("c1", metadata=METADATA)
    (clear,) = _sealed_batch(c1)
    sealed = _shred.Sealed(**seal_record(clear, KEY)["body"])
    for pk, sk, name, key in [
        (clear["pk"], _keys.checkpoint_sk("sub:1", "c2"), "body", KEY),  # another item
        ("T#other", clear["sk"], "body", KEY),  # another thread's partition
        (clear["pk"], clear["sk"], "metadata_json", KEY),  # another field
        (clear["pk"], clear["sk"], "body", _shred.new_key(THREAD, 0)),  # another key
    ]:
        with pytest.raises(_shred.UndecryptableError):
            _shred.unseal(key, sealed, pk=pk, sk=sk, field_name=name)
    flipped = bytearray(sealed.ciphertext)
    flipped[3] ^= 0x01
    with pytest.raises(_shred.UndecryptableError, match="altered"):
        _shred.unseal(KEY, _shred.Sealed(sealed.nonce, bytes(flipped)), pk=clear["pk"],
                      sk=clear["sk"], field_name="body")


def test_sealing_is_deterministic_per_content_so_retries_write_the_same_bytes() -> None:
    (c1,) = _checkpoint_item("c1", metadata=METADATA)
    (c2,) = _checkpoint_item("c2", metadata=METADATA)
    a, b = _sealed_batch(c1, c2)
    assert seal_record(a, KEY) == seal_record(dict(a), KEY)
    # Another item (or other content) never shares a nonce under the same key.
    assert seal_record(a, KEY)["body"]["nonce"] != seal_record(b, KEY)["body"]["nonce"]
    other = dict(a, body=a["body"] + b"!")
    assert seal_record(other, KEY)["body"]["nonce"] != seal_record(a, KEY)["body"]["nonce"]


def test_a_record_without_content_is_not_sealed_and_a_withheld_one_keeps_none() -> None:
    (c1,) = _checkpoint_item("c1", metadata=METADATA)
    tomb, clear = _sealed_batch(_tombstone_item(), c1)
    assert seal_record(tomb, KEY) == tomb and tomb["key_id"] is None
    withheld = seal_record(clear, None)
    assert withheld["key_id"] == _shred.WITHHELD_KEY_ID
    assert (withheld["body"], withheld["metadata_json"], withheld["metadata_sealed"]) == (
        None, None, None)
    assert withheld["sk"] == clear["sk"] and withheld["step"] == 3


def test_a_removal_marker_is_archived_like_the_journal_events() -> None:
    record = {"thread_id": THREAD, "checkpoint_ns": "sub:1", "written_at": 1_767_000_000_003,
              "reason": "prune", "removed": [{"checkpoint_id": "c0",
                                              "parent_checkpoint_id": None,
                                              "chain_hash": None}]}
    encoded = schemas.encode(schemas.RECORD_REMOVAL, record, compress=True)
    item = plan_items(_keys.thread_pk(THREAD), _keys.removal_sk("sub:1", "0001"),
                      _keys.KIND_REMOVAL, encoded, written_at_ms=1_767_000_000_003,
                      expires_at=None).commit
    rec = archive_record(_record(item, 30))
    assert rec is not None
    assert (rec["kind"], rec["checkpoint_ns"], rec["checkpoint_id"]) == ("R", "sub:1", None)
    assert rec["body"] == item["body"]["B"] and needs_key(rec)
    decoded = schemas.decode(schemas.RECORD_REMOVAL, rec["body"], rec["fingerprint"],
                             rec["codec"])
    assert decoded["removed"][0]["checkpoint_id"] == "c0"


def test_archive_key_items_are_ignored_by_both_handlers() -> None:
    # K# partitions are no thread's: the archiver leaves their puts out (they have no
    # kind, and the template's filters drop them before), and the projector, which gets
    # every REMOVE, ignores the deletion of a key.
    from checkpoint_journal.stream_handlers._lambda import journal_key
    from checkpoint_journal.stream_handlers._projector import doorbell

    item = _shred.key_item(KEY)
    for event in ("INSERT", "MODIFY", "REMOVE"):
        record = _record(item, 60, event=event)
        assert journal_key(record) is None
        assert archive_record(record) is None
        assert doorbell(record) is None


# -- the race rule, with an in-memory key store -----------------------------------------------


class FakeKeys:
    """ArchiveKeyStore in memory, with the journal items that exist, and a hook run
    between the archiver's read of a key and its creation (an interleaving)."""

    def __init__(self) -> None:
        self.keys: dict[str, _shred.ThreadKey] = {}
        self.items: set[tuple[str, str]] = set()
        self.tombstones: dict[tuple[str, str], int] = {}
        self.before_create: Any = None
        self.calls: list[str] = []

    def get_many(self, thread_ids: Any) -> dict[str, _shred.ThreadKey]:
        self.calls.append("get")
        return {t: self.keys[t] for t in thread_ids if t in self.keys}

    def create(self, thread_id: str) -> tuple[_shred.ThreadKey, bool]:
        self.calls.append("create")
        if self.before_create is not None:
            hook, self.before_create = self.before_create, None
            hook()
        if thread_id in self.keys:
            return self.keys[thread_id], False
        key = _shred.new_key(thread_id, 1)
        self.keys[thread_id] = key
        return key, True

    def delete(self, thread_id: str, *, key_id: str | None = None) -> bool:
        self.calls.append("delete")
        key = self.keys.get(thread_id)
        if key is None or (key_id is not None and key.key_id != key_id):
            return False
        del self.keys[thread_id]
        return True

    def existing(self, keys: Any) -> set[tuple[str, str]]:
        self.calls.append("existing")
        return {k for k in keys if k in self.items}

    def tombstone_times(self, keys: Any) -> dict[tuple[str, str], int]:
        return {k: self.tombstones[k] for k in keys if k in self.tombstones}

    def delete_thread(self, thread_id: str) -> None:
        """What the saver's delete_thread does: journal items first, the key last."""
        pk = _keys.thread_pk(thread_id)
        self.items = {i for i in self.items if i[0] != pk}
        self.keys.pop(thread_id, None)


def _sealer(store: FakeKeys) -> Archiver:
    return Archiver(s3=None, bucket=BUCKET, keys=store)  # type: ignore[arg-type]


def _events(*cids: str) -> list[dict[str, Any]]:
    items = [_checkpoint_item(cid, metadata=METADATA)[0] for cid in cids]
    return plan_file([_record(item, 40 + i) for i, item in enumerate(items)]).records


def _readable(batch: Any, store: FakeKeys) -> list[str]:
    """Checkpoint ids whose content a reader with the store's keys can open."""
    out = []
    for r in batch.records:
        key = store.keys.get(r["thread_id"])
        if key is not None and r["key_id"] == key.key_id:
            _shred.unseal(key, _shred.Sealed(**r["body"]), pk=r["pk"], sk=r["sk"],
                          field_name="body")
            out.append(r["checkpoint_id"])
    return out


def test_a_new_threads_key_is_created_once_and_cached() -> None:
    store = FakeKeys()
    records = _events("c1", "c2")
    store.items = {(r["pk"], r["sk"]) for r in records}
    archiver = _sealer(store)
    batch = archiver.seal(records)
    assert (batch.keys_created, batch.withheld) == (1, 0)
    assert _readable(batch, store) == ["c1", "c2"]
    # The next batch of the thread finds the key in the warm container's cache.
    store.calls.clear()
    assert archiver.seal(_events("c3")).keys_created == 0
    assert store.calls == []


def test_a_batch_of_a_thread_deleted_before_it_was_archived_leaves_no_key() -> None:
    # delete_thread ran to the end (items, then key) before the batch was archived or
    # while Lambda retried it: the archiver must not re-create a key that outlives it.
    store = FakeKeys()
    archiver = _sealer(store)
    batch = archiver.seal(_events("c1", "c2"))
    assert store.calls == ["get", "create", "existing", "delete"]
    assert store.keys == {} and len(archiver.cache) == 0
    assert batch.withheld == 2 and batch.keys_created == 0
    assert all(r["key_id"] == _shred.WITHHELD_KEY_ID and r["body"] is None
               and r["metadata_sealed"] is None for r in batch.records)


def test_delete_thread_between_the_key_read_and_its_creation() -> None:
    store = FakeKeys()
    records = _events("c1")
    store.items = {(r["pk"], r["sk"]) for r in records}
    store.before_create = lambda: store.delete_thread(THREAD)
    batch = _sealer(store).seal(records)
    assert store.keys == {} and batch.withheld == 1 and _readable(batch, store) == []


def test_delete_thread_after_the_existence_check_deletes_the_new_key() -> None:
    store = FakeKeys()
    records = _events("c1")
    store.items = {(r["pk"], r["sk"]) for r in records}
    batch = _sealer(store).seal(records)
    assert _readable(batch, store) == ["c1"]
    store.delete_thread(THREAD)  # it had not deleted the item yet: its key goes after
    assert _readable(batch, store) == []


def test_delete_thread_before_the_archiver_reads_the_key_it_is_about_to_delete() -> None:
    # Items deleted, key not yet: the archiver seals under the doomed key.
    store = FakeKeys()
    old = _shred.new_key(THREAD, 0)
    store.keys[THREAD] = old
    batch = _sealer(store).seal(_events("c1"))
    assert batch.records[0]["key_id"] == old.key_id and batch.keys_created == 0
    store.delete_thread(THREAD)
    assert _readable(batch, store) == []


def test_a_reused_thread_id_in_one_batch_withholds_the_deleted_incarnation() -> None:
    store = FakeKeys()
    old, new = _events("c1", "c2")
    store.items = {(new["pk"], new["sk"])}  # c1 was deleted, c2 written after
    batch = _sealer(store).seal([old, new])
    assert batch.withheld == 1 and _readable(batch, store) == ["c2"]
    assert batch.records[0]["key_id"] == _shred.WITHHELD_KEY_ID


def test_a_tombstone_evicts_the_cached_key_so_a_reused_thread_gets_a_new_one() -> None:
    store = FakeKeys()
    first = _events("c1")
    store.items = {(r["pk"], r["sk"]) for r in first}
    archiver = _sealer(store)
    archiver.seal(first)
    old = store.keys[THREAD]
    store.delete_thread(THREAD)
    tomb = plan_file([_record(_tombstone_item(), 50)]).records
    archiver.seal(tomb)
    again = _events("c9")
    store.items = {(r["pk"], r["sk"]) for r in again}
    batch = archiver.seal(again)
    assert store.keys[THREAD].key_id != old.key_id and _readable(batch, store) == ["c9"]


def test_the_archiver_deletes_only_the_key_it_created() -> None:
    store = FakeKeys()
    archiver = _sealer(store)
    newer = _shred.new_key(THREAD, 2)
    original_existing = store.existing

    def existing(keys: Any) -> set[tuple[str, str]]:
        # Between the archiver's creation and its conditional delete, the thread's key
        # is replaced (deleted, and re-created for a reused thread id).
        store.keys[THREAD] = newer
        return original_existing(keys)

    store.existing = existing  # type: ignore[method-assign]
    archiver.seal(_events("c1"))
    assert store.keys[THREAD] is newer


def test_the_key_cache_is_bounded_in_size_and_age() -> None:
    now = [0.0]
    cache = _shred.KeyCache(max_entries=2, max_age_s=10, clock=lambda: now[0])
    keys = [_shred.new_key(f"t{i}", 0) for i in range(3)]
    for k in keys:
        cache.put(k)
    assert len(cache) == 2 and cache.get("t0") is None and cache.get("t2") is keys[2]
    now[0] = 11
    assert cache.get("t2") is None and cache.get("t1") is None
    assert "key=" not in repr(keys[0]) and keys[0].key.hex() not in repr(keys[0])


# -- the handler, on in-process S3 and DynamoDB -----------------------------------------------

TABLE = "archive-unit-journal"


def _keys_in(s3: Any, prefix: str = "") -> dict[str, str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in listed}


ENV = {"BUCKET_NAME": BUCKET, "TABLE_NAME": TABLE, "AWS_REGION": "us-east-1"}


def _batch_items() -> list[dict[str, Any]]:
    (c1,) = _checkpoint_item("c1", metadata=METADATA)
    return [c1, _writes_item("c1", "t")]


def _batch(ddb: Any = None) -> dict[str, Any]:
    """The batch; with ``ddb``, its items put in the table first (as the saver did)."""
    items = _batch_items()
    for item in items if ddb is not None else []:
        ddb.put_item(TableName=TABLE, Item=item)
    return {"Records": [_record(item, 11 + i) for i, item in enumerate(items)]}


def test_a_retried_batch_overwrites_its_file(aws: tuple[Any, Any]) -> None:
    s3, ddb = aws
    handle = make_handler(ENV)
    event = _batch(ddb)
    first = handle(event, None)
    assert first["archived"] == 2 and first["key"].startswith("archive/date=2026-01-01/")
    assert first["withheld"] == 0
    objects = _keys_in(s3)
    assert list(objects) == [first["key"]]
    # Lambda retrying the batch, in this warm container and in a cold one.
    assert handle(_batch(), None) == first
    assert make_handler(ENV)(_batch(), None) == first
    assert _keys_in(s3) == objects  # same key, same bytes (same ETag), nothing added
    body = s3.get_object(Bucket=BUCKET, Key=first["key"])["Body"].read()
    records = _archive.read_records(body)
    assert [r["sequence_number"] for r in records] == ["11", "12"]
    # One key for the thread, in the table's reserved partition, that sealed both.
    (item,) = ddb.scan(TableName=TABLE, ScanFilter={
        "PK": {"AttributeValueList": [{"S": "K#"}], "ComparisonOperator": "BEGINS_WITH"}})["Items"]
    assert item["PK"]["S"] == _shred.key_pk(THREAD) and item["SK"]["S"] == "K"
    assert "kind" not in item  # the stream filters never deliver it
    assert {r["key_id"] for r in records} == {item["key_id"]["S"]}
    assert SECRET.encode() not in body


def test_a_batch_of_a_deleted_thread_is_archived_without_content(aws: tuple[Any, Any]) -> None:
    s3, ddb = aws
    answer = make_handler(ENV)(_batch(), None)  # the items are no longer in the table
    assert answer["archived"] == 2 and answer["withheld"] == 2
    assert ddb.scan(TableName=TABLE)["Items"] == []  # the key it created went again
    body = s3.get_object(Bucket=BUCKET, Key=answer["key"])["Body"].read()
    assert {r["key_id"] for r in _archive.read_records(body)} == {_shred.WITHHELD_KEY_ID}


def test_the_dynamo_key_store(aws: tuple[Any, Any]) -> None:
    _, ddb = aws
    store = _shred.DynamoKeyStore(ddb, TABLE)
    assert store.get(THREAD) is None
    key, created = store.create(THREAD)
    assert created and store.get(THREAD) == key
    again, created = store.create(THREAD)  # a concurrent creator: the first key stands
    assert not created and again == key
    assert store.get_many([THREAD, "other"]) == {THREAD: key}
    ddb.put_item(TableName=TABLE, Item=_batch_items()[0])
    event = (_batch_items()[0]["PK"]["S"], _batch_items()[0]["SK"]["S"])
    assert store.existing([event, ("T#nope", "J##c1"), event]) == {event}
    assert not store.delete(THREAD, key_id="0" * 16)  # not the key it names: kept
    assert store.delete(THREAD, key_id=key.key_id) and store.get(THREAD) is None
    assert not store.delete(THREAD)
    ddb.put_item(TableName=TABLE, Item={**_shred.key_item(key), "key": {"B": b"short"}})
    with pytest.raises(CorruptRecordError, match="damaged"):
        store.get(THREAD)


def test_a_batch_with_nothing_to_archive_writes_nothing(aws: tuple[Any, Any]) -> None:
    s3, _ = aws
    view = _keyed("T#t", _keys.view_sk("", "c1"), "V")
    assert make_handler(ENV)({"Records": [_record(view, 1)]}, None) == {
        "key": None, "archived": 0, "skipped": 1, "withheld": 0}
    assert _keys_in(s3) == {}


def test_a_missing_bucket_fails_the_whole_batch(aws: tuple[Any, Any]) -> None:
    s3, ddb = aws
    handle = make_handler({**ENV, "BUCKET_NAME": "no-such-archive-bucket"})
    with pytest.raises(BucketNotFoundError, match="BUCKET_NAME"):
        handle(_batch(ddb), None)
    assert _keys_in(s3) == {}


def test_an_unreachable_s3_fails_the_whole_batch_and_logs_no_payload(
    aws: tuple[Any, Any], caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from botocore.config import Config

    s3, ddb = aws
    dead = boto3.client("s3", region_name="us-east-1",
                        config=Config(retries={"total_max_attempts": 1}))

    def _unreachable(**kwargs: Any) -> None:  # no connection is even attempted
        raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    dead.meta.events.register_first("before-send.s3.*", _unreachable)
    store = _shred.DynamoKeyStore(ddb, TABLE)
    handle = make_handler({**ENV, "CHECKPOINT_JOURNAL_ARCHIVER_LOG_LEVEL": "INFO"},
                          Archiver(s3=dead, bucket=BUCKET, keys=store))
    with caplog.at_level(logging.INFO), pytest.raises(TransientError, match="Lambda retries"):
        handle(_batch(ddb), None)
    assert _keys_in(s3) == {}
    (line,) = [r for r in caplog.records if r.getMessage() == "batch not archived"]
    assert line.records == 2 and line.error == "TransientError"  # type: ignore[attr-defined]
    assert (line.first_sequence, line.last_sequence) == ("11", "12")  # type: ignore[attr-defined]
    # A batch that goes through logs its counts, never its content or the key.
    good = make_handler({**ENV, "CHECKPOINT_JOURNAL_ARCHIVER_LOG_LEVEL": "INFO"})
    # Powertools loggers of one service share a logging.Logger, configured by the first
    # handler this test process built: set its level here.
    with caplog.at_level(logging.INFO, logger="checkpoint-journal-archiver"):
        good(_batch(), None)
    key = store.get(THREAD)
    assert key is not None
    # Sequence numbers and counts, never thread ids, metadata, bodies or keys.
    logged = caplog.text + capsys.readouterr().out + repr([r.__dict__ for r in caplog.records])
    assert "batch archived" in logged
    for secret in (SECRET, THREAD, "run-1", key.key.hex(), repr(key.key)):
        assert secret not in logged


def test_the_handler_needs_a_bucket_and_a_table() -> None:
    with pytest.raises(RuntimeError, match="BUCKET_NAME"):
        make_handler({})
    with pytest.raises(RuntimeError, match="TABLE_NAME"):
        make_handler({"BUCKET_NAME": BUCKET})
