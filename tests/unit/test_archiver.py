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
from collections.abc import Iterator
from typing import Any

import boto3
import fastavro
import pytest
from moto import mock_aws

from checkpoint_journal import _keys, schemas
from checkpoint_journal.errors import BucketNotFoundError, CorruptRecordError, TransientError
from checkpoint_journal.local._events import to_stream_record
from checkpoint_journal.saver._items import metadata_attrs, plan_items
from checkpoint_journal.stream_handlers import _archiver
from checkpoint_journal.stream_handlers._archiver import (
    AVRO_CODEC,
    RECORD_ARCHIVE,
    SCHEMAS_METADATA_KEY,
    STREAM_METADATA_KEY,
    Archiver,
    archive_record,
    container,
    object_key,
    plan_file,
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
    assert info.record == "archive_event" and info.version == 1
    assert schemas.registry()[info.fingerprint] is info
    names = [f["name"] for f in info.raw["fields"]]
    # The fields the brief promises consumers, by name.
    assert {"thread_id", "checkpoint_ns", "checkpoint_id", "kind", "event_name",
            "sequence_number", "approximate_creation_time", "written_at", "fingerprint",
            "codec", "body", "metadata_json", "run_id", "source", "step"} <= set(names)


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


# -- the handler, on in-process S3 ------------------------------------------------------------


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(var, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _keys_in(s3: Any, prefix: str = "") -> dict[str, str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in listed}


ENV = {"BUCKET_NAME": BUCKET, "AWS_REGION": "us-east-1"}


def _batch() -> dict[str, Any]:
    (c1,) = _checkpoint_item("c1", metadata=METADATA)
    return {"Records": [_record(c1, 11), _record(_writes_item("c1", "t"), 12)]}


def test_a_retried_batch_overwrites_its_file(s3: Any) -> None:
    handle = make_handler(ENV)
    event = _batch()
    first = handle(event, None)
    assert first["archived"] == 2 and first["key"].startswith("archive/date=2026-01-01/")
    objects = _keys_in(s3)
    assert list(objects) == [first["key"]]
    again = handle(_batch(), None)
    assert again == first
    assert _keys_in(s3) == objects  # same key, same bytes (same ETag), nothing added
    body = s3.get_object(Bucket=BUCKET, Key=first["key"])["Body"].read()
    assert [r["sequence_number"] for r in _archiver.read_container(body)] == ["11", "12"]


def test_a_batch_with_nothing_to_archive_writes_nothing(s3: Any) -> None:
    view = _keyed("T#t", _keys.view_sk("", "c1"), "V")
    assert make_handler(ENV)({"Records": [_record(view, 1)]}, None) == {
        "key": None, "archived": 0, "skipped": 1}
    assert _keys_in(s3) == {}


def test_a_missing_bucket_fails_the_whole_batch(s3: Any) -> None:
    handle = make_handler({**ENV, "BUCKET_NAME": "no-such-archive-bucket"})
    with pytest.raises(BucketNotFoundError, match="BUCKET_NAME"):
        handle(_batch(), None)
    assert _keys_in(s3) == {}


def test_an_unreachable_s3_fails_the_whole_batch_and_logs_no_payload(
    s3: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.config import Config

    dead = boto3.client(
        "s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",  # discard port
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    handle = make_handler({**ENV, "CHECKPOINT_JOURNAL_ARCHIVER_LOG_LEVEL": "INFO"},
                          Archiver(s3=dead, bucket=BUCKET))
    with caplog.at_level(logging.INFO), pytest.raises(TransientError, match="Lambda retries"):
        handle(_batch(), None)
    assert _keys_in(s3) == {}
    (line,) = [r for r in caplog.records if r.getMessage() == "batch not archived"]
    assert line.records == 2 and line.error == "TransientError"  # type: ignore[attr-defined]
    assert (line.first_sequence, line.last_sequence) == ("11", "12")  # type: ignore[attr-defined]
    # Sequence numbers and counts, never thread ids, metadata or bodies.
    logged = caplog.text + capsys.readouterr().out + repr([r.__dict__ for r in caplog.records])
    for secret in (SECRET, THREAD, "run-1"):
        assert secret not in logged


def test_the_handler_needs_a_bucket() -> None:
    with pytest.raises(RuntimeError, match="BUCKET_NAME"):
        make_handler({})
