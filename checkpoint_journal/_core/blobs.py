"""Where offloaded values live in the blob bucket, and how they are encoded (pure).

``blobs/{thread hash}/{namespace hash}/{incarnation}/{digest}``:

- the hashes keep thread ids out of object keys (they may be personal data) and give
  every thread, and namespace, its own prefix, so ``delete_thread`` removes a thread's
  blobs with a prefix listing;
- the incarnation is the time of the namespace's latest tombstone (0 before any):
  after a delete and a reuse of the thread id, new blobs land under a new prefix, so
  cleaning up the deleted incarnation can never remove a blob the new one points to;
- the digest is the SHA-256 of the value's serde type and bytes: a value unchanged
  between checkpoints is one object, written once.

The object body is the value's bytes, zstd-compressed when that makes them smaller.
"""

from __future__ import annotations

import hashlib

from checkpoint_journal.errors import CorruptRecordError
from checkpoint_journal.schemas import squeeze, unsqueeze

PREFIX = "blobs/"
# Values of 350 KiB or more, as stored, always go to S3 (DESIGN §1).
OFFLOAD_ALWAYS_BYTES = 350 * 1024
# Default for the projector's INLINE_LIMIT_BYTES: a value this large or larger, as
# stored, is kept in S3 rather than repeated inside every view item that shows it.
DEFAULT_INLINE_LIMIT_BYTES = 32 * 1024


def _h(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def thread_prefix(thread_id: str) -> str:
    return f"{PREFIX}{_h(thread_id, 32)}/"


def namespace_prefix(thread_id: str, checkpoint_ns: str) -> str:
    return f"{thread_prefix(thread_id)}{_h(checkpoint_ns, 16)}/"


def incarnation_prefix(thread_id: str, checkpoint_ns: str, incarnation: int) -> str:
    return f"{namespace_prefix(thread_id, checkpoint_ns)}{incarnation:015d}/"


def digest(type_: str, data: bytes) -> str:
    h = hashlib.sha256(type_.encode())
    h.update(b"\0")
    h.update(data)
    return h.hexdigest()


def object_key(thread_id: str, checkpoint_ns: str, incarnation: int, value_digest: str) -> str:
    return incarnation_prefix(thread_id, checkpoint_ns, incarnation) + value_digest


def incarnation_of(key: str) -> int:
    """The incarnation part of an object key (raises ValueError if it has none)."""
    return int(key.split("/")[3])


def pack(data: bytes) -> tuple[bytes, str]:
    """The object body for a value's bytes and its codec (the journal's own rule)."""
    return squeeze(data)


def unpack(body: bytes, codec: str, expected_digest: str, type_: str) -> bytes:
    data = unsqueeze(body, codec, f"blob {expected_digest[:12]}")
    if digest(type_, data) != expected_digest:
        raise CorruptRecordError(f"blob {expected_digest[:12]}: content does not match its digest")
    return data
