"""Journal records to DynamoDB items and back (pure: no boto3 here).

A record is Avro-encoded (``schemas``), then stored either as one item or, when the
item would exceed DynamoDB's 400 KB limit as DynamoDB counts it, as chunk items plus a
commit item that carries the chunk count and a SHA-256 of the whole body (I2: the
chunks are written first, the commit last; chunks without a commit are invisible).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.index import canonical
from checkpoint_journal._core.seal import SEAL_ITEM_BYTES
from checkpoint_journal._core.size import MAX_ITEM_BYTES, item_size
from checkpoint_journal.schemas import Encoded

Item = dict[str, Any]
"""A DynamoDB item in the low-level wire shape: ``{"PK": {"S": ...}, ...}``."""

# Headroom under the 400 KB limit for attribute names, keys and numbers, so that a
# chunk is always well-formed whatever its key length (keys are at most 3 KB).
_ITEM_HEADROOM = 4 * 1024
# The largest record the journal accepts: 64 MiB, far above any sane LangGraph state;
# past it the saver refuses rather than writing hundreds of items per step.
MAX_RECORD_BYTES = 64 * 1024 * 1024
# The smallest item budget a caller may configure (see JournalSaver.max_item_bytes).
MIN_ITEM_BYTES = 64 * 1024


def uniq(now_ms: int) -> str:
    """A unique, time-ordered suffix: 12 hex digits of milliseconds, 8 random."""
    return f"{now_ms:012x}{os.urandom(4).hex()}"


@dataclass(frozen=True)
class ItemPlan:
    """The items one record becomes, in the order they must be written."""

    chunks: list[Item] = field(default_factory=list)
    """Written first, in any order; invisible on their own."""
    commit: Item = field(default_factory=dict)
    """Written last; makes the record visible."""

    @property
    def request_count(self) -> int:
        return len(self.chunks) + 1


def plan_items(
    pk: str,
    sk: str,
    kind: str,
    encoded: Encoded,
    *,
    written_at_ms: int,
    expires_at: int | None,
    extra: Mapping[str, Any] | None = None,
    max_item_bytes: int = MAX_ITEM_BYTES,
) -> ItemPlan:
    """Lay out one encoded record as items (pure). Raises PayloadTooLargeError.

    ``max_item_bytes`` is the item budget as DynamoDB counts it (400 KB on AWS).
    """
    from checkpoint_journal.errors import PayloadTooLargeError

    base: Item = {
        "PK": {"S": pk},
        "SK": {"S": sk},
        "kind": {"S": kind},
        "fp": {"S": encoded.fingerprint},
        "codec": {"S": encoded.codec},
        "written_at": {"N": str(written_at_ms)},
    }
    if expires_at is not None:
        base["expires_at"] = {"N": str(expires_at)}
    if extra:
        base.update(extra)
    single = {**base, "body": {"B": encoded.body}}
    # The store adds each item's seal: room is kept for it.
    if item_size(single) + SEAL_ITEM_BYTES <= max_item_bytes:
        return ItemPlan([], single)
    body = encoded.body
    if len(body) > MAX_RECORD_BYTES:
        raise PayloadTooLargeError(
            f"a {kind} record of {len(body):,} bytes exceeds the journal's limit of "
            f"{MAX_RECORD_BYTES:,} bytes per record. Keep large artifacts out of graph state "
            "(store them elsewhere and keep a reference in state)."
        )
    chunk_bytes = max_item_bytes - _ITEM_HEADROOM
    n = math.ceil(len(body) / chunk_bytes)
    chunks = []
    for i in range(n):
        chunk: Item = {
            "PK": {"S": pk},
            "SK": {"S": _keys.chunk_sk(sk, i)},
            "kind": {"S": _keys.KIND_CHUNK},
            "written_at": {"N": str(written_at_ms)},
            "body": {"B": body[i * chunk_bytes : (i + 1) * chunk_bytes]},
        }
        if expires_at is not None:
            chunk["expires_at"] = {"N": str(expires_at)}
        chunks.append(chunk)
    commit = {
        **base,
        "chunks": {"N": str(n)},
        "digest": {"S": hashlib.sha256(body).hexdigest()},
    }
    return ItemPlan(chunks, commit)


# DynamoDB's numbers: 38 significant digits, magnitudes from 1E-130 to below 1E+126.
_MAX_DIGITS = 38
_MIN_MAGNITUDE = Decimal("1E-130")
_MAX_MAGNITUDE = Decimal("1E+126")
# DynamoDB nests documents at most 32 levels deep.
MAX_DEPTH = 32
# A GSI key value is at most 2,048 bytes; a longer run id is indexed by its hash.
MAX_RUN_KEY_BYTES = 1024


def _number(value: int | float) -> dict[str, Any] | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    text = str(value) if isinstance(value, int) else repr(value)
    d = Decimal(text)
    if d != 0 and not _MIN_MAGNITUDE <= abs(d) < _MAX_MAGNITUDE:
        return None
    digits = "".join(map(str, d.as_tuple().digits)).strip("0")  # significant digits
    if len(digits) > _MAX_DIGITS:
        return None
    return {"N": text}


def _text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_attr(value: Any, depth: int = 1) -> dict[str, Any] | None:
    """A JSON-like value as a DynamoDB attribute value, or None if DynamoDB cannot hold it
    faithfully (a number out of its range or precision, text that is not valid Unicode,
    nesting deeper than it allows).

    Used for the plain ``md`` (metadata) attribute that server-side filters and humans
    read; the authoritative metadata stays in the Avro body, exactly as given.
    """
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        return {"S": value} if _text(value) else None
    if depth >= MAX_DEPTH:
        return None
    if isinstance(value, (list, tuple)):
        items = [to_attr(v, depth + 1) for v in value]
        return None if any(i is None for i in items) else {"L": items}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            # DynamoDB map keys are non-empty strings (a subgraph's parents map has "").
            if not isinstance(k, str) or not k or not _text(k):
                continue
            a = to_attr(v, depth + 1)
            if a is None:
                return None
            out[k] = a
        return {"M": out}
    return None


def run_key(run_id: str) -> str:
    """The RunIndex key of a run: its id, or for an id too long for a GSI key (or not
    valid Unicode) ``sha256:`` and its hash, the same on write and on lookup."""
    raw = run_id.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_RUN_KEY_BYTES and _text(run_id):
        return run_id
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def metadata_attrs(metadata: Mapping[str, Any]) -> Item:
    """Plain attributes a checkpoint event carries besides its body."""
    attrs: Item = {}
    # The plain copy serves the metadata index and humans; the body is authoritative.
    # Each key whose value is at most 1 KB as JSON is kept, up to 16 KB in all.
    kept: dict[str, Any] = {}
    budget = 16 * 1024
    for key, value in metadata.items():
        text = canonical(value)  # the index's own rule: what is kept is what is indexed
        if text is not None and len(text) <= budget:
            kept[key] = value
            budget -= len(text)
    md = {k: a for k, v in kept.items() if k and (a := to_attr(v, 2)) is not None}
    if md:
        attrs["md"] = {"M": md}
    run_id = metadata.get("run_id")
    if isinstance(run_id, str) and run_id:
        attrs["run_id"] = {"S": run_key(run_id)}  # key of the RunIndex GSI (delete_for_runs)
    return attrs


def from_attr(attr: Any) -> Any:
    """A DynamoDB attribute value (Lambda's JSON form or boto3's) as plain JSON data: the
    inverse of :func:`to_attr` (numbers come back as int or float, never Decimal)."""
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
        return {k: from_attr(v) for k, v in value.items()}
    if tag == "L":
        return [from_attr(v) for v in value]
    if tag in ("SS", "NS"):
        return [from_attr({tag[0]: v}) for v in value]
    # Binary has no JSON form; the saver never writes it into md.
    return None
