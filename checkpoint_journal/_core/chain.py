"""Tamper evidence: the content hash of journal events and the hash chain of checkpoints.

What is hashed is the event's *content*, independent of how it is stored (compression,
chunks, schema version of the container):

- ``content_hash`` of a checkpoint, writes or blobs event: ``H(record + "\\n" + A)``, where
  ``record`` is the record type (``checkpoint_event``, ``writes_event``, ``blobs_event``)
  and ``A`` the Avro binary encoding of the event's fields under that record's **v1**
  schema (``checkpoint_journal/schemas/{record}.v1.avsc``): every field that existed
  before the hashes were added. Avro's binary encoding of a given schema is canonical,
  so any Avro library recomputes it.
- ``content_hash`` of a removal marker: ``H("removal_event\\n" + A)``, ``A`` its encoding
  under ``removal_event.v1`` with ``content_hash`` and ``hash_key_id`` set to null.
- ``hash`` attribute of a tombstone (a plain item, no body):
  ``H("tombstone\\n" + PK + "\\n" + SK + "\\n" + written_at in ms, in decimal)``.
- ``chain_hash`` of a checkpoint: ``H("chain\\n" + P + C)``, ``P`` the 32 bytes of the parent
  checkpoint's ``chain_hash`` (32 zero bytes when it has no parent in its namespace) and
  ``C`` the 32 bytes of its own ``content_hash``. A thread's checkpoints thus form a hash
  chain (a tree where the thread forks): altering, removing or inserting one breaks every
  descendant's chain.

``H`` is SHA-256, or HMAC-SHA-256 under the deployment's *chain key* when one is given
(``JournalSaver(chain_key=...)``): then ``hash_key_id`` names the key (the first 16 hex
digits of SHA-256 of it) and only a holder of the key can make hashes that verify, so a
forged event inserted by someone with write access to the table is detected too. Plain
SHA-256 detects alteration and removal, and insertion that does not recompute the hashes;
it cannot tell a well-formed forgery from a genuine event.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from checkpoint_journal import schemas

ZERO = bytes(32)
MIN_KEY_BYTES = 16
CHAINED_RECORDS = (schemas.RECORD_CHECKPOINT, schemas.RECORD_WRITES, schemas.RECORD_BLOBS)


def key_bytes(key: bytes | str | None) -> bytes | None:
    """The chain key as bytes, exactly (a str is taken as UTF-8); refuses keys too short
    to be secret."""
    if key is None:
        return None
    raw = key.encode() if isinstance(key, str) else key
    if not isinstance(raw, bytes | bytearray) or len(raw) < MIN_KEY_BYTES:
        raise ValueError(
            f"chain_key must be at least {MIN_KEY_BYTES} bytes of secret (for example "
            "32 random bytes kept in AWS Secrets Manager)"
        )
    return bytes(raw)


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


@dataclass(frozen=True)
class Stamp:
    content_hash: str
    v1: bytes | None
    """The event's Avro encoding under its record's v1 schema (None for a removal
    marker, whose hashed encoding differs from its stored one)."""


class Hasher:
    """Computes content and chain hashes, keyed or not."""

    def __init__(self, key: bytes | None) -> None:
        self.key = key
        self.key_id = key_id(key) if key is not None else None

    def _h(self, data: bytes) -> bytes:
        if self.key is None:
            return hashlib.sha256(data).digest()
        return hmac.new(self.key, data, hashlib.sha256).digest()

    def _content(self, record: str, value: Mapping[str, Any]) -> tuple[str, bytes]:
        """``content_hash`` of an event of ``record`` type (any schema version's dict),
        and the bytes hashed after the record-type prefix: the event's v1 encoding."""
        if record == schemas.RECORD_REMOVAL:
            value = {**value, "content_hash": None, "hash_key_id": None}
        elif record not in CHAINED_RECORDS:
            raise ValueError(f"no content hash is defined for {record!r}")
        # The v1 bytes are the hash input: the codec writes exactly what any Avro
        # library writes for them (tests/unit/test_avro_codec.py checks it against fastavro).
        encoded = schemas.version(record, 1).codec.encode(value)
        return self._h(record.encode() + b"\n" + encoded).hex(), encoded

    def content(self, record: str, value: Mapping[str, Any]) -> str:
        """``content_hash`` of an event of ``record`` type (any schema version's dict)."""
        return self._content(record, value)[0]

    def chain(self, parent_chain: str | None, content_hash: str) -> str:
        parent = bytes.fromhex(parent_chain) if parent_chain else ZERO
        return self._h(b"chain\n" + parent + bytes.fromhex(content_hash)).hex()

    def stamp(self, record: str, value: dict[str, Any]) -> str:
        """Set ``value``'s ``content_hash`` and ``hash_key_id`` (in place); returns the
        content hash."""
        return self._stamp(record, value).content_hash

    def _stamp(self, record: str, value: dict[str, Any]) -> Stamp:
        """``stamp``, keeping the event's v1 encoding, which ``schemas.encode(..., v1=)``
        extends rather than encoding the event's values a second time."""
        digest, encoded = self._content(record, value)
        value["content_hash"] = digest
        value["hash_key_id"] = self.key_id
        # A removal marker's hashed bytes have its hash fields nulled: not its encoding.
        return Stamp(digest, None if record == schemas.RECORD_REMOVAL else encoded)

    def encode(self, record: str, value: dict[str, Any], *, compress: bool,
               parent_chain: str | None = None) -> schemas.Encoded:
        """Stamp ``value``'s hashes (in place; a checkpoint's ``chain_hash`` follows
        ``parent_chain``) and encode it in the current schema, its values encoded once:
        the current encoding extends the v1 encoding that was hashed."""
        stamp = self._stamp(record, value)
        if record == schemas.RECORD_CHECKPOINT:
            value["chain_hash"] = self.chain(parent_chain, stamp.content_hash)
        return schemas.encode(record, value, compress=compress, v1=stamp.v1)

    def tombstone(self, pk: str, sk: str, written_at_ms: int) -> str:
        """The hash of a namespace tombstone (``delete_thread``): a plain item, hashed
        over its key and time, so that with a chain key a forged tombstone cannot pass
        a deletion off as legitimate."""
        return self._h(f"tombstone\n{pk}\n{sk}\n{written_at_ms}".encode()).hex()

    def equal(self, a: str | None, b: str | None) -> bool:
        return a is not None and b is not None and hmac.compare_digest(a, b)
