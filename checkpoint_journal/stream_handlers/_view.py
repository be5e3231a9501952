"""Projector items from a journal fold (pure: no boto3 here).

``build_view`` turns one visible checkpoint of a folded namespace into the items the
projector writes: the S3 objects its large values need (written first), its index
items, and its view item. The same inputs always give the same items (I3), which is
what lets a retried, duplicated or reordered batch, and ``rebuild``, agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from checkpoint_journal import schemas
from checkpoint_journal._core import blobs as _blobs
from checkpoint_journal._core import index as _index
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import (
    BlobRef,
    CheckpointEvent,
    JournalRef,
    Namespace,
    Value,
    value_record,
)
from checkpoint_journal._core.items import Item, to_attr
from checkpoint_journal._core.size import MAX_ITEM_BYTES, item_size


@dataclass(frozen=True)
class Offload:
    """An object to put in the blob bucket before the view item that points to it."""

    ref: BlobRef
    body: bytes


@dataclass(frozen=True)
class ViewItems:
    view: Item
    index: list[Item]
    offloads: list[Offload]


# Headroom under the item limit for the item's own attributes besides the body.
_VIEW_HEADROOM = 8 * 1024


def _offload(
    thread_id: str, ns_name: str, incarnation: int, value: tuple[str, bytes],
    packed: tuple[bytes, str],
) -> Offload:
    type_, data = value
    body, codec = packed
    d = _blobs.digest(type_, data)
    ref = BlobRef(
        key=_blobs.object_key(thread_id, ns_name, incarnation, d),
        type=type_, digest=d, size=len(data), stored=len(body), codec=codec,
    )
    return Offload(ref, body)


def build_view(
    thread_id: str,
    ns_name: str,
    ns: Namespace,
    event: CheckpointEvent,
    *,
    inline_limit: int = _blobs.DEFAULT_INLINE_LIMIT_BYTES,
    max_item_bytes: int = MAX_ITEM_BYTES,
) -> ViewItems:
    """The items that materialise ``event`` (which must be visible in ``ns``)."""
    limit = min(inline_limit, _blobs.OFFLOAD_ALWAYS_BYTES)
    incarnation = ns.tombstone_ms
    cid = event.checkpoint_id
    offloads: dict[str, Offload] = {}
    # Objects this incarnation's views already point to: the same content is the same
    # reference, with nothing to upload again.
    prefix = _blobs.incarnation_prefix(thread_id, ns_name, incarnation)
    known = {ref.key: ref for view in ns.views.values() for ref in view.refs()
             if ref.key.startswith(prefix)}

    def place(value: Value, *, force: bool = False) -> Value:
        if isinstance(value, (BlobRef, JournalRef)):
            return value  # in S3 already, or a delta the journal holds: not repeated here
        packed = _blobs.pack(value[1])
        if force or len(packed[0]) >= limit:
            off = _offload(thread_id, ns_name, incarnation, value, packed)
            if off.ref.key in known:
                return known[off.ref.key]
            offloads.setdefault(off.ref.key, off)
            return off.ref
        return value

    resolved = ns.resolve(event, event.channel_versions, raw=True)
    channels: dict[str, tuple[Any, Value | None, int]] = {
        ch: (r.version, None if r.value is None else place(r.value), r.written_at_ms)
        for ch, r in sorted(resolved.items())
    }
    # A view that points into the journal for a value is never read alone: every reader
    # folds the journal items beside it (the checkpoint's writes events sort just above
    # it, so the same read has them). A copy of the pending writes would go unread.
    journal_bound = any(isinstance(v, JournalRef) for _, v, _ in channels.values())
    writes = [] if journal_bound else [(w, place(w.value)) for w in ns.writes.get(cid, [])]

    def encode() -> Item:
        record = {
            "thread_id": thread_id,
            "checkpoint_ns": ns_name,
            "checkpoint_id": cid,
            "parent_checkpoint_id": event.parent_checkpoint_id,
            "written_at": event.written_at_ms,
            "checkpoint": {"type": event.checkpoint[0], "data": event.checkpoint[1]},
            "metadata": {"type": event.metadata[0], "data": event.metadata[1]},
            "channels": [
                {"channel": ch, "version": ver, "value": value_record(v), "stored_at": at}
                for ch, (ver, v, at) in channels.items()
            ],
            "writes": [
                {"task_id": w.task_id, "task_path": w.task_path, "channel": w.channel,
                 "idx": w.idx, "value": value_record(v)}
                for w, v in writes
            ],
            "writes_folded": ns.writes_events.get(cid, 0),
            "chain_hash": event.chain_hash,
        }
        enc = schemas.encode(schemas.RECORD_VIEW, record, compress=True)
        item: Item = {
            "PK": {"S": _keys.thread_pk(thread_id)},
            "SK": {"S": _keys.view_sk(ns_name, cid)},
            "kind": {"S": _keys.KIND_VIEW},
            "fp": {"S": enc.fingerprint},
            "codec": {"S": enc.codec},
            "written_at": {"N": str(event.written_at_ms)},
            "wm": {"N": str(ns.writes_events.get(cid, 0))},
            "body": {"B": enc.body},
        }
        if event.expires_at is not None:
            item["expires_at"] = {"N": str(event.expires_at)}
        return item

    item = encode()
    # Too big for one item: move the largest inline values out until it fits.
    while item_size(item) > max_item_bytes - _VIEW_HEADROOM:
        inline = [
            (len(v[1]), "c", ch) for ch, (_, v, _) in channels.items()
            if v is not None and not isinstance(v, (BlobRef, JournalRef))
        ] + [
            (len(v[1]), "w", str(i)) for i, (_, v) in enumerate(writes)
            if not isinstance(v, (BlobRef, JournalRef))
        ]
        if not inline:
            raise ValueError(f"view of {cid} does not fit an item even with every value in S3")
        _, where, name = max(inline)
        if where == "c":
            ver, v, at = channels[name]
            channels[name] = (ver, place(v, force=True), at)  # type: ignore[arg-type]
        else:
            w, v = writes[int(name)]
            writes[int(name)] = (w, place(v, force=True))
        item = encode()

    index = index_items(thread_id, ns_name, event)
    return ViewItems(item, index, list(offloads.values()))


def index_items(thread_id: str, ns_name: str, event: CheckpointEvent) -> list[Item]:
    """One MetaIndex entry per indexable top-level metadata key."""
    out: list[Item] = []
    shard = _index.shard(thread_id)
    for key, value in sorted((event.md or {}).items()):
        kv = _index.meta_hash(key, value)
        if kv is None:
            continue
        item: Item = {
            "PK": {"S": _keys.thread_pk(thread_id)},
            "SK": {"S": _keys.index_sk(ns_name, event.checkpoint_id, _index.key_hash(key))},
            "kind": {"S": _keys.KIND_INDEX},
            "mi": {"S": _index.meta_partition(kv, shard)},
            "ms": {"S": event.checkpoint_id},
            "written_at": {"N": str(event.written_at_ms)},
        }
        if event.expires_at is not None:
            item["expires_at"] = {"N": str(event.expires_at)}
        out.append(item)
    return out


def head_item(
    thread_id: str, ns_name: str, ns: Namespace, *, projected_at_ms: int
) -> Item | None:
    """The namespace's head (its latest visible checkpoint), or None when it has none."""
    if not ns.checkpoints:
        return None
    latest = ns.checkpoints[max(ns.checkpoints)]
    item: Item = {
        "PK": {"S": _keys.thread_pk(thread_id)},
        "SK": {"S": _keys.head_sk(ns_name)},
        "kind": {"S": _keys.KIND_HEAD},
        "latest": {"S": latest.checkpoint_id},
        "ta": {"S": _index.thread_partition(_index.shard(thread_id))},
        "ts": {"S": _index.activity(ns.last_activity_ms)},
        "written_at": {"N": str(ns.last_activity_ms)},
        "pa": {"N": str(projected_at_ms)},
    }
    # md values come back from DynamoDB as Decimal: normalise to int/float first.
    step = _index.normal((latest.md or {}).get("step"))
    if step is not None and (attr := to_attr(step)) is not None:
        item["step"] = attr
    if latest.expires_at is not None:
        item["expires_at"] = {"N": str(latest.expires_at)}
    return item
