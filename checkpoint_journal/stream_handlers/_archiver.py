"""The archiver's logic: journal stream records -> one Avro file in S3 per batch.

The Lambda wrapper is ``archiver.py``; everything here but :meth:`Archiver.archive`'s
one ``PutObject`` is pure, so tests call it directly.

Layout (DESIGN §1: the audit trail; §4: one format from the table to the archive)::

    archive/date=YYYY-MM-DD/{first sequence number}-{last sequence number}.avro

- One Avro object container file per stream batch, with the records of
  ``schemas/archive_event.v1.avsc`` in stream order. A file is written by a single
  PutObject, so it exists whole or not at all: the handler fails the invocation when it
  cannot write it, and Lambda retries (and bisects) the batch.
- The object key is a function of the batch alone: the date (UTC) of its first record's
  ApproximateCreationDateTime, and its first and last sequence numbers, zero-padded to 40
  digits (DynamoDB's longest) so that keys sort in stream order. Lambda's records carry
  no shard id, but sequence numbers are unique within a stream: a retried batch writes
  the same key with the same bytes (the container's sync marker is derived from the key,
  and nothing in a file depends on when it was written), so it overwrites, never
  duplicates.
- ``date=`` is a Hive-style partition for Athena or Spark. A batch whose records
  straddle midnight lands in its first record's day; its records keep their exact
  ``approximate_creation_time``.
- Bodies are the journal's Avro bytes as stored (their schema fingerprint and codec
  alongside, so ``schemas.decode`` reads them, whatever schema version wrote them); the
  file's metadata carries those writer schemas too, for readers without this package. A
  body above the inline limit, or stored as chunks (the table's commit item has only
  ``chunks`` and ``digest``), is referenced by table key, digest and size instead.
- Content is sealed (``schemas/archive_event.v2.avsc``, ``_shred``): an inline body and
  the metadata JSON are encrypted with AES-256-GCM under the thread's archive key, which
  ``delete_thread`` destroys (crypto-shredding). Everything else stays plain, for
  filtering (Athena, Spark) and for checking the chain's shape without keys. The keys
  (and, after creating one, whether the thread's events still exist: the race rule of
  ``_shred``) are all the archiver reads from the table (``Archiver.seal``); building and
  sealing the records is pure.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeGuard

import botocore.exceptions
import fastavro

from checkpoint_journal import schemas
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import shred as _shred
from checkpoint_journal._core.index import canonical
from checkpoint_journal.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    CorruptRecordError,
    TransientError,
)
from checkpoint_journal.stream_handlers._lambda import journal_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RECORD_ARCHIVE = "archive_event"
PREFIX = "archive/"
SUFFIX = ".avro"
# DynamoDB Streams sequence numbers are 21 to 40 digits long: padded to 40, keys sort
# as the numbers do.
SEQUENCE_DIGITS = 40
# Bodies up to this size (as stored) are copied into the archive; larger ones are
# referenced. 64 KiB keeps a 1000-record file within a few MB however large the agents'
# states grow (Lambda's 6 MB payload limit caps a batch anyway), while the common bodies
# (messages, small states: a few KB) travel whole. Configurable per function
# (ARCHIVE_INLINE_LIMIT_BYTES).
DEFAULT_INLINE_LIMIT_BYTES = 64 * 1024
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
# Journal items are insert-only (I1); MODIFY shows when a later delete_thread writes a
# namespace's tombstone again, or if I1 were ever broken, which an audit trail must show.
ARCHIVED_EVENTS = frozenset({"INSERT", "MODIFY"})

ArchiveRecord = dict[str, Any]
"""One ``archive_event`` record, as fastavro writes it (``archive_record`` makes it with
its content in clear; ``seal_record`` seals it)."""


# -- one stream record -> one archive record (pure) ---------------------------------------


def archive_record(
    record: Mapping[str, Any], *, inline_limit: int = DEFAULT_INLINE_LIMIT_BYTES
) -> ArchiveRecord | None:
    """The archive record for a Lambda DynamoDB-stream record, or None to leave it out.
    Its content (``body``, ``metadata_json``) is still in clear: see ``seal_record``.

    Left out: removals (TTL expiry, deletes: a deletion is archived as its tombstone),
    items that are not journal events (views, heads, index entries, chunks), and items
    whose keys are not the journal's. A journal item with a damaged body raises
    CorruptRecordError: the batch fails rather than archive something unreadable.
    """
    if record.get("eventName") not in ARCHIVED_EVENTS:
        return None
    ddb = record.get("dynamodb") or {}
    image = ddb.get("NewImage")
    found = journal_key(record)
    if not isinstance(image, Mapping) or found is None:
        return None
    pk, sk, thread_id, key = found
    if key.kind not in ARCHIVED_KINDS or _string(image.get("kind")) != key.kind:
        return None

    seq = str(ddb.get("SequenceNumber", ""))
    md = _plain(image["md"]) if "md" in image else None
    md = md if isinstance(md, dict) else None
    run_id = _string(image.get("run_id"))
    return {
        "thread_id": thread_id,
        "checkpoint_ns": key.checkpoint_ns,
        "checkpoint_id": key.checkpoint_id or None,
        "kind": key.kind,
        "task_id": _keys.unescape(sk.split("#")[4]) if key.kind == _keys.KIND_WRITES else None,
        "pk": pk,
        "sk": sk,
        "event_name": record["eventName"],
        "sequence_number": seq,
        "event_id": str(record.get("eventID", "")),
        "approximate_creation_time": _millis(ddb.get("ApproximateCreationDateTime")),
        "written_at": _number(image.get("written_at")),
        "fingerprint": _string(image.get("fp")),
        "codec": _string(image.get("codec")),
        "body": _body(image, inline_limit, seq),
        "run_id": run_id if run_id is not None else _str_or_none((md or {}).get("run_id")),
        "source": _str_or_none((md or {}).get("source")),
        "step": _int_or_none((md or {}).get("step")),
        "metadata_json": canonical_json(md) if md is not None else None,
        "key_id": None,
        "metadata_sealed": None,
        "expires_at": _number(image.get("expires_at")),
    }


def is_ref(body: Any) -> TypeGuard[dict[str, Any]]:
    """A BodyRef (as fastavro reads and writes it: a dict with a digest)."""
    return isinstance(body, dict) and "digest" in body


def needs_key(record: ArchiveRecord) -> bool:
    """Whether a clear archive record has content to seal: an inline body or metadata."""
    return isinstance(record["body"], bytes) or record["metadata_json"] is not None


def seal_record(record: ArchiveRecord, key: _shred.ThreadKey | None) -> ArchiveRecord:
    """The record with its content sealed under ``key``; with None, its content withheld
    (key id ``withheld``: the race rule of ``_shred``). A record without content (a
    tombstone, or a referenced body without metadata) is returned as it is."""
    if not needs_key(record):
        return record
    out = dict(record, metadata_json=None, metadata_sealed=None)
    if key is None:
        out["key_id"] = _shred.WITHHELD_KEY_ID
        if isinstance(record["body"], bytes):
            out["body"] = None
        return out
    pk, sk = record["pk"], record["sk"]
    out["key_id"] = key.key_id
    if isinstance(record["body"], bytes):
        out["body"] = _shred.seal(key, record["body"], pk=pk, sk=sk,
                                  field_name=SEALED_BODY).record()
    if record["metadata_json"] is not None:
        out["metadata_sealed"] = _shred.seal(key, record["metadata_json"].encode(), pk=pk,
                                             sk=sk, field_name=SEALED_METADATA).record()
    return out


def _body(image: Mapping[str, Any], inline_limit: int, seq: str) -> bytes | dict[str, Any] | None:
    if "chunks" in image:
        # A chunked record: the commit item holds no body, only the count and digest.
        digest = _string(image.get("digest"))
        chunks = _number(image.get("chunks"))
        if digest is None or chunks is None:
            raise CorruptRecordError(
                f"stream record {seq}: a chunked journal item without its digest or chunk "
                "count; check the item in the table"
            )
        return {"digest": digest, "size": _number(image.get("size")), "chunks": chunks}
    if "body" not in image:
        return None
    body = _binary(image["body"], seq)
    if len(body) > inline_limit:
        return {"digest": hashlib.sha256(body).hexdigest(), "size": len(body), "chunks": 0}
    return body


def _string(attr: Any) -> str | None:
    if isinstance(attr, Mapping) and isinstance(attr.get("S"), str):
        return str(attr["S"])
    return None


def _number(attr: Any) -> int | None:
    if isinstance(attr, Mapping) and "N" in attr:
        try:
            return int(str(attr["N"]))
        except ValueError:
            return int(float(str(attr["N"])))
    return None


def _binary(attr: Any, seq: str) -> bytes:
    value = attr.get("B") if isinstance(attr, Mapping) else None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)  # a record straight from boto3, not through Lambda's JSON
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as e:
            raise CorruptRecordError(f"stream record {seq}: body is not base64: {e}") from e
    raise CorruptRecordError(f"stream record {seq}: body is not a Binary attribute")


def _millis(seconds: Any) -> int:
    """Epoch milliseconds of ApproximateCreationDateTime (epoch seconds in Lambda's JSON)."""
    if isinstance(seconds, dt.datetime):
        return int(seconds.timestamp() * 1000)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float | str):
        raise CorruptRecordError(f"stream record without ApproximateCreationDateTime: {seconds!r}")
    return int(round(float(seconds) * 1000))


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else None


def _plain(attr: Any) -> Any:
    """A DynamoDB attribute value (Lambda's JSON form or boto3's) as plain JSON data."""
    if not isinstance(attr, Mapping) or len(attr) != 1:
        return None
    ((tag, value),) = attr.items()
    if tag == "S":
        return value
    if tag == "N":
        try:
            return int(str(value))
        except ValueError:
            return float(str(value))
    if tag == "BOOL":
        return bool(value)
    if tag == "NULL":
        return None
    if tag == "M":
        return {k: _plain(v) for k, v in value.items()}
    if tag == "L":
        return [_plain(v) for v in value]
    if tag in ("SS", "NS"):
        return [_plain({tag[0]: v}) for v in value]
    # Binary has no JSON form; the saver never writes it into md.
    return None


def canonical_json(value: Any) -> str | None:
    """Canonical JSON (sorted keys, no spaces), the metadata index's own form."""
    text = canonical(value)
    if text is not None:
        return text
    # canonical() refuses values the index cannot hold (too long); the archive keeps them.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


# -- one batch -> one file (pure) ----------------------------------------------------------


@dataclass(frozen=True)
class ArchiveFile:
    """What one batch becomes."""

    key: str | None
    """The object key; None when no record of the batch is archived (nothing to write)."""
    records: list[ArchiveRecord]
    skipped: int
    """Records of the batch left out (see :func:`archive_record`)."""
    stream_arn: str = ""
    """The eventSourceARN of the batch's records."""

    @property
    def referenced(self) -> int:
        """Records whose body is referenced rather than copied."""
        return sum(1 for r in self.records if is_ref(r["body"]))


def object_key(records: Sequence[Mapping[str, Any]]) -> str:
    """``archive/date=.../{first}-{last}.avro`` for a batch of Lambda stream records."""
    if not records:
        raise ValueError("an empty batch has no archive key")
    numbers = [_sequence(r) for r in records]
    first = records[numbers.index(min(numbers))]
    created = (first.get("dynamodb") or {}).get("ApproximateCreationDateTime")
    day = dt.datetime.fromtimestamp(_millis(created) / 1000, tz=dt.UTC).date()
    return (
        f"{PREFIX}date={day.isoformat()}/"
        f"{min(numbers):0{SEQUENCE_DIGITS}d}-{max(numbers):0{SEQUENCE_DIGITS}d}{SUFFIX}"
    )


def _sequence(record: Mapping[str, Any]) -> int:
    seq = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
    if not seq.isdigit():
        raise CorruptRecordError(f"stream record with sequence number {seq[:48]!r}: not decimal")
    return int(seq)


def plan_file(
    records: Sequence[Mapping[str, Any]], *, inline_limit: int = DEFAULT_INLINE_LIMIT_BYTES
) -> ArchiveFile:
    """The archive records of a batch, in stream order, and the key of their file."""
    archived = [a for r in records if (a := archive_record(r, inline_limit=inline_limit))]
    if not archived:
        return ArchiveFile(None, [], len(records))
    # Keyed by the whole batch (skipped records included): the batch is what Lambda
    # retries, and what its failure-destination message names.
    return ArchiveFile(object_key(records), archived, len(records) - len(archived),
                       str(records[0].get("eventSourceARN") or ""))


def container(records: Iterable[ArchiveRecord], *, key: str, stream_arn: str = "") -> bytes:
    """An Avro object container file of ``records``: deterministic for a given key.

    The 16-byte sync marker, random by default, is derived from the key, so a retried
    batch writes byte-identical content.
    """
    records = list(records)
    fingerprints = sorted({r["fingerprint"] for r in records if r["fingerprint"]})
    registry = schemas.registry()
    writer_schemas = {fp: registry[fp].raw for fp in fingerprints if fp in registry}
    buf = io.BytesIO()
    fastavro.writer(
        buf,
        schemas.current(RECORD_ARCHIVE).parsed,
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


def read_container(body: bytes) -> list[ArchiveRecord]:
    """The records of an archive file (plain fastavro; for tests and tools)."""
    return list(fastavro.reader(io.BytesIO(body)))  # type: ignore[arg-type]


# -- the I/O: keys, then one PutObject ------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """What :meth:`Archiver.archive` did (for logs, metrics and tests)."""

    key: str | None
    archived: int
    referenced: int
    skipped: int
    bytes: int
    withheld: int = 0
    """Records archived without their content: their items were deleted before the
    batch was archived, and their thread had no key left (the race rule of ``_shred``)."""
    keys_created: int = 0
    """Thread keys this batch created and kept."""


@dataclass(frozen=True)
class SealedBatch:
    records: list[ArchiveRecord]
    withheld: int
    keys_created: int


@dataclass
class Archiver:
    """Writes each batch of journal stream records as one archive file, its content
    sealed under each thread's archive key."""

    s3: S3Client
    bucket: str
    keys: _shred.ArchiveKeyStore
    inline_limit: int = DEFAULT_INLINE_LIMIT_BYTES
    cache: _shred.KeyCache = field(default_factory=_shred.KeyCache)

    def seal(self, records: Sequence[ArchiveRecord]) -> SealedBatch:
        """The records sealed, each under its thread's key: cached, read, or created.

        The race rule (``_shred``): a thread whose key this batch had to create may have
        been deleted already. Its events that no longer exist in the table are archived
        with their content withheld, and if none exists the new key is deleted again.
        """
        for thread in {r["thread_id"] for r in records if r["kind"] == _keys.KIND_TOMBSTONE}:
            # Its key is being destroyed: never seal a later incarnation under it.
            self.cache.evict(thread)
        threads = sorted({r["thread_id"] for r in records if needs_key(r)})
        keys: dict[str, _shred.ThreadKey] = {}
        for thread in threads:
            if (cached := self.cache.get(thread)) is not None:
                keys[thread] = cached
        missing = [t for t in threads if t not in keys]
        found = self.keys.get_many(missing) if missing else {}
        created: set[str] = set()
        for thread in missing:
            if thread in found:
                keys[thread] = found[thread]
                self.cache.put(found[thread])
                continue
            key, new = self.keys.create(thread)
            keys[thread] = key
            if new:
                created.add(thread)
            else:
                self.cache.put(key)

        withheld: set[tuple[str, str]] = set()
        if created:
            events = {t: [(r["pk"], r["sk"]) for r in records
                          if r["thread_id"] == t and needs_key(r)] for t in created}
            exist = self.keys.existing([e for mine in events.values() for e in mine])
            for thread in sorted(created):
                mine = events[thread]
                gone = {e for e in mine if e not in exist}
                withheld |= gone
                if not exist.intersection(mine):
                    # Deleted before we came: the key must not outlive the thread.
                    self.keys.delete(thread, key_id=keys.pop(thread).key_id)
                    created.discard(thread)
                else:
                    self.cache.put(keys[thread])

        out = [
            seal_record(r, None if (r["pk"], r["sk"]) in withheld
                        else keys.get(r["thread_id"]))
            for r in records
        ]
        count = sum(1 for r in out if r.get("key_id") == _shred.WITHHELD_KEY_ID)
        return SealedBatch(out, count, len(created))

    def archive(self, records: Sequence[Mapping[str, Any]]) -> Written:
        """Archive a batch whole, or raise (and write nothing).

        Raises:
            CorruptRecordError: a record cannot be archived faithfully.
            BucketNotFoundError, AccessDeniedError, TransientError: S3 refused the file,
                or the table the keys.
        """
        planned = plan_file(records, inline_limit=self.inline_limit)
        if planned.key is None:
            return Written(None, 0, 0, planned.skipped, 0)
        sealed = self.seal(planned.records)
        body = container(sealed.records, key=planned.key, stream_arn=planned.stream_arn)
        try:
            # One PutObject: the file exists whole or not at all, and the same batch
            # always makes the same key and bytes, so a retry overwrites.
            self.s3.put_object(
                Bucket=self.bucket, Key=planned.key, Body=body,
                ContentType="application/avro",
                Metadata={"records": str(len(planned.records))},
            )
        except botocore.exceptions.ClientError as e:
            raise _translate(e, self.bucket) from e
        except botocore.exceptions.BotoCoreError as e:  # connection, timeout, credentials
            raise TransientError(
                f"could not reach S3 to write the archive file of a {len(records)}-record "
                f"batch: {e}. Lambda retries the batch."
            ) from e
        return Written(planned.key, len(planned.records), planned.referenced,
                       planned.skipped, len(body), sealed.withheld, sealed.keys_created)


def _translate(e: botocore.exceptions.ClientError, bucket: str) -> Exception:
    code = e.response.get("Error", {}).get("Code", "")
    if code == "NoSuchBucket":
        return BucketNotFoundError(
            f"archive bucket {bucket!r} does not exist: check the function's BUCKET_NAME"
        )
    if code in ("AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return AccessDeniedError(
            f"S3 refused the archive file ({code}): the archiver's role needs s3:PutObject "
            f"on {bucket}/{PREFIX}*"
        )
    return TransientError(f"S3 failed to store the archive file ({code or e}); Lambda retries the batch")
