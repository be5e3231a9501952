"""The archiver's logic: journal stream records -> one Avro file in S3 per batch.

The Lambda wrapper is ``archiver.py``; everything here but :meth:`Archiver.archive`'s
one ``PutObject`` is pure, so tests call it directly.

The archive's format (layout, container, keys, sealed fields) is ``_core/archive.py``.
Here: which stream records are archived and how (``archive_record``), sealing under each
thread's key (``seal_record``; the keys, and after creating one whether the thread's
events still exist, are all the archiver reads from the table: ``Archiver.seal``), and
the one PutObject per batch.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

# Loaded with the handler, in the Lambda's init phase, rather than by the first batch:
# _core/archive.py imports it lazily because the agent's install has no fastavro.
import fastavro  # noqa: F401

from checkpoint_journal._core import aws
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import shred as _shred
from checkpoint_journal._core.archive import (
    ARCHIVED_KINDS,
    PREFIX,
    SEALED_BODY,
    SEALED_METADATA,
    ArchiveRecord,
    container,
    creation_ms,
    is_ref,
    object_key,
)
from checkpoint_journal._core.index import canonical
from checkpoint_journal._core.items import from_attr
from checkpoint_journal.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    CorruptRecordError,
    CredentialsError,
    JournalError,
    TransientError,
)
from checkpoint_journal.stream_handlers._lambda import journal_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Bodies up to this size (as stored) are copied into the archive; larger ones are
# referenced. 64 KiB keeps a 1000-record file within a few MB however large the agents'
# states grow (Lambda's 6 MB payload limit caps a batch anyway), while the common bodies
# (messages, small states: a few KB) travel whole. Configurable per function
# (ARCHIVE_INLINE_LIMIT_BYTES).
DEFAULT_INLINE_LIMIT_BYTES = 64 * 1024

# Journal items are insert-only (I1); MODIFY shows when a later delete_thread writes a
# namespace's tombstone again, or if I1 were ever broken, which an audit trail must show.
ARCHIVED_EVENTS = frozenset({"INSERT", "MODIFY"})



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
    md = from_attr(image["md"]) if "md" in image else None
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
        "approximate_creation_time": creation_ms(ddb.get("ApproximateCreationDateTime")),
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




def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else None




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
    lock_mode: str | None = None
    """Object Lock mode each file is put with (GOVERNANCE or COMPLIANCE), or None."""
    retention_days: int = 0
    clock: Callable[[], float] = time.time

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
            # An event hidden by its namespace's tombstone (a put that landed after
            # delete_thread returned, before the projector swept it) is as good as gone:
            # the new key must not make a deleted thread's event readable (I6b).
            tomb = {r["sk"]: (r["pk"], _keys.tombstone_sk(r["checkpoint_ns"])) for r in records
                    if r["thread_id"] in created and needs_key(r)}
            times = self.keys.tombstone_times(sorted(set(tomb.values())))
            exist -= {(r["pk"], r["sk"]) for r in records
                      if r["sk"] in tomb and tomb[r["sk"]] in times
                      and (r.get("written_at") or 0) <= times[tomb[r["sk"]]]}
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
        key = planned.key
        if key is None:
            return Written(None, 0, 0, planned.skipped, 0)
        sealed = self.seal(planned.records)
        body = container(sealed.records, key=key, stream_arn=planned.stream_arn)
        # One PutObject: the file exists whole or not at all. It is never overwritten
        # (If-None-Match; the bucket policy refuses a put without it): the same batch
        # always makes the same key, so a retry that finds the file is done.
        put: dict[str, Any] = {
            "Bucket": self.bucket, "Key": key, "Body": body, "ContentType": "application/avro",
            "Metadata": {"records": str(len(planned.records))}, "IfNoneMatch": "*",
        }
        if self.lock_mode:
            # A day more than asked: the bucket policy counts whole days from the put.
            until = self.clock() + (self.retention_days + 1) * 86_400
            put["ObjectLockMode"] = self.lock_mode
            put["ObjectLockRetainUntilDate"] = datetime.fromtimestamp(until, timezone.utc)
        try:
            aws.call(lambda: self.s3.put_object(**put), service=aws.S3,
                     resource=f"{self.bucket}/{key}",
                     what=f"write the archive file of a {len(records)}-record batch",
                     denied_hint=f"The archiver's role needs s3:PutObject on {self.bucket}/{PREFIX}*.")
        except aws.ConditionFailed:
            pass  # an earlier attempt of this batch wrote the file
        except BucketNotFoundError as e:
            raise BucketNotFoundError(
                f"archive bucket {self.bucket!r} does not exist: check the function's BUCKET_NAME"
            ) from e.__cause__
        except (AccessDeniedError, CredentialsError):
            raise
        except JournalError as e:  # unreachable, timed out, throttled: worth another try
            raise TransientError(f"{e}. Lambda retries the batch.") from e.__cause__
        return Written(planned.key, len(planned.records), planned.referenced,
                       planned.skipped, len(body), sealed.withheld, sealed.keys_created)
