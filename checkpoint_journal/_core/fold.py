"""The journal fold: raw journal items of a partition to checkpoints (pure).

This is the one place that says what the journal means. It is used by the saver's read
path and, later, by the projector and ``rebuild``, so all of them agree.

Rules, in order:

1. An item past ``expires_at`` (TTL) is ignored even before DynamoDB deletes it.
2. A namespace tombstone hides every item of that namespace written at or before it.
3. A record stored as chunks is visible only with its commit item and every chunk, and
   only if the reassembled body matches the commit's SHA-256.
4. A checkpoint's channel values are resolved at the versions in its
   ``channel_versions``: the blob for ``(channel, version)`` written by the latest
   event at or before the checkpoint (events carry only the channels they changed); a
   value stored as a delta (``_delta``) is replayed from its chain's items (or the
   saver's own copy of a base). A checkpoint past ``visible_until`` (a dependency of it
   has expired) is hidden.
5. A view item (written by the projector) is used only with its checkpoint event: its
   channel values stand for the values it resolved (a view is a pure function of the
   journal, so a value it holds at ``(channel, version)`` is the one the journal fold
   would pick at or after it), and its folded writes are current only while it has
   folded as many writes events as the journal holds for its checkpoint.
6. Pending writes follow LangGraph: key ``(task_id, idx)``; a regular write (idx >= 0)
   keeps the first value seen, a special one (error, interrupt, resume...) the last;
   events are applied in sort-key order (task, then time); the result is returned in
   ``writes_sort_key`` order.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from checkpoint_journal import schemas
from checkpoint_journal._core import delta as _delta
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.items import Item, from_attr
from checkpoint_journal.errors import CorruptRecordError

logger = logging.getLogger(__name__)

TypedValue = tuple[str, bytes]


@dataclass(frozen=True)
class BlobRef:
    """A value stored in the blob bucket by the projector."""

    key: str
    type: str
    digest: str
    size: int
    stored: int
    codec: str


@dataclass(frozen=True)
class JournalRef:
    """A view's stand-in for a value the journal holds as a delta (``_delta``): the value
    at the view's (channel, version) is the one checkpoint event ``source`` holds."""

    source: str


Value = TypedValue | BlobRef | JournalRef


def value_of(v: dict[str, Any] | None) -> Value | None:
    """An Avro TypedValue, BlobRef or JournalRef union member as a Python value."""
    if v is None:
        return None
    if "data" in v:
        return (v["type"], v["data"])
    if "key" not in v:
        return JournalRef(v["source"])
    return BlobRef(v["key"], v["type"], v["digest"], v["size"], v["stored"], v["codec"])


def value_record(v: Value | None) -> dict[str, Any] | None:
    if v is None:
        return None
    if isinstance(v, JournalRef):
        return {"source": v.source}
    if isinstance(v, BlobRef):
        return {"key": v.key, "type": v.type, "digest": v.digest, "size": v.size,
                "stored": v.stored, "codec": v.codec}
    return {"type": v[0], "data": v[1]}


@dataclass(frozen=True)
class CheckpointEvent:
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    written_at_ms: int
    checkpoint: TypedValue
    metadata: TypedValue
    blobs: dict[tuple[str, Any], TypedValue | None]
    """(channel, version) -> serialized value, or None for an empty channel."""
    size: int
    """Bytes stored for this record (body or chunks), as written."""
    channel_versions: dict[str, Any]
    """The checkpoint's channel versions, in plain form."""
    expires_at: int | None = None
    """When the checkpoint stops being visible (TTL or a dependency's TTL)."""
    md: dict[str, Any] | None = None
    """The plain metadata attribute, when the event carries one."""
    content_hash: str | None = None
    chain_hash: str | None = None
    """The tamper-evident hashes (``_chain``); None in events written before v2."""
    hash_key_id: str | None = None
    history_from: str | None = None
    """Where a DeltaChannel history of it starts (the ``hfrom`` attribute), if known."""


@dataclass(frozen=True)
class ViewCheckpoint:
    """A view item, decoded."""

    checkpoint_id: str
    parent_checkpoint_id: str | None
    written_at_ms: int
    checkpoint: TypedValue
    metadata: TypedValue
    channels: dict[str, tuple[Any, Value | None, int]]
    """channel -> (version, value, written_at ms of the journal item holding it)."""
    writes: list[ViewWrite]
    writes_folded: int
    chain_hash: str | None = None
    """The checkpoint event's chain hash, copied (None before v2)."""

    def refs(self) -> list[BlobRef]:
        """Every offloaded value the view points to."""
        values = [v for _, v, _ in self.channels.values()] + [w.value for w in self.writes]
        return [v for v in values if isinstance(v, BlobRef)]


@dataclass(frozen=True)
class ViewWrite:
    task_id: str
    task_path: str
    channel: str
    idx: int
    value: Value


@dataclass(frozen=True)
class FoldedWrite:
    task_id: str
    channel: str
    value: Value
    task_path: str
    idx: int


@dataclass
class Namespace:
    """Everything visible in one namespace of one thread."""

    checkpoints: dict[str, CheckpointEvent] = field(default_factory=dict)
    writes: dict[str, list[FoldedWrite]] = field(default_factory=dict)
    writes_events: dict[str, int] = field(default_factory=dict)
    """checkpoint id -> how many writes events the journal holds for it."""
    views: dict[str, ViewCheckpoint] = field(default_factory=dict)
    """View items read along with the journal (only with ``use_views``)."""
    tombstone_ms: int = 0
    """written_at of the namespace's tombstone (0: none)."""
    last_activity_ms: int = 0
    """The latest written_at of a visible checkpoint or writes event."""
    # (channel, version) -> [(checkpoint id the blob belongs to, value)]
    blobs: dict[tuple[str, Any], list[tuple[str, Value | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # (channel, version) -> written_at_ms of the item that holds it, for TTL re-carry.
    blob_written_at: dict[tuple[str, Any], int] = field(default_factory=dict)
    # (channel, version, checkpoint id) -> what a journal item (event or carried blobs, not
    # a view) of that checkpoint holds, deltas as stored; checkpoint id -> its written_at.
    journal: dict[_delta.Key, TypedValue | None] = field(default_factory=dict)
    journal_at: dict[str, int] = field(default_factory=dict)
    replayer: _delta.Replayer | None = None
    """Set by the fold: reconstructs deltas (``known`` may be given the saver's values)."""

    def _candidates(self, event: CheckpointEvent, channel: str,
                    version: Any) -> list[tuple[str, Value | None]]:
        """Sources of (channel, version) for ``event``, best first: the latest at or
        before it; at one source, a whole value, then a delta, then S3, then a pointer."""
        candidates = self.blobs.get((channel, version)) or []
        at_or_before = [c for c in candidates if c[0] <= event.checkpoint_id]
        return sorted(at_or_before or candidates, key=lambda c: (c[0], _rank(c[1])),
                      reverse=True)

    def resolve(self, event: CheckpointEvent, channel_versions: dict[str, Any], *,
                raw: bool = False) -> dict[str, Resolved]:
        """Where each channel of a checkpoint is stored, and its serialized value: deltas
        reconstructed (a channel whose chain was not all read is left out), or with
        ``raw`` as stored, a delta as the JournalRef a view holds for it."""
        out: dict[str, Resolved] = {}
        for channel, version in channel_versions.items():
            for source, value in self._candidates(event, channel, version):
                at = self.blob_written_at.get((channel, version), 0)
                if value is None or isinstance(value, BlobRef):
                    out[channel] = Resolved(version, value, source, at)
                    break
                ref = value.source if isinstance(value, JournalRef) else (
                    source if _delta.is_delta(value) else None)
                if ref is None:  # whole: in the journal, a chain's start; else a view's
                    chain = _delta.Chain(source, self.journal_at.get(source, at),
                                         len(value[1]), 0, 0) if (
                        self.journal.get((channel, version, source)) == value) else None
                    out[channel] = Resolved(version, value, source, at, chain)
                    break
                if raw:
                    out[channel] = Resolved(version, JournalRef(ref), source, at)
                    break
                got = self.replayer.full((channel, version, ref)) if self.replayer else None
                if got is not None:
                    out[channel] = Resolved(version, got[0], ref, at, got[1])
                    break
        return out

    def resolvable(self, event: CheckpointEvent, *, raw: bool = False) -> bool:
        """Whether every channel of ``event`` has a value (and, unless ``raw``, its whole
        delta chain) at or before it in what was read."""
        if any(not any(c[0] <= event.checkpoint_id for c in self.blobs.get((ch, v)) or [])
               for ch, v in event.channel_versions.items()):
            return False
        return len(self.resolve(event, event.channel_versions, raw=raw)) == len(
            event.channel_versions)

    def current_view(self, checkpoint_id: str) -> ViewCheckpoint | None:
        """The view of a visible checkpoint, if it has folded every writes event."""
        view = self.views.get(checkpoint_id)
        if view is None or checkpoint_id not in self.checkpoints:
            return None
        if view.writes_folded != self.writes_events.get(checkpoint_id, 0):
            return None
        return view


@dataclass(frozen=True)
class Resolved:
    version: Any
    value: Value | None
    """None: the channel was empty at this version."""
    source: str
    """Checkpoint id of the event (or carried-blobs item) that holds the value."""
    written_at_ms: int
    chain: _delta.Chain | None = None
    """For a value in the journal: its delta chain (a whole value starts its own)."""


@dataclass
class Fold:
    thread_id: str
    namespaces: dict[str, Namespace] = field(default_factory=dict)


def _num(item: Item, name: str) -> int | None:
    v = item.get(name)
    return int(v["N"]) if v else None


def _rank(v: Value | None) -> int:
    if isinstance(v, (JournalRef, BlobRef)):
        return 0 if isinstance(v, JournalRef) else 1
    return 2 if v is not None and _delta.is_delta(v) else 3


def _typed(v: dict[str, Any] | None) -> TypedValue | None:
    return None if v is None else (v["type"], v["data"])


def fold_partition(items: Iterable[Item], *, now_s: float, use_views: bool = False) -> Fold:
    """Fold the raw items of one thread partition (any subset of its namespaces).

    With ``use_views``, view items among ``items`` are decoded and their values offered
    as sources (rule 5); without, they are ignored and only the journal speaks.
    """
    items = list(items)
    thread_id = _keys.thread_from_pk(items[0]["PK"]["S"]) if items else ""
    tombstones, visible = visible_items(items, now_s=now_s)
    chunks = chunk_parts(visible)
    records = [
        (key, item) for key, item in visible
        if key.kind != _keys.KIND_CHUNK and (key.kind != _keys.KIND_VIEW or use_views)
    ]

    fold = Fold(thread_id)
    for ns_name, deleted_at in tombstones.items():
        fold.namespaces.setdefault(ns_name, Namespace()).tombstone_ms = deleted_at
    views: list[tuple[_keys.ParsedKey, Item]] = []
    writes_by_cp: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for key, item in records:
        if key.kind == _keys.KIND_VIEW:
            views.append((key, item))
            continue
        body = record_body(item, chunks.get(key.parent_sk, {}))
        ns = fold.namespaces.setdefault(key.checkpoint_ns, Namespace())
        written_at = _num(item, "written_at") or 0
        if key.kind in (_keys.KIND_CHECKPOINT, _keys.KIND_WRITES):
            ns.last_activity_ms = max(ns.last_activity_ms, written_at)
        if key.kind == _keys.KIND_CHECKPOINT:
            rec = _decoded(schemas.RECORD_CHECKPOINT, item, body)
            event = CheckpointEvent(
                thread_id=rec["thread_id"],
                checkpoint_ns=key.checkpoint_ns,
                checkpoint_id=key.checkpoint_id,
                parent_checkpoint_id=rec["parent_checkpoint_id"],
                written_at_ms=schemas.millis(rec["written_at"]),
                checkpoint=(rec["checkpoint"]["type"], rec["checkpoint"]["data"]),
                metadata=(rec["metadata"]["type"], rec["metadata"]["data"]),
                blobs={(b["channel"], b["version"]): _typed(b["value"]) for b in rec["blobs"]},
                size=len(body),
                channel_versions={
                    cv["channel"]: cv["version"] for cv in rec.get("channel_versions") or []
                },
                expires_at=min(
                    (x for x in (_num(item, "expires_at"), _num(item, "visible_until"))
                     if x is not None),
                    default=None,
                ),
                md=_plain_md(item),
                history_from=item["hfrom"]["S"] if "hfrom" in item else None,
                content_hash=rec.get("content_hash"),
                chain_hash=rec.get("chain_hash"),
                hash_key_id=rec.get("hash_key_id"),
            )
            _add_blobs(ns, key.checkpoint_id, written_at, event.blobs)
            ns.journal_at[key.checkpoint_id] = written_at
            if checkpoint_visible(item, now_s):
                ns.checkpoints[key.checkpoint_id] = event
        elif key.kind == _keys.KIND_BLOBS:
            rec = _decoded(schemas.RECORD_BLOBS, item, body)
            blobs = {(b["channel"], b["version"]): _typed(b["value"]) for b in rec["blobs"]}
            _add_blobs(ns, key.checkpoint_id, written_at, blobs)
        elif key.kind == _keys.KIND_WRITES:
            rec = _decoded(schemas.RECORD_WRITES, item, body)
            writes_by_cp[(key.checkpoint_ns, key.checkpoint_id)].append((item["SK"]["S"], rec))

    for (ns_name, cid), events in writes_by_cp.items():
        ns = fold.namespaces.setdefault(ns_name, Namespace())
        ns.writes[cid] = fold_writes(rec for _, rec in sorted(events, key=lambda e: e[0]))
        ns.writes_events[cid] = len(events)
    for key, item in views:
        ns = fold.namespaces.setdefault(key.checkpoint_ns, Namespace())
        if key.checkpoint_id not in ns.checkpoints:
            continue  # a view without its (visible) event is a leftover; never a source
        view = decode_view(item)
        ns.views[key.checkpoint_id] = view
        for channel, (version, value, at) in view.channels.items():
            ns.blobs[(channel, version)].append((key.checkpoint_id, value))
            ns.blob_written_at[(channel, version)] = max(
                ns.blob_written_at.get((channel, version), 0), at
            )
    for ns_name, ns in fold.namespaces.items():
        ns.replayer = _delta.Replayer(
            ns.journal, ns.journal_at, f"thread {thread_id!r}, namespace {ns_name!r}")
    return fold


def decode_view(item: Item) -> ViewCheckpoint:
    rec = decode(schemas.RECORD_VIEW, item, item["body"]["B"])
    return ViewCheckpoint(
        checkpoint_id=rec["checkpoint_id"],
        parent_checkpoint_id=rec["parent_checkpoint_id"],
        written_at_ms=schemas.millis(rec["written_at"]),
        checkpoint=(rec["checkpoint"]["type"], rec["checkpoint"]["data"]),
        metadata=(rec["metadata"]["type"], rec["metadata"]["data"]),
        channels={
            c["channel"]: (c["version"], value_of(c["value"]), c["stored_at"])
            for c in rec["channels"]
        },
        writes=[
            ViewWrite(w["task_id"], w["task_path"], w["channel"], w["idx"],
                      value_of(w["value"]))  # type: ignore[arg-type]
            for w in rec["writes"]
        ],
        writes_folded=rec["writes_folded"],
        chain_hash=rec.get("chain_hash"),
    )


def _plain_md(item: Item) -> dict[str, Any] | None:
    md = item.get("md")
    out = from_attr(md) if md is not None else None
    return out if isinstance(out, dict) else None


def fold_writes(events: Iterable[dict[str, Any]]) -> list[FoldedWrite]:
    """LangGraph's pending-writes rules over writes events in journal order."""
    out: dict[tuple[str, int], FoldedWrite] = {}
    for rec in events:
        for w in rec["writes"]:
            k = (rec["task_id"], w["idx"])
            if w["idx"] >= 0 and k in out:
                continue  # regular write: the first one stored wins
            out[k] = FoldedWrite(
                rec["task_id"], w["channel"], (w["value"]["type"], w["value"]["data"]),
                rec["task_path"], w["idx"],
            )
    return sorted(out.values(), key=lambda w: writes_sort_key(w.task_path, w.task_id, w.idx))


def writes_sort_key(task_path: str, task_id: str, idx: int) -> tuple[str, str, int]:
    """The order live execution applies a super-step's writes in: LangGraph's
    ``langgraph.checkpoint.base.writes_sort_key``, spelled out here so that the stream
    handlers (which fold but never run a graph) need no LangGraph in their Lambda layer.
    A unit test holds the two equal."""
    return (task_path, task_id, idx)


def _add_blobs(
    ns: Namespace, cid: str, written_at: int, blobs: dict[tuple[str, Any], TypedValue | None]
) -> None:
    for k, v in blobs.items():
        ns.blobs[k].append((cid, v))
        if v is None or not _delta.is_delta(v) or (k[0], k[1], cid) not in ns.journal:
            ns.journal[(k[0], k[1], cid)] = v  # a carried whole value beats the delta
        ns.blob_written_at[k] = max(ns.blob_written_at.get(k, 0), written_at)


def record_body(item: Item, chunks: dict[int, bytes]) -> bytes:
    """A record's body: its own, or its chunks reassembled and checked against the
    commit's digest. A commit is written after every chunk (I2), so a commit whose chunks
    are missing or do not match is damage: CorruptRecordError naming it (I2b), never
    the older state the record would otherwise leave showing."""
    if "body" in item:
        body: bytes = item["body"]["B"]
        return body
    where = f"journal item {item['PK']['S']!r} / {item['SK']['S']!r}"
    n = _num(item, "chunks")
    if n is None or "digest" not in item:
        raise CorruptRecordError(f"{where} has neither a body nor chunks")
    missing = [i for i in range(n) if i not in chunks]
    if missing:
        raise CorruptRecordError(
            f"{where} is stored in {n} chunks and {len(missing)} are missing (first: "
            f"{_keys.chunk_sk(item['SK']['S'], missing[0])!r}); it was deleted outside "
            "the journal's operations. Nothing was read from it.")
    body = b"".join(chunks[i] for i in range(n))
    if hashlib.sha256(body).hexdigest() != item["digest"]["S"]:
        raise CorruptRecordError(
            f"{where}: its chunks do not reassemble to the digest its commit holds (a "
            "chunk was altered or swapped). Nothing was read from it.")
    return body


# Records decoded lately, by content: a read that folds the same immutable items again
# (a history at every turn) decodes each once. Large bodies are not kept.
_DECODED: OrderedDict[tuple[str, str, str, bytes], dict[str, Any]] = OrderedDict()
_DECODED_MAX, _DECODED_BODY_MAX = 8192, 64 * 1024
_DECODED_LOCK = threading.Lock()


def _decoded(record: str, item: Item, body: bytes) -> dict[str, Any]:
    """``decode``, memoised by the body's digest (the fold only reads the result)."""
    if len(body) > _DECODED_BODY_MAX:
        return decode(record, item, body)
    key = (record, item["fp"]["S"], item["codec"]["S"],
           hashlib.blake2b(body, digest_size=16).digest())
    with _DECODED_LOCK:
        got = _DECODED.get(key)
    if got is None:
        got = decode(record, item, body)
        with _DECODED_LOCK:
            _DECODED[key] = got
            if len(_DECODED) > _DECODED_MAX:
                _DECODED.popitem(last=False)
    return got


def decode(record: str, item: Item, body: bytes) -> dict[str, Any]:
    """``schemas.decode`` of an item's body, its errors naming the item."""
    try:
        return schemas.decode(record, body, item["fp"]["S"], item["codec"]["S"])
    except CorruptRecordError as e:
        raise CorruptRecordError(
            f"journal item {item['PK']['S']!r} / {item['SK']['S']!r}: {e}") from e
    except KeyError as e:
        raise CorruptRecordError(
            f"journal item {item['PK']['S']!r} / {item['SK']['S']!r} lacks attribute "
            f"{e.args[0]!r}") from e


def visible_items(
    items: Iterable[Item], *, now_s: float
) -> tuple[dict[str, int], list[tuple[_keys.ParsedKey, Item]]]:
    """The one visibility rule (rules 1 and 2): the namespaces' tombstones (namespace ->
    written_at of the latest) and every other journal or view item still visible, with
    its parsed key. Heads, index entries and removal markers are left out (they share the
    partition but are not the journal's content)."""
    tombstones: dict[str, int] = {}
    rest: list[tuple[_keys.ParsedKey, Item]] = []
    for item in items:
        exp = _num(item, "expires_at")
        if exp is not None and exp <= now_s:
            continue
        try:
            key = _keys.parse_sk(item["SK"]["S"])
        except ValueError:
            continue  # head and index items share the partition
        if key.kind == _keys.KIND_REMOVAL:
            continue  # audit markers: verify reads them, the fold does not
        if key.kind == _keys.KIND_TOMBSTONE:
            at = _num(item, "written_at") or 0
            tombstones[key.checkpoint_ns] = max(tombstones.get(key.checkpoint_ns, 0), at)
        else:
            rest.append((key, item))
    visible = [
        (key, item) for key, item in rest
        if (_num(item, "written_at") or 0) > tombstones.get(key.checkpoint_ns, -1)
    ]
    return tombstones, visible


def checkpoint_visible(item: Item, now_s: float) -> bool:
    """Rule 4's last part: a checkpoint past ``visible_until`` (a value it references
    has expired) is hidden."""
    until = _num(item, "visible_until")
    return until is None or until > now_s


def chunk_parts(keyed: Iterable[tuple[_keys.ParsedKey, Item]]) -> dict[str, dict[int, bytes]]:
    """The chunk items among ``keyed``: parent sort key -> chunk number -> bytes (rule 3;
    :func:`record_body` reassembles and checks them)."""
    out: dict[str, dict[int, bytes]] = defaultdict(dict)
    for key, item in keyed:
        if key.kind == _keys.KIND_CHUNK:
            out[key.parent_sk][int(item["SK"]["S"].rsplit("#", 1)[1])] = item["body"]["B"]
    return out


def removed_ids(items: Iterable[Item]) -> set[str]:
    """The checkpoint ids the removal markers among ``items`` name (prune and
    delete_for_runs write one before deleting anything)."""
    out: set[str] = set()
    for item in items:
        if item.get("kind", {}).get("S") != _keys.KIND_REMOVAL or "body" not in item:
            continue
        rec = decode(schemas.RECORD_REMOVAL, item, item["body"]["B"])
        out.update(r["checkpoint_id"] for r in rec["removed"])
    return out


def hidden_keys(items: Iterable[Item], tombstones: dict[str, int]) -> list[tuple[str, str]]:
    """Keys of the items (keys and ``written_at`` at least) that the namespaces'
    tombstones (namespace -> written_at) hide (rule 2), tombstones aside: what a put in
    flight during ``delete_thread`` leaves behind, for the saver's sweep and the
    projector to delete (I6b)."""
    out = []
    for item in items:
        sk = item["SK"]["S"]
        ns = _keys.namespace_of(sk)
        if ns is None or ns not in tombstones or sk == _keys.tombstone_sk(ns):
            continue
        if (_num(item, "written_at") or 0) <= tombstones[ns]:
            out.append((item["PK"]["S"], sk))
    return out
