"""Per-thread archive keys: how ``delete_thread`` erases a thread from the audit archive.

The archive (``stream_handlers/_archiver.py``) is written once and never edited, so that
it can sit under S3 Object Lock and so that an edit shows. Erasure is therefore done by
**crypto-shredding**: the content of each archived event (its journal body and its
metadata) is sealed with AES-256-GCM under a random 256-bit key of its thread, and
``delete_thread`` destroys that key. The archive files stay byte for byte what they were;
what the deleted thread said can no longer be read from them by anyone.

The key item lives in the journal table, in a partition of its own that no thread
partition (``T#...``, see ``_keys``) can be::

    PK  K#{sha256(thread_id), hex}     the thread id itself is not stored
    SK  K
    key         B   32 random bytes
    key_id      S   the first 16 hex digits of sha256(key): archive records name it
    created_at  N   epoch milliseconds

It has no ``kind`` attribute, so the stream filters (template.yaml) deliver neither its
insert to a handler; its removal reaches the projector, whose ``journal_key`` ignores
partitions other than ``T#``. Table backups and point-in-time recovery hold the key as
long as they hold the thread's journal: they expire together.

**Sealing.** Each field is sealed on its own (``seal``), with additional authenticated
data naming the item and the field (``aad``), so a sealed body cannot be moved to another
record or field without failing authentication. The 96-bit nonce is synthetic: an HMAC,
under a key derived from the thread key, of that AAD and the plaintext. A retried batch
thus writes byte-identical files (the archive's own rule), and a nonce repeats only for
the same field of the same item with the same content, which is the same ciphertext:
GCM's nonce-reuse failure needs two different plaintexts under one nonce, which would
take an HMAC collision.

**The race rule.** A stream batch may be archived (or retried) after ``delete_thread``
removed the thread and its key. Re-creating a key then would make the deleted events
readable again. So:

1. ``delete_thread`` deletes the key item *after* the thread's journal items;
2. when the archiver had to *create* a thread's key, it then checks, with consistent
   reads of the keys only, which of that thread's events in the batch still exist in the
   table. Events that no longer exist are archived with their content withheld (key id
   ``withheld``: plain fields only, read back as shredded). If none exists it deletes the
   key it created (conditional on its key id) and caches nothing.

Either the check sees an event still in the table, and then ``delete_thread`` (which had
not deleted that event yet) deletes the key after this creation, or it sees none, and the
archiver deletes the key itself.

**Residual edge.** A thread that is deleted and whose id is *reused* (new checkpoints
written under the same thread id) gets a new key when the archiver first meets the new
events. A batch of the *old* incarnation that is still being retried by Lambda after that
(for up to MaximumRecordAgeInSeconds, 6 h) finds the new key existing, not created, and
seals the old events under it: those old events become readable again, until the new
incarnation is deleted in turn. Avoiding it would cost an existence read for every
archived event; reusing a deleted thread's id within hours of a failed archive batch is
the only way to meet it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from checkpoint_journal import errors
from checkpoint_journal._core import aws, extras

T = TypeVar("T")

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from mypy_boto3_dynamodb import DynamoDBClient

KEY_PK_PREFIX = "K#"
KEY_SK = "K"
# AES-256: a 32-byte key. GCM's standard 96-bit nonce; its tag (16 bytes) ends the
# ciphertext, as cryptography's AESGCM writes it.
KEY_BYTES = 32
NONCE_BYTES = 12
# A key id is public (it travels in clear in every sealed record): 64 bits of sha256 of
# the key tell keys apart without saying anything usable about the key.
KEY_ID_HEX = 16
WITHHELD_KEY_ID = "withheld"
"""The key id of a record whose content the archiver withheld (the race rule): no key
has it (real ids are hex), so every reader reports the record as shredded."""

# Domain separation: these bytes begin every AAD and derive the nonce key, so nothing
# sealed here can be confused with another use of the same key.
_AAD_DOMAIN = b"checkpoint-journal archive v2"
_NONCE_LABEL = b"checkpoint-journal archive nonce v1"
# BatchGetItem takes at most 100 keys (DynamoDB limit).
BATCH_GET_MAX = 100
_UNPROCESSED_RETRIES = 8


def key_pk(thread_id: str) -> str:
    """The partition key of a thread's archive key: a hash, so no thread id (possibly
    personal data) is stored in it, and no length limit applies."""
    return KEY_PK_PREFIX + hashlib.sha256(thread_id.encode()).hexdigest()


def key_id_of(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:KEY_ID_HEX]


@dataclass(frozen=True)
class ThreadKey:
    """A thread's archive key. Its ``repr`` leaves the key out: never log a key."""

    thread_id: str
    key: bytes = field(repr=False)
    key_id: str
    created_ms: int


def new_key(thread_id: str, now_ms: int) -> ThreadKey:
    key = os.urandom(KEY_BYTES)
    return ThreadKey(thread_id, key, key_id_of(key), now_ms)


def key_item(k: ThreadKey) -> dict[str, Any]:
    return {
        "PK": {"S": key_pk(k.thread_id)},
        "SK": {"S": KEY_SK},
        "key": {"B": k.key},
        "key_id": {"S": k.key_id},
        "created_at": {"N": str(k.created_ms)},
    }


def parse_key_item(thread_id: str, item: dict[str, Any]) -> ThreadKey:
    """The ThreadKey of a key item; CorruptRecordError if it is not a sound one."""
    raw = item.get("key", {}).get("B")
    key = bytes(raw) if isinstance(raw, bytes | bytearray | memoryview) else b""
    kid = item.get("key_id", {}).get("S")
    if len(key) != KEY_BYTES or kid != key_id_of(key):
        raise errors.CorruptRecordError(
            f"archive key item {item.get('PK', {}).get('S', '?')!r} is damaged (no 32-byte "
            "key, or a key id that does not match it); the thread's archive cannot be sealed "
            "or read until it is deleted"
        )
    return ThreadKey(thread_id, key, kid, int(item.get("created_at", {}).get("N", "0")))


# -- sealing (pure) ------------------------------------------------------------------------


def aad(pk: str, sk: str, field_name: str) -> bytes:
    """The additional authenticated data of a sealed field: the domain, then the item's
    table key and the field's name, each length-prefixed (so no two differ only in where
    one part ends)."""
    out = bytearray(_AAD_DOMAIN)
    for part in (pk, sk, field_name):
        raw = part.encode()
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


@dataclass(frozen=True)
class Sealed:
    nonce: bytes
    ciphertext: bytes
    """AES-256-GCM ciphertext with its 16-byte tag at the end."""

    def record(self) -> dict[str, bytes]:
        """The Avro ``Sealed`` record of archive_event.v2."""
        return {"nonce": self.nonce, "ciphertext": self.ciphertext}


def _nonce(key: bytes, associated: bytes, plaintext: bytes) -> bytes:
    nonce_key = hmac.new(key, _NONCE_LABEL, hashlib.sha256).digest()
    mac = hmac.new(nonce_key, len(associated).to_bytes(4, "big") + associated, hashlib.sha256)
    mac.update(plaintext)
    return mac.digest()[:NONCE_BYTES]


@functools.cache
def _aead() -> tuple[type[AESGCM], type[Exception]]:
    """cryptography's AES-GCM and its authentication failure. Imported on first use, not
    with this module: the key store (``delete_thread`` destroys keys) needs no cipher,
    and the agent's install has none (cryptography comes with [audit] and [lambda])."""
    with extras.guard("audit", "sealing or opening the audit archive"):
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    return AESGCM, InvalidTag


def seal(key: ThreadKey, plaintext: bytes, *, pk: str, sk: str, field_name: str) -> Sealed:
    aesgcm, _ = _aead()
    associated = aad(pk, sk, field_name)
    nonce = _nonce(key.key, associated, plaintext)
    return Sealed(nonce, aesgcm(key.key).encrypt(nonce, plaintext, associated))


class UndecryptableError(errors.CorruptRecordError):
    """A sealed field failed authentication under its key: the archive was edited (or
    the field was moved from another record)."""


def unseal(key: ThreadKey, sealed: Sealed, *, pk: str, sk: str, field_name: str) -> bytes:
    """The plaintext of a sealed field; UndecryptableError if it does not authenticate."""
    if len(sealed.nonce) != NONCE_BYTES:
        raise UndecryptableError(f"sealed {field_name}: nonce of {len(sealed.nonce)} bytes")
    aesgcm, invalid_tag = _aead()
    try:
        return aesgcm(key.key).decrypt(sealed.nonce, sealed.ciphertext, aad(pk, sk, field_name))
    except invalid_tag as e:
        raise UndecryptableError(
            f"sealed {field_name} of {sk[:80]!r} fails AES-GCM authentication: the archive "
            "record was altered"
        ) from e


# -- the store of keys (I/O) --------------------------------------------------------------


class ArchiveKeyStore(Protocol):
    """The port the archiver and the archive reader use (tests pass an in-memory one)."""

    def get_many(self, thread_ids: Collection[str]) -> dict[str, ThreadKey]:
        """Existing keys of these threads, strongly consistent; absent ones left out."""
        ...

    def create(self, thread_id: str) -> tuple[ThreadKey, bool]:
        """A new key for the thread, and True; or, if one exists already, it and False."""
        ...

    def delete(self, thread_id: str, *, key_id: str | None = None) -> bool:
        """Delete the thread's key (only if it has ``key_id``, when given). True if one
        was deleted."""
        ...

    def existing(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (PK, SK) items exist, strongly consistent, keys only."""
        ...

    def tombstone_times(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """``written_at`` (ms) of the namespace tombstones among these keys that exist."""
        ...


class DynamoKeyStore:
    """Archive keys in the journal table (the item layout is in the module docstring)."""

    def __init__(self, client: DynamoDBClient, table: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.table = table
        self._clock = clock

    def _call(self, fn: Callable[[], T], what: str) -> T:
        # The caller is the archiver, the saver's delete_thread or an auditor: name
        # what each needs.
        return aws.call(fn, service=aws.DYNAMODB, resource=self.table, what=what, denied_hint=(
            "The archiver's role needs GetItem, PutItem and DeleteItem on the table's K# "
            "items (template.yaml, ArchiverRole); an auditor needs the stack's "
            "AuditorPolicy; the agent its AgentPolicy."))

    def get_many(self, thread_ids: Collection[str]) -> dict[str, ThreadKey]:
        by_pk = {key_pk(t): t for t in thread_ids}
        found: dict[str, ThreadKey] = {}
        for item in self._batch([(pk, KEY_SK) for pk in by_pk], projection=None,
                                what="read the threads' archive keys"):
            pk = item["PK"]["S"]
            found[by_pk[pk]] = parse_key_item(by_pk[pk], item)
        return found

    def get(self, thread_id: str) -> ThreadKey | None:
        return self.get_many([thread_id]).get(thread_id)

    def create(self, thread_id: str) -> tuple[ThreadKey, bool]:
        k = new_key(thread_id, int(self._clock() * 1000))
        try:
            self._call(lambda: self.client.put_item(
                TableName=self.table,
                Item=key_item(k),
                # A key, once made, is the thread's until delete_thread: never replace it
                # (archived records name it). A concurrent creator wins; we use its key.
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": "PK"},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            ), "create a thread's archive key")
        except aws.ConditionFailed as e:
            if e.item is not None:
                return parse_key_item(thread_id, e.item), False
            existing = self.get(thread_id)  # an emulator that does not return ALL_OLD
            if existing is None:
                raise errors.TransientError(
                    "a thread's archive key was created and deleted while being created; "
                    "Lambda retries the batch"
                ) from e
            return existing, False
        return k, True

    def delete(self, thread_id: str, *, key_id: str | None = None) -> bool:
        kw: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"PK": {"S": key_pk(thread_id)}, "SK": {"S": KEY_SK}},
            "ReturnValues": "ALL_OLD",
        }
        if key_id is not None:
            # The archiver deletes only the key it created itself (the race rule), never
            # a newer one that a reused thread id has since been given.
            kw["ConditionExpression"] = "#kid = :kid"
            kw["ExpressionAttributeNames"] = {"#kid": "key_id"}
            kw["ExpressionAttributeValues"] = {":kid": {"S": key_id}}
        try:
            resp = self._call(lambda: self.client.delete_item(**kw),
                              "delete a thread's archive key")
        except aws.ConditionFailed:
            return False
        return "Attributes" in resp

    def existing(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        unique = list(dict.fromkeys(keys))
        # Keys only: the archiver's role may read journal items' PK and SK, nothing else
        # (template.yaml, ArchiverRole, JournalEventExists).
        for item in self._batch(unique, projection="#pk, #sk",
                                what="check that journal events exist"):
            found.add((item["PK"]["S"], item["SK"]["S"]))
        return found

    def tombstone_times(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        # Keys and written_at only (template.yaml, ArchiverRole, JournalEventExists).
        return {(i["PK"]["S"], i["SK"]["S"]): int(i.get("written_at", {}).get("N", "0"))
                for i in self._batch(list(dict.fromkeys(keys)), projection="#pk, #sk, #wa",
                                     what="read the tombstones of deleted threads")}

    def _batch(self, keys: list[tuple[str, str]], *, projection: str | None,
               what: str) -> Iterable[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(0, len(keys), BATCH_GET_MAX):
            request: dict[str, Any] = {
                "Keys": [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in keys[i:i + BATCH_GET_MAX]],
                # Strongly consistent: the race rule and delete_thread depend on seeing
                # the latest write.
                "ConsistentRead": True,
            }
            if projection is not None:
                request["ProjectionExpression"] = projection
                request["ExpressionAttributeNames"] = {
                    n: a for n, a in (("#pk", "PK"), ("#sk", "SK"), ("#wa", "written_at"))
                    if n in projection}
            pending: Any = {self.table: request}
            for attempt in range(_UNPROCESSED_RETRIES + 1):
                req = pending
                resp = self._call(lambda: self.client.batch_get_item(RequestItems=req), what)
                out.extend(resp.get("Responses", {}).get(self.table, []))
                pending = resp.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt))  # back off before re-asking
            else:
                raise errors.TransientError(f"{what}: reads stayed unprocessed after retries")
        return out


class KeyCache:
    """Keys a warm archiver container has already fetched, bounded in count and age.

    A cached key may have been destroyed since by a ``delete_thread`` this container did
    not see (its tombstone went to another container after a shard split): sealing under
    it then makes events unreadable early, never readable late. ``max_age`` bounds that
    window; a tombstone seen in a batch evicts its thread at once.
    """

    def __init__(self, max_entries: int = 4096, max_age_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, ThreadKey]] = OrderedDict()

    def get(self, thread_id: str) -> ThreadKey | None:
        entry = self._entries.get(thread_id)
        if entry is None:
            return None
        if self._clock() - entry[0] > self.max_age_s:
            del self._entries[thread_id]
            return None
        self._entries.move_to_end(thread_id)
        return entry[1]

    def put(self, k: ThreadKey) -> None:
        self._entries[k.thread_id] = (self._clock(), k)
        self._entries.move_to_end(k.thread_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def evict(self, thread_id: str) -> None:
        self._entries.pop(thread_id, None)

    def __len__(self) -> int:
        return len(self._entries)
