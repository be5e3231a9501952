"""The metadata and thread indexes (pure): what the projector writes, what list reads.

MetaIndex: one index item per (checkpoint, top-level metadata key). Its hash key ``mi``
is a digest of the key and the value's canonical JSON plus a shard suffix, its range key
``ms`` the checkpoint id, so ``list(None, filter={"user_id": "u1"})`` queries the
``SHARDS`` partitions of that (key, value), newest first, instead of scanning. The shard
is a function of the thread, so a common value (``source="loop"``) spreads its writes
over several partitions instead of one hot key.

ThreadIndex: each namespace head carries ``ta`` (a shard) and ``ts`` (its last
activity in epoch milliseconds, zero-padded), for browsing threads by recent activity.
"""

from __future__ import annotations

import decimal
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

SHARDS = 8
META_INDEX = "MetaIndex"
THREAD_INDEX = "ThreadIndex"
# A metadata value whose canonical JSON is longer than this is not indexed.
MAX_INDEXED_VALUE_BYTES = 1024


def normal(value: Any) -> Any:
    """Numbers as DynamoDB returns them (Decimal) and as callers pass them compare equal."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normal(v) for v in value]
    return value


def canonical(value: Any) -> str | None:
    """Canonical JSON of a metadata value, or None when it cannot be indexed."""
    try:
        text = json.dumps(normal(value), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return None
    try:
        size = len(text.encode())
    except UnicodeEncodeError:  # a lone surrogate: not text DynamoDB can hold
        return None
    return text if size <= MAX_INDEXED_VALUE_BYTES else None


def shard(thread_id: str) -> int:
    return int(hashlib.sha256(thread_id.encode()).hexdigest()[:8], 16) % SHARDS


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def meta_hash(key: str, value: Any) -> str | None:
    """The MetaIndex hash key, without its shard suffix; None if not indexable.

    Empty values (``None``, ``""``, ``{}``, ``[]``) are not indexed: every root checkpoint
    has ``parents={}``, and an entry per checkpoint for it would cost a write each to find
    nothing useful; a filter on an empty value is answered by walking the thread index.
    """
    if value is None or (isinstance(value, (str, dict, list, tuple)) and not value):
        return None
    text = canonical(value)
    if text is None:
        return None
    h = hashlib.sha256(key.encode())
    h.update(b"\0")
    h.update(text.encode())
    return h.hexdigest()[:32]


def meta_partition(key_value_hash: str, shard_no: int) -> str:
    return f"{key_value_hash}.{shard_no}"


def thread_partition(shard_no: int) -> str:
    return f"threads.{shard_no}"


def activity(ms: int) -> str:
    return f"{ms:015d}"
