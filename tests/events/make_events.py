"""Make the Lambda DynamoDB Streams events of ``tests/events/*.json`` from the code's items.

Each JSON file beside this module is one event, ``{"Records": [...]}``, in the shape
Lambda hands a function subscribed to the journal table's stream (StreamViewType
NEW_IMAGE). The items inside are the code's own, not hand-written: the saver's records
laid out by ``_core.items.plan_items`` under keys from ``_core.keys`` and hashed by
``_core.chain``; the projector's view, index and head items built by its pure functions
(``stream_handlers._view``) from a fold of those records. Every input is fixed (ids,
clocks, the random part of unique suffixes), so a run makes the same files.

The story, in stream order: one thread (``support#42``: a ``#`` shows the key
escaping) checkpoints twice in the root namespace, the second checkpoint too large for
one item (a saver with ``max_item_bytes`` at its 64 KiB minimum, so a small file shows
the chunking); the projector materialises the first; ``prune`` keeps the second, carrying
the values it shares with the first forward and leaving a removal marker; then
``delete_thread`` (twice: the second rewrites the tombstone) and DynamoDB's TTL process
takes the tombstone away a week later. The saver has no ``ttl_seconds``: only the
tombstone expires.

Re-run after a change to the item layout, a schema, the hashing or the projector's items:

    .venv/bin/python -m tests.events.make_events      (or: make events)

``tests/unit/test_event_fixtures.py`` fails while a file differs from what this makes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import WRITES_IDX_MAP, empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_journal import schemas
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.chain import Hasher
from checkpoint_journal._core.fold import fold_partition
from checkpoint_journal._core.items import (
    MIN_ITEM_BYTES,
    Item,
    ItemPlan,
    metadata_attrs,
    plan_items,
)
from checkpoint_journal._core.size import MAX_ITEM_BYTES, item_size
from checkpoint_journal.saver._maintenance import TOMBSTONE_TTL_SECONDS
from checkpoint_journal.stream_handlers._view import build_view, head_item

DIRECTORY = Path(__file__).resolve().parent

REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE = "checkpoint-journal"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}/stream/2024-05-01T00:00:00.000"
#: What Lambda shows as the identity of a deletion by DynamoDB's TTL process.
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}

THREAD = "support#42"
NS = ""
CP1 = "1ef07a6c-1d2e-6f30-8000-000000000001"
CP2 = "1ef07a6c-5a1b-6c42-8001-000000000002"
RUN = "run-7f3a"
T0_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
V1 = f"{1:032}.0.5"  # the shape of JournalSaver.get_next_version, without its randomness
V2 = f"{2:032}.0.25"

_serde = JsonPlusSerializer()
_hasher = Hasher(None)
_PK = _keys.thread_pk(THREAD)


def _typed(value: Any) -> dict[str, Any]:
    type_, data = _serde.dumps_typed(value)
    return {"type": type_, "data": data}


def _uniq(now_ms: int, random_hex: str) -> str:
    """A unique suffix as ``_core.items.uniq`` makes it, its random part fixed."""
    return f"{now_ms:012x}{random_hex}"


def _incompressible(n: int) -> bytes:
    """``n`` bytes zstd cannot shrink (so the record's size is known), the same each run."""
    out = bytearray()
    block = b"checkpoint-journal"
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


# ---------------------------------------------------------------------------------------
# The saver's records (the fields of JournalSaver.put, put_writes and prune)


def _checkpoint(
    cid: str, parent: str | None, values: Mapping[str, Any], versions: Mapping[str, str],
    new: Mapping[str, str], *, step: int, written_ms: int, parent_chain: str | None,
    max_item_bytes: int = MAX_ITEM_BYTES,
) -> tuple[ItemPlan, str]:
    """A checkpoint event's items, and its chain hash."""
    checkpoint = {
        **empty_checkpoint(), "id": cid,
        "ts": dt.datetime.fromtimestamp(written_ms / 1000, tz=dt.UTC).isoformat(),
        "channel_versions": dict(versions), "updated_channels": sorted(new),
    }
    checkpoint.pop("channel_values")
    metadata = {"source": "loop", "step": step, "parents": {}, "run_id": RUN}
    record: dict[str, Any] = {
        "thread_id": THREAD, "checkpoint_ns": NS, "checkpoint_id": cid,
        "parent_checkpoint_id": parent, "written_at": written_ms,
        "checkpoint": _typed(checkpoint), "metadata": _typed(metadata),
        "blobs": [{"channel": ch, "version": v, "value": _typed(values[ch])}
                  for ch, v in new.items()],
        "channel_versions": [{"channel": ch, "version": v} for ch, v in versions.items()],
    }
    encoded = _hasher.encode(schemas.RECORD_CHECKPOINT, record, compress=True,
                             parent_chain=parent_chain)
    extra = metadata_attrs(metadata)
    if parent:
        extra["parent"] = {"S": parent}
    plan = plan_items(_PK, _keys.checkpoint_sk(NS, cid), _keys.KIND_CHECKPOINT, encoded,
                      written_at_ms=written_ms, expires_at=None, extra=extra,
                      max_item_bytes=max_item_bytes)
    return plan, record["chain_hash"]


def _writes(cid: str, task_id: str, writes: list[tuple[str, Any]], written_ms: int) -> Item:
    record = {
        "thread_id": THREAD, "checkpoint_ns": NS, "checkpoint_id": cid, "task_id": task_id,
        "task_path": "~__pregel_pull, respond", "written_at": written_ms,
        "writes": [{"channel": ch, "idx": WRITES_IDX_MAP.get(ch, i), "value": _typed(v)}
                   for i, (ch, v) in enumerate(writes)],
    }
    encoded = _hasher.encode(schemas.RECORD_WRITES, record, compress=True)
    sk = _keys.writes_sk(NS, cid, task_id, _uniq(written_ms, "5eed0001"))
    plan = plan_items(_PK, sk, _keys.KIND_WRITES, encoded, written_at_ms=written_ms,
                      expires_at=None)
    return plan.commit


def _carried(cid: str, carried: list[tuple[str, str, Any]], written_ms: int) -> Item:
    """The blobs event ``prune`` writes for a kept checkpoint whose values it removes."""
    record = {
        "thread_id": THREAD, "checkpoint_ns": NS, "checkpoint_id": cid,
        "written_at": written_ms,
        "blobs": [{"channel": ch, "version": v, "value": _typed(value)}
                  for ch, v, value in carried],
    }
    encoded = _hasher.encode(schemas.RECORD_BLOBS, record, compress=True)
    sk = _keys.blobs_sk(NS, cid, _uniq(written_ms, "5eed0002"))
    return plan_items(_PK, sk, _keys.KIND_BLOBS, encoded, written_at_ms=written_ms,
                      expires_at=None).commit


def _removal(removed: list[dict[str, Any]], written_ms: int) -> Item:
    marker = {"thread_id": THREAD, "checkpoint_ns": NS, "written_at": written_ms,
              "reason": "prune", "removed": removed}
    encoded = _hasher.encode(schemas.RECORD_REMOVAL, marker, compress=True)
    sk = _keys.removal_sk(NS, _uniq(written_ms, "5eed0003"))
    return plan_items(_PK, sk, _keys.KIND_REMOVAL, encoded, written_at_ms=written_ms,
                      expires_at=None).commit


def _tombstone(written_ms: int) -> Item:
    """The tombstone ``delete_thread`` puts (a plain item, no body)."""
    sk = _keys.tombstone_sk(NS)
    return {
        "PK": {"S": _PK}, "SK": {"S": sk}, "kind": {"S": _keys.KIND_TOMBSTONE},
        "written_at": {"N": str(written_ms)},
        "expires_at": {"N": str(written_ms // 1000 + TOMBSTONE_TTL_SECONDS)},
        "hash": {"S": _hasher.tombstone(_PK, sk, written_ms)},
    }


# ---------------------------------------------------------------------------------------
# Lambda's record around an item


def _json_value(value: Mapping[str, Any]) -> dict[str, Any]:
    """An attribute value as Lambda's JSON has it: binary as base64, the rest as is."""
    ((tag, inner),) = value.items()
    if tag == "B":
        return {tag: base64.b64encode(inner).decode("ascii")}
    if tag == "BS":
        return {tag: [base64.b64encode(b).decode("ascii") for b in inner]}
    if tag == "M":
        return {tag: {k: _json_value(v) for k, v in inner.items()}}
    if tag == "L":
        return {tag: [_json_value(v) for v in inner]}
    return {tag: inner}


def _image(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _json_value(v) for name, v in item.items()}


class _Stream:
    """The table's stream: records numbered in the order they are appended."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def add(self, name: str, event_name: str, item: Item, at_ms: int, *,
            ttl: bool = False) -> None:
        seq = f"{4421584500000000017450439000 + 100 * (len(self.records) + 1)}"
        keys = {"PK": item["PK"], "SK": item["SK"]}
        body: dict[str, Any] = {
            # Epoch seconds, whole: DynamoDB Streams rounds down to the second.
            "ApproximateCreationDateTime": float(at_ms // 1000),
            "Keys": _image(keys),
        }
        if event_name != "REMOVE":  # NEW_IMAGE: a removal carries its keys only
            body["NewImage"] = _image(item)
        body["SequenceNumber"] = seq
        body["SizeBytes"] = item_size(keys) + (item_size(item) if event_name != "REMOVE" else 0)
        body["StreamViewType"] = "NEW_IMAGE"
        record: dict[str, Any] = {
            "eventID": hashlib.md5(seq.encode(), usedforsecurity=False).hexdigest(),
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "dynamodb": body,
        }
        if ttl:
            record["userIdentity"] = dict(TTL_IDENTITY)
        record["eventSourceARN"] = STREAM_ARN
        assert name not in self.records, name
        self.records[name] = record


# ---------------------------------------------------------------------------------------
# The story


def build() -> dict[str, dict[str, Any]]:
    """Every event file's content, by file name without ``.json``."""
    stream = _Stream()
    values = {"messages": ["Where is my order A1002?"], "customer": {"name": "Ada", "tier": "gold"}}
    versions = {"messages": V1, "customer": V1}

    t = T0_MS + 250
    plan1, chain1 = _checkpoint(CP1, None, values, versions, versions, step=1, written_ms=t,
                                parent_chain=None)
    stream.add("checkpoint_insert", "INSERT", plan1.commit, t)
    t += 1_000
    writes = _writes(CP1, "respond", [("messages", ["Order A1002 ships tomorrow."]),
                                      ("route", "done")], t)
    stream.add("writes_insert", "INSERT", writes, t)

    # The projector's pass over CP1: index entries, then the view, then the head.
    t += 750
    fold = fold_partition([plan1.commit, writes], now_s=t / 1000, use_views=True)
    ns = fold.namespaces[NS]
    built = build_view(THREAD, NS, ns, ns.checkpoints[CP1])
    stream.add("index_insert", "INSERT", built.index[0], t)
    for i, entry in enumerate(built.index[1:], 1):
        stream.add(f"_index_{i}", "INSERT", entry, t)
    stream.add("view_insert", "INSERT", built.view, t)
    head = head_item(THREAD, NS, ns, projected_at_ms=t)
    assert head is not None
    stream.add("head_insert", "INSERT", head, t)

    # CP2 carries an attachment too large for one 64 KiB item: two chunks, then the commit.
    t = T0_MS + 60_000
    # Just over the item budget: the second chunk holds the ~4 KB past the first's 60 KiB.
    attachment_bytes = MIN_ITEM_BYTES
    new = {"attachment": V2}
    plan2, _ = _checkpoint(
        CP2, CP1, {"attachment": _incompressible(attachment_bytes)},
        {**versions, **new}, new, step=2, written_ms=t, parent_chain=chain1,
        max_item_bytes=MIN_ITEM_BYTES,
    )
    assert len(plan2.chunks) == 2, len(plan2.chunks)
    # The first chunk (60 KB of base64) shows nothing the last does not: not in the files.
    stream.add("chunk_insert", "INSERT", plan2.chunks[-1], t)
    stream.add("chunked_commit_insert", "INSERT", plan2.commit, t)

    # prune(keep_latest): CP2 keeps the values it shared with CP1; CP1 goes.
    t = T0_MS + 120_000
    stream.add("blobs_insert", "INSERT",
               _carried(CP2, [(ch, versions[ch], values[ch]) for ch in sorted(values)], t), t)
    stream.add("removal_insert", "INSERT", _removal(
        [{"checkpoint_id": CP1, "parent_checkpoint_id": None, "chain_hash": chain1}], t), t)
    stream.add("delete_remove", "REMOVE", plan1.commit, t + 40)

    # delete_thread, twice; the tombstone expires a week after the second.
    t = T0_MS + 180_000
    stream.add("tombstone_insert", "INSERT", _tombstone(t), t)
    t = T0_MS + 240_000
    second = _tombstone(t)
    stream.add("tombstone_modify", "MODIFY", second, t)
    expired_ms = (int(second["expires_at"]["N"]) + 3_600) * 1000  # TTL deletes within days
    stream.add("ttl_remove", "REMOVE", second, expired_ms, ttl=True)

    events = {name: {"Records": [record]} for name, record in stream.records.items()
              if not name.startswith("_")}
    # Every record of the story, in stream order: what a mapping without filters delivers.
    events["mixed_batch"] = {"Records": list(stream.records.values())}
    return events


def render(event: Mapping[str, Any]) -> str:
    """The text of an event file."""
    return json.dumps(event, indent=2) + "\n"


def write(directory: Path = DIRECTORY) -> list[Path]:
    """(Re)write every event file and remove those the story no longer makes."""
    events = build()
    written = []
    for name, event in sorted(events.items()):
        path = directory / f"{name}.json"
        path.write_text(render(event), encoding="utf-8")
        written.append(path)
    for stale in set(directory.glob("*.json")) - set(written):
        stale.unlink()
    return written


if __name__ == "__main__":
    for path in write():
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
