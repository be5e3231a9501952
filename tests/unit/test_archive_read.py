"""The archive reader (``_archive_read``) on in-process moto S3 and DynamoDB.

Archive files are made by the real archiver (``Archiver.archive``) from Lambda-shaped
stream records of journal items laid out by the saver's own ``plan_items`` (the helpers
of ``test_archiver``), or, for the damage and schema-evolution cases, written directly
with fastavro.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from typing import Any

import fastavro
import pytest

from checkpoint_journal import schemas
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import shred as _shred
from checkpoint_journal._core.archive import (
    RECORD_ARCHIVE,
    ArchiveDamage,
    list_files,
    read_container,
)
from checkpoint_journal._core.archive_read import ArchivedEvent, iter_archive
from checkpoint_journal._core.items import plan_items
from checkpoint_journal.errors import CorruptRecordError
from checkpoint_journal.stream_handlers._archiver import Archiver, archive_record
from tests.unit.test_archiver import (
    BUCKET,
    METADATA,
    SECRET,
    TABLE,
    THREAD,
    _checkpoint_item,
    _record,
    _tombstone_item,
    _writes_item,
)

DAY = 86_400


def _archive(s3: Any, ddb: Any, items: list[dict[str, Any]], *, first_seq: int = 100,
             at: float = 1_767_225_600, in_table: bool = True) -> str:
    """Archive ``items`` as one batch (put in the table first, as the saver does)."""
    for item in items if in_table else []:
        ddb.put_item(TableName=TABLE, Item=item)
    archiver = Archiver(s3=s3, bucket=BUCKET, keys=_shred.DynamoKeyStore(ddb, TABLE))
    written = archiver.archive([_record(item, first_seq + i, at=at)
                                for i, item in enumerate(items)])
    assert written.key is not None
    return written.key


def _read(s3: Any, ddb: Any = None, **kw: Any) -> list[ArchivedEvent]:
    damaged: list[ArchiveDamage] = kw.pop("damaged", [])
    events = list(iter_archive(s3, BUCKET, dynamodb=ddb, table=TABLE if ddb else None,
                               damaged=damaged, **kw))
    return events


def _put_file(s3: Any, key: str, records: list[dict[str, Any]], *, schema: Any = None,
              codec: str = "deflate", sync_interval: int = 16000) -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, schema or schemas.current(RECORD_ARCHIVE).parsed, records,
                    codec=codec, sync_interval=sync_interval)
    s3.put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())
    return buf.getvalue()


# -- decryption, shredding, tampering ----------------------------------------------------------


def test_sealed_events_read_back_decrypted_and_decoded(aws: tuple[Any, Any]) -> None:
    s3, ddb = aws
    (c1,) = _checkpoint_item("c1", metadata=METADATA)
    w1 = _writes_item("c1", "task#1")
    for item in (c1, w1):  # the tombstone's record is archived; it hides nothing here
        ddb.put_item(TableName=TABLE, Item=item)
    key = _archive(s3, ddb, [c1, w1, _tombstone_item()], in_table=False)
    raw = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert SECRET.encode() not in raw
    cp, writes, tomb = _read(s3, ddb)
    assert (cp.file, cp.position, writes.position, tomb.position) == (key, 0, 1, 2)
    assert (cp.state, writes.state, tomb.state) == ("inline", "inline", "none")
    assert cp.body == c1["body"]["B"] and writes.body == w1["body"]["B"]
    assert json.loads(cp.metadata_json or "") == METADATA
    assert (cp.thread_id, cp.checkpoint_ns, cp.checkpoint_id, cp.kind) == (
        THREAD, "sub:1", "c1", "C")
    assert (cp.run_id, cp.source, cp.step) == ("run-1", "loop", 3)
    assert cp.approximate_creation_ms == 1_767_225_600_000
    assert cp.written_at_ms == 1_767_000_000_000
    record = cp.record()
    assert record is not None and json.loads(record["metadata"]["data"]) == METADATA
    assert writes.task_id == "task#1" and writes.record()["task_id"] == "task#1"  # type: ignore[index]
    assert tomb.record() is None and tomb.body is None and tomb.key_id is None


def test_without_the_table_sealed_content_is_no_key_access(aws: tuple[Any, Any]) -> None:
    s3, ddb = aws
    (c1,) = _checkpoint_item("c1", metadata=METADATA)
    ddb.put_item(TableName=TABLE, Item=c1)
    _archive(s3, ddb, [c1, _tombstone_item()], in_table=False)
    cp, tomb = _read(s3)
    assert (cp.state, cp.body, cp.metadata_json) == ("no-key-access", None, None)
    assert cp.key_id is not None and tomb.state == "none"


def test_a_deleted_key_shreds_the_threads_events_and_only_those(aws: tuple[Any, Any]) -> None:
    s3, ddb = aws
    (c1,) = _checkpoint_item("c1", metadata=METADATA)
    other = {**c1, "PK": {"S": _keys.thread_pk("other")}}
    record = schemas.decode(schemas.RECORD_CHECKPOINT, c1["body"]["B"], c1["fp"]["S"],
                            c1["codec"]["S"])
    other["body"] = {"B": schemas.encode(schemas.RECORD_CHECKPOINT,
                                         {**record, "thread_id": "other"},
                                         compress=False).body}
    _archive(s3, ddb, [c1, other])
    before = _read(s3, ddb)
    assert [e.state for e in before] == ["inline", "inline"]
    assert _shred.DynamoKeyStore(ddb, TABLE).delete(THREAD)
    mine, theirs = _read(s3, ddb)
    assert (mine.state, mine.body, mine.metadata_json, mine.record()) == (
        "shredded", None, None, None)
    # The plain fields stay: the event is still accounted for.
    assert (mine.sequence_number, mine.sk, mine.kind) == (before[0].sequence_number,
                                                          before[0].sk, "C")
    assert theirs.state == "inline" and theirs.body == before[1].body
    # A new key for a reused thread id does not open the old records.
    _shred.DynamoKeyStore(ddb, TABLE).create(THREAD)
    assert _read(s3, ddb)[0].state == "shredded"


def test_an_edited_sealed_body_is_undecryptable_and_the_rest_reads(aws: tuple[Any, Any]) -> None:
    s3, ddb = aws
    (c1,) = _checkpoint_item("c1", metadata=METADATA)
    w1 = _writes_item("c1", "t")
    key = _archive(s3, ddb, [c1, w1])
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    reader = fastavro.reader(io.BytesIO(body))
    records = list(reader)
    cipher = bytearray(records[0]["body"]["ciphertext"])
    cipher[5] ^= 0x20
    records[0]["body"]["ciphertext"] = bytes(cipher)
    # Someone who can write the bucket re-encodes the file with one byte changed.
    _put_file(s3, key, records)
    edited, untouched = _read(s3, ddb)
    assert (edited.state, edited.body, edited.metadata_json) == ("undecryptable", None, None)
    assert edited.detail is not None and "altered" in edited.detail
    assert untouched.state == "inline" and untouched.body == w1["body"]["B"]


def test_a_byte_flipped_in_the_raw_object_is_caught(aws: tuple[Any, Any]) -> None:
    s3, ddb = aws
    (c1,) = _checkpoint_item("c1", metadata=METADATA)
    w1 = _writes_item("c1", "t")
    key = _archive(s3, ddb, [c1, w1])
    records = list(fastavro.reader(io.BytesIO(
        s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())))
    # Uncompressed blocks, so the ciphertext's bytes are in the object as they are.
    raw = bytearray(_put_file(s3, key, records, codec="null"))
    at = bytes(raw).index(records[0]["body"]["ciphertext"]) + 7
    raw[at] ^= 0x01
    s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(raw))
    edited, untouched = _read(s3, ddb)
    assert edited.state == "undecryptable" and untouched.state == "inline"
    # In the archiver's deflate blocks an edit breaks the block instead: here its first
    # byte gets deflate's reserved block type, which no inflater accepts.
    raw = bytearray(_put_file(s3, key, records, sync_interval=1))
    sync = fastavro.reader(io.BytesIO(bytes(raw)))._header["sync"]
    at = bytes(raw).index(sync) + len(sync) + 1  # past the block's record count (1)
    while raw[at] & 0x80:  # past the block's byte size, a varint
        at += 1
    raw[at + 1] = 0b111  # final block, type 3 (reserved)
    s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(raw))
    damaged: list[ArchiveDamage] = []
    events = _read(s3, ddb, damaged=damaged)
    assert [(d.file, d.position) for d in damaged] == [(key, 0)]
    assert [(e.position, e.state) for e in events] == [(1, "inline")]


# -- damage never stops the iteration -----------------------------------------------------------


def _plain_records(n: int, thread: str = THREAD, *, at_s: int = 1_767_225_600,
                   first_seq: int = 1) -> list[dict[str, Any]]:
    return [{
        "thread_id": thread, "checkpoint_ns": "", "checkpoint_id": f"c{i}", "kind": "X",
        "task_id": None, "pk": _keys.thread_pk(thread), "sk": _keys.tombstone_sk(""),
        "event_name": "INSERT", "sequence_number": str(first_seq + i), "event_id": f"e{i}",
        "approximate_creation_time": (at_s + i) * 1000, "written_at": None,
        "fingerprint": None, "codec": None, "body": None, "run_id": None, "source": None,
        "step": None, "metadata_json": None, "key_id": None, "metadata_sealed": None,
    } for i in range(n)]


def test_damaged_files_and_records_are_reported_and_skipped(aws: tuple[Any, Any]) -> None:
    s3, _ = aws
    day = "archive/date=2026-01-01/"
    _put_file(s3, f"{day}1.avro", _plain_records(2, first_seq=1))
    s3.put_object(Bucket=BUCKET, Key=f"{day}2.avro", Body=b"not avro at all")
    # One block per record; the second record's first string gets an impossible length.
    raw = bytearray(_put_file(s3, f"{day}3.avro", _plain_records(3, first_seq=10),
                              codec="null", sync_interval=1))
    sync = fastavro.reader(io.BytesIO(bytes(raw)))._header["sync"]
    blocks = bytes(raw).split(sync)
    second = len(blocks[0]) + len(sync) + len(blocks[1]) + len(sync)
    raw[bytes(raw).index(THREAD.encode(), second) - 1] = 0x7F  # thread_id's length: -64
    s3.put_object(Bucket=BUCKET, Key=f"{day}3.avro", Body=bytes(raw))
    # A file cut short in its last block.
    whole = _put_file(s3, f"{day}4.avro", _plain_records(3, first_seq=20), sync_interval=1)
    s3.put_object(Bucket=BUCKET, Key=f"{day}4.avro", Body=whole[:-20])
    _put_file(s3, f"{day}5.avro", _plain_records(1, first_seq=30))

    damaged: list[ArchiveDamage] = []
    events = _read(s3, damaged=damaged)
    assert [e.sequence_number for e in events] == ["1", "2", "10", "12", "20", "21", "30"]
    assert [(d.file.rsplit("/", 1)[1], d.position) for d in damaged] == [
        ("2.avro", None), ("3.avro", 1), ("4.avro", 2)]
    assert damaged[0].reason.startswith("not an Avro container file")
    assert damaged[1].reason.startswith("record 1 cannot be read")
    with pytest.raises(CorruptRecordError, match="2.avro: not an Avro container file"):
        list(iter_archive(s3, BUCKET))


def test_read_container_skips_the_rest_of_a_block_after_a_bad_record() -> None:
    buf = io.BytesIO()
    fastavro.writer(buf, schemas.current(RECORD_ARCHIVE).parsed, _plain_records(3),
                    codec="null")
    raw = bytearray(buf.getvalue())
    second = bytes(raw).index(b"e1") - 1  # event_id "e1": its length byte, then 'e1'
    raw[second] = 0x7F
    damaged: list[ArchiveDamage] = []
    read = [p for p, _ in read_container(bytes(raw), "f", damaged.append)]
    assert read == [0]
    assert damaged[0].position == 1 and "the 1 record(s) after it" in damaged[0].reason


# -- schema evolution -----------------------------------------------------------------------------


def test_a_version_1_file_reads_with_the_current_reader(aws: tuple[Any, Any]) -> None:
    s3, ddb = aws
    (v1,) = [i for i in schemas.registry().values()
             if i.record == RECORD_ARCHIVE and i.version == 1]
    (c1,) = _checkpoint_item("c1", metadata=METADATA)
    clear = archive_record(_record(c1, 7))
    assert clear is not None
    old = {f["name"]: clear[f["name"]] for f in v1.raw["fields"]}  # a v1 archiver's record
    data = _put_file(s3, "archive/date=2026-01-01/v1.avro", [old], schema=v1.parsed)
    assert json.loads(fastavro.reader(io.BytesIO(data)).metadata["avro.schema"])[
        "fields"][-1]["name"] == "metadata_json"  # written by v1 indeed
    for client in (None, ddb):  # plain content needs no key
        (ev,) = _read(s3, client)
        assert (ev.state, ev.key_id) == ("inline", None)
        assert ev.body == c1["body"]["B"] and json.loads(ev.metadata_json or "") == METADATA
        assert ev.record()["checkpoint_id"] == "c1"  # type: ignore[index]


# -- referenced bodies --------------------------------------------------------------------------


def test_referenced_bodies_are_read_from_the_table_and_checked(aws: tuple[Any, Any]) -> None:
    s3, ddb = aws
    items = _checkpoint_item("big", metadata=METADATA, payload=bytes(range(256)) * 1000,
                             max_item_bytes=64 * 1024)
    *chunks, commit = items
    assert chunks and "body" not in commit
    for chunk in chunks:
        ddb.put_item(TableName=TABLE, Item=chunk)
    # A chunk of a writes event of the same checkpoint shares the checkpoint's chunk
    # prefix: it must not be taken for one of the checkpoint's.
    writes_sk = _keys.writes_sk("sub:1", "big", "t", "0001")
    ddb.put_item(TableName=TABLE, Item={**chunks[0], "SK": {"S": _keys.chunk_sk(writes_sk, 0)}})
    _archive(s3, ddb, [commit])
    (ev,) = _read(s3, ddb)
    whole = b"".join(c["body"]["B"] for c in chunks)
    assert ev.state == "referenced" and ev.body == whole
    assert ev.body_ref == {"digest": hashlib.sha256(whole).hexdigest(), "size": None,
                           "chunks": len(chunks)}
    assert ev.record()["checkpoint_id"] == "big"  # type: ignore[index]
    assert json.loads(ev.metadata_json or "") == METADATA  # sealed, and opened
    ddb.put_item(TableName=TABLE, Item={**chunks[0], "body": {"B": b"edited"}})
    assert _read(s3, ddb)[0].state == "reference-mismatch"
    ddb.delete_item(TableName=TABLE, Key={"PK": commit["PK"], "SK": commit["SK"]})
    assert _read(s3, ddb)[0].state == "reference-gone"
    _shred.DynamoKeyStore(ddb, TABLE).delete(THREAD)
    assert _read(s3, ddb)[0].state == "shredded"  # its metadata was sealed: erased first


def test_a_body_over_the_inline_limit_is_referenced(aws: tuple[Any, Any]) -> None:
    s3, ddb = aws
    (c1,) = _checkpoint_item("c1", metadata={}, payload=b"y" * 2000)
    ddb.put_item(TableName=TABLE, Item=c1)
    archiver = Archiver(s3=s3, bucket=BUCKET, keys=_shred.DynamoKeyStore(ddb, TABLE),
                        inline_limit=100)
    archiver.archive([_record(c1, 1)])
    (ev,) = _read(s3, ddb)
    assert ev.state == "referenced" and ev.body == c1["body"]["B"]
    assert _read(s3)[0].state == "no-key-access"


# -- ordering, de-duplication, filters ---------------------------------------------------------------


class CountingS3:
    """An S3 client that counts the objects it is asked for."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.got: list[str] = []

    def get_object(self, **kw: Any) -> Any:
        self.got.append(kw["Key"])
        return self._s3.get_object(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


def test_events_come_in_key_order_once_each(aws: tuple[Any, Any]) -> None:
    s3, _ = aws
    day = "archive/date=2026-01-01/"
    # A bisected retry: records 2 and 3 in a file of their own, then the whole batch again.
    _put_file(s3, f"{day}{2:040d}-{3:040d}.avro", _plain_records(2, first_seq=2))
    _put_file(s3, f"{day}{1:040d}-{4:040d}.avro", _plain_records(4, first_seq=1))
    events = _read(s3)
    assert [(e.sequence_number, e.file.rsplit("/", 1)[1][:40].lstrip("0")) for e in events] == [
        ("1", "1"), ("2", "1"), ("3", "1"), ("4", "1")]
    assert [e.sequence_number for e in _read(s3, thread_id=THREAD)] == ["1", "2", "3", "4"]
    assert _read(s3, thread_id="nobody") == []


def test_a_time_range_reads_only_the_partitions_that_can_hold_it(aws: tuple[Any, Any]) -> None:
    s3, _ = aws
    base = 1_767_225_600  # 2026-01-01T00:00:00Z
    for n, day in enumerate(range(5)):
        stamp = dt.datetime.fromtimestamp(base + day * DAY, dt.UTC).date().isoformat()
        # Each file's records: its day, the last one 2 s before the next midnight.
        records = _plain_records(2, at_s=base + day * DAY, first_seq=10 * n)
        records[1]["approximate_creation_time"] = (base + (day + 1) * DAY - 2) * 1000
        _put_file(s3, f"archive/date={stamp}/{n}.avro", records)
    s3.put_object(Bucket=BUCKET, Key="archive/README.txt", Body=b"not an archive file")
    counting = CountingS3(s3)
    since, until = (base + 2 * DAY) * 1000, (base + 3 * DAY) * 1000
    progress: list[tuple[int, int]] = []
    events = list(iter_archive(counting, BUCKET, since_ms=since,  # type: ignore[arg-type]
                               until_ms=until, damaged=[],
                               progress=lambda done, total: progress.append((done, total))))
    assert [e.sequence_number for e in events] == ["20", "21"]
    # The day before (a file may straddle midnight) up to the last day in range.
    assert [k.split("/")[1] for k in counting.got] == [
        "date=2026-01-02", "date=2026-01-03"]
    assert progress == [(0, 2), (1, 2), (2, 2)]
    assert len(list_files(s3, BUCKET)) == 5  # README.txt is not an archive file
    assert [e.sequence_number for e in _read(s3, until_ms=(base + DAY) * 1000)] == ["0", "1"]
    assert [e.sequence_number for e in _read(s3, since_ms=(base + 4 * DAY) * 1000)] == [
        "40", "41"]


# -- export's pure parts -------------------------------------------------------------------------


def test_export_parses_iso_dates_and_times_as_utc_unless_zoned() -> None:
    from checkpoint_journal.cli.export import parse_when

    jan1 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    assert parse_when("2026-01-01") == jan1
    assert parse_when("2026-01-01", end=True) == jan1 + DAY * 1000  # the whole day
    assert parse_when("2026-01-01T00:00:01") == jan1 + 1000
    assert parse_when("2026-01-01T00:00:00Z") == jan1
    assert parse_when("2026-01-01T02:00:00+02:00") == jan1
    assert parse_when("2026-01-01T00:00:00.250") == jan1 + 250
    for bad in ("yesterday", "2026-13-01", "01/01/2026", ""):
        with pytest.raises(ValueError, match="not an ISO date"):
            parse_when(bad)


def test_export_renders_typed_values_as_show_json_does(aws: tuple[Any, Any]) -> None:
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from checkpoint_journal.cli.browse import jsonable
    from checkpoint_journal.cli.export import event_doc, extract_record

    s3, ddb = aws
    serde = JsonPlusSerializer()
    typed = serde.dumps_typed({"messages": ["hi"], "when": dt.date(2026, 1, 1)})
    record = {"thread_id": THREAD, "checkpoint_ns": "sub:1", "checkpoint_id": "c1",
              "parent_checkpoint_id": None, "written_at": 1_767_000_000_000,
              "checkpoint": {"type": typed[0], "data": typed[1]},
              "metadata": {"type": "bogus-type", "data": b"\x00"},
              "blobs": [], "channel_versions": []}
    encoded = schemas.encode(schemas.RECORD_CHECKPOINT, record, compress=True)
    item = plan_items(_keys.thread_pk(THREAD), _keys.checkpoint_sk("sub:1", "c1"),
                      _keys.KIND_CHECKPOINT, encoded, written_at_ms=1_767_000_000_000,
                      expires_at=None).commit
    _archive(s3, ddb, [item])
    (ev,) = _read(s3, ddb)
    doc = event_doc(ev, serde)
    assert doc["state"] == "inline" and doc["error"] is None
    checkpoint = doc["record"]["checkpoint"]
    assert checkpoint == {"type": typed[0], "bytes": len(typed[1]), "error": None,
                          "value": jsonable(serde.loads_typed(typed))}
    assert checkpoint["value"]["when"] == "2026-01-01"
    # A value the serializer cannot read is reported, not raised.
    assert doc["record"]["metadata"]["value"] is None
    assert "cannot deserialize" in doc["record"]["metadata"]["error"]
    json.dumps(doc)  # JSON-safe throughout
    clear = extract_record(ev)
    assert clear["body"] == item["body"]["B"] and clear["key_id"] is None
    _shred.DynamoKeyStore(ddb, TABLE).delete(THREAD)
    (gone,) = _read(s3, ddb)
    assert event_doc(gone, serde)["record"] is None
    assert extract_record(gone)["key_id"] == ev.key_id and extract_record(gone)["body"] is None
