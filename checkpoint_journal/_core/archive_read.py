"""Reading the audit archive back: every archived event, decrypted where its key lives.

``iter_archive`` lists ``archive/`` (narrowed to the ``date=`` partitions of a time range
when one is given), reads the files in key order (the archiver's keys sort in stream
order) and their records in file order, de-duplicates on ``sequence_number`` (a
bisected retry may leave a record in two files: the first wins), and yields one
:class:`ArchivedEvent` per journal event. For each it says what could be read
(``state``):

=====================  ==================================================================
``inline``             the body was in the archive and is given, decrypted
``referenced``         the body was referenced; it was read from the table and matches
``reference-gone``     the referenced table item is gone (deleted, expired)
``reference-mismatch`` the table item differs from the digest the archive recorded
``shredded``           the thread's archive key no longer exists: ``delete_thread`` erased
                       it (or the archiver withheld the content of an already deleted item)
``undecryptable``      the key exists but AES-GCM authentication failed: the archive record
                       was altered
``no-key-access``      sealed (or referenced) content, and no table was given to read keys
                       (or referenced bodies) from
``none``               the event has no body (a tombstone)
=====================  ==================================================================

Files are read with this package's own container reader, block by block, so that one
damaged block (or record) costs only its own records: the damage is reported
(:class:`ArchiveDamage`) and reading goes on with the next block, file, record. Version 1
files (no encryption) read with the current schema by Avro's resolution rules.

Keys are read once per thread and iteration (strongly consistent GetItem/BatchGetItem on
``K#`` items); referenced bodies with one GetItem (and a Query of the chunks). Nothing
here logs, and errors name files, positions and table keys, never content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from checkpoint_journal import errors, schemas
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import shred as _shred
from checkpoint_journal._core.archive import (
    RECORD_OF_KIND,
    SEALED_BODY,
    SEALED_METADATA,
    ArchiveDamage,
    is_ref,
    list_files,
    read_container,
    read_file,
)
from checkpoint_journal._core.fold import chunk_parts, record_body
from checkpoint_journal._core.store import DynamoJournalStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

STATE_INLINE = "inline"
STATE_REFERENCED = "referenced"
STATE_REFERENCE_GONE = "reference-gone"
STATE_REFERENCE_MISMATCH = "reference-mismatch"
STATE_SHREDDED = "shredded"
STATE_UNDECRYPTABLE = "undecryptable"
STATE_NO_KEY_ACCESS = "no-key-access"
STATE_NONE = "none"
STATES = (STATE_INLINE, STATE_REFERENCED, STATE_REFERENCE_GONE, STATE_REFERENCE_MISMATCH,
          STATE_SHREDDED, STATE_UNDECRYPTABLE, STATE_NO_KEY_ACCESS, STATE_NONE)




@dataclass(frozen=True)
class ArchivedEvent:
    """One journal event read back from the archive."""

    file: str
    """The S3 key of the .avro file."""
    position: int
    """The record's index within the file."""
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str | None
    kind: str
    """C W B X R (see ``_keys``)."""
    task_id: str | None
    pk: str
    sk: str
    event_name: str
    sequence_number: str
    approximate_creation_ms: int
    written_at_ms: int | None
    fingerprint: str | None
    codec: str | None
    body: bytes | None
    """The journal body as stored (its codec not undone), decrypted; for a referenced body,
    the body read from the table (item and chunks) when it is there and matches."""
    state: str
    """One of ``STATES`` (see the module docstring)."""
    metadata_json: str | None
    """The item's plain metadata as canonical JSON, decrypted when possible."""
    event_id: str = ""
    run_id: str | None = None
    source: str | None = None
    step: int | None = None
    key_id: str | None = None
    """The archive key that sealed the content (``withheld``: none did); None in clear."""
    body_ref: dict[str, Any] | None = None
    """The BodyRef (digest, size, chunks) of a referenced body."""
    detail: str | None = None
    """Why the state is not a readable one (an authentication failure, say); no content."""
    expires_at: int | None = None
    """The item's TTL (epoch seconds), if it had one."""

    def record(self) -> dict[str, Any] | None:
        """The journal record decoded (``schemas.decode`` by kind), None without a body.

        Raises:
            CorruptRecordError: the body cannot be decoded (unknown schema, damage).
        """
        if self.body is None or self.kind not in RECORD_OF_KIND:
            return None
        if self.fingerprint is None or self.codec is None:
            raise errors.CorruptRecordError(
                f"{self.file} record {self.position}: a body without fingerprint or codec")
        return schemas.decode(RECORD_OF_KIND[self.kind], self.body, self.fingerprint,
                              self.codec)




# -- the container, block by block (pure) ---------------------------------------------------










# -- listing ----------------------------------------------------------------------------------








# -- resolving content ---------------------------------------------------------------------


class _Content:
    """Keys and referenced bodies, read once per thread (keys) and event (bodies)."""

    def __init__(self, dynamodb: DynamoDBClient | None, table: str | None) -> None:
        self.keys: _shred.DynamoKeyStore | None = None
        self.store: DynamoJournalStore | None = None
        if dynamodb is not None and table:
            self.keys = _shred.DynamoKeyStore(dynamodb, table)
            # The archive records each body's digest: that, not the seal, is checked.
            self.store = DynamoJournalStore(dynamodb, table, check_seals=False)
        self._known: dict[str, _shred.ThreadKey | None] = {}

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def prefetch(self, thread_ids: set[str]) -> None:
        """The keys of these threads, in BatchGetItem requests of 100."""
        todo = sorted(t for t in thread_ids if t not in self._known)
        if self.keys is None or not todo:
            return
        found = self.keys.get_many(todo)
        for t in todo:
            self._known[t] = found.get(t)

    def key(self, thread_id: str) -> _shred.ThreadKey | None:
        if thread_id not in self._known:
            self.prefetch({thread_id})
        return self._known.get(thread_id)

    def referenced(self, pk: str, sk: str, ref: dict[str, Any]) -> tuple[bytes | None, str]:
        assert self.store is not None
        item = self.store.get(pk, sk)
        if item is None:
            return None, STATE_REFERENCE_GONE
        # The body as the fold reads it: inline, or its chunks reassembled and checked
        # against the item's digest; then against the digest the archive recorded.
        parts = chunk_parts((_keys.parse_sk(i["SK"]["S"]), i)
                            for i in self.store.with_chunks(pk, [item])[1:])
        try:
            body = record_body(item, parts.get(sk, {}))
        except errors.CorruptRecordError:
            return None, STATE_REFERENCE_MISMATCH
        if hashlib.sha256(body).hexdigest() != ref.get("digest"):
            return None, STATE_REFERENCE_MISMATCH
        return body, STATE_REFERENCED


def _is_sealed(value: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and "nonce" in value and "ciphertext" in value


def _sealed(value: dict[str, Any]) -> _shred.Sealed:
    return _shred.Sealed(bytes(value["nonce"]), bytes(value["ciphertext"]))


def resolve(file: str, position: int, raw: dict[str, Any], content: _Content) -> ArchivedEvent:
    """An archive record (as read with the current schema) as an ArchivedEvent."""
    pk, sk, thread = raw["pk"], raw["sk"], raw["thread_id"]
    body_raw, sealed_md, kid = raw.get("body"), raw.get("metadata_sealed"), raw.get("key_id")
    ref = dict(body_raw) if is_ref(body_raw) else None
    body: bytes | None = bytes(body_raw) if isinstance(body_raw, bytes) else None
    metadata: str | None = raw.get("metadata_json")
    state: str | None = None
    detail: str | None = None
    sealed = _is_sealed(body_raw) or sealed_md is not None
    if kid == _shred.WITHHELD_KEY_ID:
        state, body, metadata = STATE_SHREDDED, None, None
        detail = "the item was deleted before it was archived; its content was withheld"
    elif sealed:
        key = content.key(thread) if content.keys is not None else None
        if content.keys is None:
            state, body, metadata = STATE_NO_KEY_ACCESS, None, None
        elif key is None or key.key_id != kid:
            state, body, metadata = STATE_SHREDDED, None, None
            detail = "the thread's archive key no longer exists"
        else:
            try:
                if _is_sealed(body_raw):
                    body = _shred.unseal(key, _sealed(body_raw), pk=pk, sk=sk,
                                         field_name=SEALED_BODY)
                if sealed_md is not None:
                    metadata = _shred.unseal(key, _sealed(sealed_md), pk=pk, sk=sk,
                                             field_name=SEALED_METADATA).decode()
            except (_shred.UndecryptableError, UnicodeDecodeError) as e:
                state, body, metadata, detail = STATE_UNDECRYPTABLE, None, None, str(e)
    if state is None:
        if ref is not None:
            if content.store is None:
                state = STATE_NO_KEY_ACCESS
            else:
                body, state = content.referenced(pk, sk, ref)
        else:
            state = STATE_INLINE if body is not None else STATE_NONE
    written = raw.get("written_at")
    return ArchivedEvent(
        file=file, position=position, thread_id=thread, checkpoint_ns=raw["checkpoint_ns"],
        checkpoint_id=raw.get("checkpoint_id"), kind=raw["kind"], task_id=raw.get("task_id"),
        pk=pk, sk=sk, event_name=raw["event_name"], sequence_number=raw["sequence_number"],
        approximate_creation_ms=schemas.millis(raw["approximate_creation_time"]),
        written_at_ms=None if written is None else schemas.millis(written),
        fingerprint=raw.get("fingerprint"), codec=raw.get("codec"), body=body, state=state,
        metadata_json=metadata, event_id=raw.get("event_id", ""), run_id=raw.get("run_id"),
        source=raw.get("source"), step=raw.get("step"), key_id=kid, body_ref=ref,
        detail=detail, expires_at=raw.get("expires_at"),
    )


# -- the iteration --------------------------------------------------------------------------


def iter_archive(
    s3: S3Client,
    bucket: str,
    *,
    dynamodb: DynamoDBClient | None = None,
    table: str | None = None,
    thread_id: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    damaged: list[ArchiveDamage] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[ArchivedEvent]:
    """Every archived event (of ``thread_id``; that entered the journal in
    [``since_ms``, ``until_ms``)), in stream order, de-duplicated on sequence number.

    ``dynamodb`` and ``table`` (the journal table) are needed to decrypt (threads' keys)
    and to read referenced bodies; without them such events come back ``no-key-access``.
    Damage (a file or record that cannot be read) is appended to ``damaged`` and the
    iteration goes on; with ``damaged`` None it raises CorruptRecordError instead.
    ``progress(files_read, files)`` is called as files are read.

    Raises:
        BucketNotFoundError, AccessDeniedError, TransientError, ...: S3 or DynamoDB
            refused (an operational error, not damage).
    """

    def report(d: ArchiveDamage) -> None:
        if damaged is None:
            where = "" if d.position is None else f" record {d.position}"
            raise errors.CorruptRecordError(f"{d.file}{where}: {d.reason}")
        damaged.append(d)

    files = list_files(s3, bucket, since_ms=since_ms, until_ms=until_ms)
    content = _Content(dynamodb, table)
    seen: set[str] = set()
    try:
        if progress is not None:
            progress(0, len(files))
        for n, key in enumerate(files, 1):
            data = read_file(s3, bucket, key)
            if data is None:
                report(ArchiveDamage(key, None, "listed, then gone from the bucket"))
                continue
            wanted = []
            for position, raw in read_container(data, key, report):
                if thread_id is not None and raw["thread_id"] != thread_id:
                    continue
                created = schemas.millis(raw["approximate_creation_time"])
                if (since_ms is not None and created < since_ms) or (
                        until_ms is not None and created >= until_ms):
                    continue
                seq = raw["sequence_number"]
                if seq in seen:
                    continue  # a bisected retry's copy: the first file wins
                seen.add(seq)
                wanted.append((position, raw))
            content.prefetch({raw["thread_id"] for _, raw in wanted
                              if raw.get("key_id") not in (None, _shred.WITHHELD_KEY_ID)})
            for position, raw in wanted:
                yield resolve(key, position, raw, content)
            if progress is not None:
                progress(n, len(files))
    finally:
        content.close()
