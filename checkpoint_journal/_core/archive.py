"""The audit archive's format: where files live, how they are written, how they are read.

Layout (DESIGN §1: the audit trail; §4: one format from the table to the archive)::

    archive/date=YYYY-MM-DD/{first sequence number}-{last sequence number}.avro

- One Avro object container file per stream batch, with the records of
  ``schemas/archive_event.v2.avsc`` in stream order, written by a single PutObject
  (whole or not at all). The key is a function of the batch alone (:func:`object_key`),
  and the container's sync marker is derived from the key (:func:`container`), so a
  retried batch rewrites identical bytes.
- ``date=`` is a Hive-style partition (Athena, Spark). A batch whose records straddle
  midnight lands in its first record's day.
- Bodies are the journal's Avro bytes as stored; the file's metadata carries their writer
  schemas for readers without this package. A body above the inline limit, or chunked, is
  a BodyRef (:func:`is_ref`): table key, digest and size.
- Content is sealed per thread (``shred``): the sealed fields are named in the AAD.

The writer is the archiver (``stream_handlers``); the readers are ``archive_read`` (every
event, decrypted) and the command line. :func:`read_container` reads block by block, so
one damaged block costs only its own records.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeGuard

import zstandard

from checkpoint_journal import errors, schemas
from checkpoint_journal._core import aws, extras
from checkpoint_journal._core import keys as _keys

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# What a reader of the archive lacking a permission should attach.
DENIED_HINT = ("Reading the archive needs s3:ListBucket and s3:GetObject on the bucket's "
               "archive/*: attach the stack's AuditorPolicy.")


RECORD_ARCHIVE = "archive_event"


PREFIX = "archive/"


SUFFIX = ".avro"


# DynamoDB Streams sequence numbers are 21 to 40 digits long: padded to 40, keys sort
# as the numbers do.
SEQUENCE_DIGITS = 40


# Avro's "deflate" block codec (zlib, in the standard library): every Avro reader has
# it (Athena, Spark, Avro Java, fastavro). Not "zstandard": fastavro 1.13 writes it only
# with the backports.zstd package on Python < 3.14 (not our zstandard), a dependency the
# Lambda package would gain for little, since most bodies are zstd-compressed already.
AVRO_CODEC = "deflate"


# File metadata: fingerprint -> writer schema of every journal body in the file, and the
# stream (hence table: arn:...:table/{name}/stream/...) the records were read from, which
# a BodyRef's key points into.
SCHEMAS_METADATA_KEY = "checkpoint_journal.schemas"


STREAM_METADATA_KEY = "checkpoint_journal.stream_arn"


# Journal items the archive keeps. Views, heads and index entries are the projector's
# (derived, rebuildable); chunks are parts of a record that its commit item stands for.
# Removal markers (R) say what a prune or delete_for_runs took away, so that the archive
# tells a legitimate removal from a loss.
ARCHIVED_KINDS = frozenset(
    {_keys.KIND_CHECKPOINT, _keys.KIND_WRITES, _keys.KIND_BLOBS, _keys.KIND_TOMBSTONE,
     _keys.KIND_REMOVAL}
)


# The names of the sealed fields, in the AAD (see _shred.aad).
SEALED_BODY = "body"


SEALED_METADATA = "metadata_json"


ArchiveRecord = dict[str, Any]
"""One ``archive_event`` record, as fastavro writes it (``archive_record`` makes it with
its content in clear; ``seal_record`` seals it)."""


def is_ref(body: Any) -> TypeGuard[dict[str, Any]]:
    """A BodyRef (as fastavro reads and writes it: a dict with a digest)."""
    return isinstance(body, dict) and "digest" in body


def creation_ms(seconds: Any) -> int:
    """Epoch milliseconds of ApproximateCreationDateTime (epoch seconds in Lambda's JSON)."""
    if isinstance(seconds, dt.datetime):
        return int(seconds.timestamp() * 1000)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float | str):
        raise errors.CorruptRecordError(f"stream record without ApproximateCreationDateTime: {seconds!r}")
    return int(round(float(seconds) * 1000))


def object_key(records: Sequence[Mapping[str, Any]]) -> str:
    """``archive/date=.../{first}-{last}.avro`` for a batch of Lambda stream records."""
    if not records:
        raise ValueError("an empty batch has no archive key")
    numbers = [_sequence(r) for r in records]
    first = records[numbers.index(min(numbers))]
    created = (first.get("dynamodb") or {}).get("ApproximateCreationDateTime")
    day = dt.datetime.fromtimestamp(creation_ms(created) / 1000, tz=dt.UTC).date()
    return (
        f"{PREFIX}date={day.isoformat()}/"
        f"{min(numbers):0{SEQUENCE_DIGITS}d}-{max(numbers):0{SEQUENCE_DIGITS}d}{SUFFIX}"
    )


def _sequence(record: Mapping[str, Any]) -> int:
    seq = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
    if not seq.isdigit():
        raise errors.CorruptRecordError(f"stream record with sequence number {seq[:48]!r}: not decimal")
    return int(seq)


def container(records: Iterable[ArchiveRecord], *, key: str, stream_arn: str = "") -> bytes:
    """An Avro object container file of ``records``: deterministic for a given key.

    The 16-byte sync marker, random by default, is derived from the key, so a retried
    batch writes byte-identical content.
    """
    fastavro = _fastavro()
    records = list(records)
    fingerprints = sorted({r["fingerprint"] for r in records if r["fingerprint"]})
    registry = schemas.registry()
    writer_schemas = {fp: without_docs(registry[fp].raw) for fp in fingerprints
                      if fp in registry}
    buf = io.BytesIO()
    fastavro.writer(
        buf,
        _container_schema(),
        records,
        codec=AVRO_CODEC,
        sync_marker=hashlib.sha256(key.encode()).digest()[:16],
        metadata={
            SCHEMAS_METADATA_KEY: json.dumps(writer_schemas, sort_keys=True),
            STREAM_METADATA_KEY: stream_arn,
        },
        strict=True,
    )
    return buf.getvalue()


def without_docs(schema: Any) -> Any:
    """``schema`` without its ``doc`` attributes: what a reader needs (names, types,
    logical types, defaults), at a fraction of the bytes every archive file repeats. The
    fingerprints, of the parsing canonical form, are the same."""
    if isinstance(schema, dict):
        return {k: without_docs(v) for k, v in schema.items() if k != "doc"}
    if isinstance(schema, list):
        return [without_docs(v) for v in schema]
    return schema


def _fastavro() -> ModuleType:
    """fastavro, which writes and reads the container files. Imported here, not with this
    module: the agent's install has no fastavro, and the table check reads this module's
    constants (RECORD_OF_KIND) without touching the archive."""
    with extras.guard("audit", "reading or writing the audit archive"):
        import fastavro
    return fastavro


@functools.cache
def _container_schema() -> Any:
    return _fastavro().parse_schema(without_docs(schemas.current(RECORD_ARCHIVE).raw))


RECORD_OF_KIND = {
    _keys.KIND_CHECKPOINT: schemas.RECORD_CHECKPOINT,
    _keys.KIND_WRITES: schemas.RECORD_WRITES,
    _keys.KIND_BLOBS: schemas.RECORD_BLOBS,
    _keys.KIND_REMOVAL: schemas.RECORD_REMOVAL,
}


_MAGIC = b"Obj\x01"


_SYNC_BYTES = 16


@functools.cache
def _header_schema() -> Any:
    return _fastavro().parse_schema({
        "type": "record", "name": "org.apache.avro.file.Header",
        "fields": [
            {"name": "magic", "type": {"type": "fixed", "name": "Magic", "size": 4}},
            {"name": "meta", "type": {"type": "map", "values": "bytes"}},
            {"name": "sync", "type": {"type": "fixed", "name": "Sync", "size": _SYNC_BYTES}},
        ],
    })


# A block that inflates past this is refused rather than allocated (a 6 MB batch is the
# largest the archiver writes).
_MAX_BLOCK_BYTES = 256 * 1024 * 1024


# The date= partition of a file is its first record's day; its other records are at most
# MaximumRecordAgeInSeconds (6 h) plus the batching window later, so a time range must
# also read the day before its first day.
_PARTITION_SLACK = dt.timedelta(days=1)


@dataclass(frozen=True)
class ArchiveDamage:
    file: str
    position: int | None
    """The first record the damage cost, when known."""
    reason: str


def _read_long(buf: io.BytesIO) -> int:
    """An Avro long (zig-zag varint); ValueError at the end of the data or past 64 bits."""
    shift = result = 0
    while True:
        b = buf.read(1)
        if not b:
            raise ValueError("the data ends inside a number")
        result |= (b[0] & 0x7F) << shift
        if b[0] < 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7
        if shift > 63:
            raise ValueError("a number longer than 64 bits")


def _inflate(codec: str, data: bytes) -> bytes:
    if codec == "null":
        return data
    if codec == "deflate":
        d = zlib.decompressobj(-15)  # Avro's deflate: raw, no zlib header
        out = d.decompress(data, _MAX_BLOCK_BYTES)
        if d.unconsumed_tail:
            raise ValueError(f"a block inflates past {_MAX_BLOCK_BYTES} bytes")
        return out
    if codec == "zstandard":
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
        out = reader.read(_MAX_BLOCK_BYTES + 1)
        if len(out) > _MAX_BLOCK_BYTES:
            raise ValueError(f"a block inflates past {_MAX_BLOCK_BYTES} bytes")
        return out
    raise ValueError(f"block codec {codec!r} is not supported by this reader")


def read_container(
    data: bytes, file: str, damaged: Callable[[ArchiveDamage], None],
    reader_schema: Any = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(position, record) of an Avro object container file, read with ``reader_schema``
    (default: the current archive schema). Damage is passed to ``damaged``: a bad header
    costs the file; a bad block its records; a bad record the rest of its block; a block
    whose framing is broken the rest of the file."""
    fastavro = _fastavro()
    if reader_schema is None:
        reader_schema = schemas.current(RECORD_ARCHIVE).parsed
    buf = io.BytesIO(data)
    try:
        if data[:4] != _MAGIC:
            raise ValueError("no Avro magic bytes")
        header = fastavro.schemaless_reader(buf, _header_schema(), None)
        assert isinstance(header, dict)
        meta: dict[str, bytes] = header["meta"]
        sync: bytes = header["sync"]
        codec = meta.get("avro.codec", b"null").decode()
        writer_schema = fastavro.parse_schema(json.loads(meta["avro.schema"]))
    except Exception as e:  # fastavro and json raise many types on garbage
        damaged(ArchiveDamage(file, None, f"not an Avro container file: {_why(e)}"))
        return
    position = 0
    while buf.tell() < len(data):
        at = buf.tell()
        try:
            count = _read_long(buf)
            size = _read_long(buf)
            if count < 0 or size < 0 or size > len(data) - buf.tell() - _SYNC_BYTES:
                raise ValueError(f"impossible block header (count {count}, size {size})")
            payload = buf.read(size)
            marker = buf.read(_SYNC_BYTES)
        except ValueError as e:
            damaged(ArchiveDamage(file, position, (
                f"the block at byte {at} cannot be framed ({e}): records from {position} "
                "to the end of the file are not read")))
            return
        if marker != sync:
            # The records may still read; what follows may be framed wrong, and says so.
            damaged(ArchiveDamage(file, position, (
                f"the block at byte {at} (records {position} to {position + count - 1}) "
                "does not end with the file's sync marker")))
        try:
            block = io.BytesIO(_inflate(codec, payload))
        except (ValueError, zlib.error, zstandard.ZstdError) as e:
            damaged(ArchiveDamage(file, position, (
                f"records {position} to {position + count - 1} (the block at byte {at}) "
                f"cannot be read: {_why(e)}")))
            position += count
            continue
        for i in range(count):
            try:
                record = fastavro.schemaless_reader(block, writer_schema, reader_schema)
                if not isinstance(record, dict):
                    raise ValueError("not a record")
            except Exception as e:  # fastavro raises many types on bad bytes
                rest = count - i - 1
                damaged(ArchiveDamage(file, position + i, (
                    f"record {position + i} cannot be read: {_why(e)}"
                    + (f"; the {rest} record(s) after it in its block are skipped" if rest
                       else ""))))
                break
            yield position + i, record
        position += count


def _why(e: Exception) -> str:
    # fastavro's messages may quote bytes it read; keep them short.
    return f"{type(e).__name__}: {str(e)[:200]}"


def _day(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date()


def _partition_day(key: str) -> dt.date | None:
    rest = key[len(PREFIX):]
    if not rest.startswith("date="):
        return None
    try:
        return dt.date.fromisoformat(rest[5:15])
    except ValueError:
        return None


def list_files(s3: S3Client, bucket: str, *, since_ms: int | None = None,
               until_ms: int | None = None) -> list[str]:
    """The archive's files in key order (stream order), those that can hold events of
    [since_ms, until_ms) only."""
    kw: dict[str, Any] = {"Bucket": bucket, "Prefix": PREFIX}
    if since_ms is not None:
        kw["StartAfter"] = f"{PREFIX}date={(_day(since_ms) - _PARTITION_SLACK).isoformat()}"
    last = _day(until_ms - 1) if until_ms is not None else None
    out: list[str] = []
    for page in aws.paginate(s3.get_paginator("list_objects_v2").paginate(**kw),
                             service=aws.S3, resource=bucket, what="list the archive",
                             denied_hint=DENIED_HINT):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if not key.endswith(SUFFIX):
                continue
            day = _partition_day(key)
            if last is not None and day is not None and day > last:
                return out  # keys sort by day: nothing later can be in range
            out.append(key)
    return out


def read_file(s3: S3Client, bucket: str, key: str) -> bytes | None:
    """An archive file's bytes; None when it is gone (listed, then deleted)."""
    try:
        body: bytes = aws.call(lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read(),
                               service=aws.S3, resource=f"{bucket}/{key}",
                               what=f"read {key}", denied_hint=DENIED_HINT)
    except errors.ObjectNotFoundError:
        return None
    return body


def read_records(data: bytes, file: str = "archive file") -> list[dict[str, Any]]:
    """Every record of an archive file; CorruptRecordError at the first damage."""

    def fail(d: ArchiveDamage) -> None:
        where = "" if d.position is None else f" record {d.position}"
        raise errors.CorruptRecordError(f"{d.file}{where}: {d.reason}")

    return [record for _, record in read_container(data, file, fail)]
