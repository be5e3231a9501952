"""What the browsing commands read: threads, a namespace's history, one checkpoint, and
the change between two checkpoints.

The I/O is a handful of documented reads, through the saver's store (so errors are the
saver's ``JournalError``\\ s): the ``ThreadIndex`` GSI and one keys-and-attributes Query per
thread for ``threads``; one Query of a namespace's journal range (plus the chunks of any
chunked record) for ``history``, ``show`` and ``diff``. Everything after that is pure:
the saver's own fold (``saver/_fold.py``) reads the items, so what is shown is what
``get_tuple`` returns.

Values come from the journal, the source of truth, which always holds every value's bytes
(the projector's copies only add places to read them from): the view item is read only to
say where the projector keeps each value (inline in the view, or an S3 object and its key).
Nothing here reads S3.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import heapq
import itertools
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer
from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_journal._core import index as _index
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import (
    BlobRef,
    CheckpointEvent,
    FoldedWrite,
    Namespace,
    TypedValue,
    decode_view,
    fold_partition,
    survey,
)
from checkpoint_journal._core.items import Item
from checkpoint_journal._core.size import item_size
from checkpoint_journal._core.store import run_parallel
from checkpoint_journal.errors import JournalError

if TYPE_CHECKING:
    from checkpoint_journal.saver import JournalSaver

Progress = Callable[[str], None]

# LangGraph's names (langgraph._internal._constants), spelled out: they are part of the
# stored data, not of LangGraph's public API.
INTERRUPT = "__interrupt__"
RESUME = "__resume__"
INPUT = "__input__"
_PULL_PATH = "~__pregel_pull, "
_PUSH_PATH = "~__pregel_push"
_UPDATE_PATH = "~__interrupt__"  # update_state runs its writers as task (INTERRUPT, i)
# 100-ns intervals between the UUID epoch (1582-10-15) and the Unix epoch.
_UUID_EPOCH_OFFSET = 0x01B21DD213814000


class NotFoundError(JournalError):
    """The thread, namespace or checkpoint asked for does not exist (exit code 3)."""


class UsageError(JournalError):
    """The request cannot be answered as given (an ambiguous id prefix; exit code 2)."""


def _nothing(_: str) -> None:
    pass


# -- small pure helpers ------------------------------------------------------------------


def uuid6_ms(checkpoint_id: str) -> int | None:
    """Epoch milliseconds in a LangGraph checkpoint id (a uuid6), or None if it is not one."""
    try:
        u = uuid.UUID(checkpoint_id)
    except ValueError:
        return None
    if u.version != 6:
        return None
    # uuid6 keeps uuid1's 60-bit timestamp, most significant bits first.
    ticks = (u.time_low << 28) | (u.time_mid << 12) | (u.time_hi_version & 0x0FFF)
    return (ticks - _UUID_EPOCH_OFFSET) // 10_000


def iso_ms(ms: int | None) -> str | None:
    """``2025-01-31T12:00:00.123Z`` for epoch milliseconds."""
    if ms is None:
        return None
    t = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def node_of(task_path: str) -> str | None:
    """The node a task ran, from the ``task_path`` LangGraph gives ``put_writes``.

    ``~__pregel_pull, NAME`` is a node triggered by its channels; a ``Send`` (push) task or
    an ``update_state`` task does not name its node in its path.
    """
    if task_path.startswith(_PULL_PATH):
        name = task_path[len(_PULL_PATH):]
        return name if name and ", " not in name else None
    return None


def jsonable(value: Any, _depth: int = 0) -> Any:
    """A deserialised value as plain JSON data (for ``--json`` and for summaries).

    Pydantic models (LangChain messages) and dataclasses (``Interrupt``) become objects,
    bytes become ``{"$bytes": base64}``, anything else without a JSON form its ``repr``.
    """
    if _depth > 64:
        return repr(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if hasattr(value, "_asdict"):  # a NamedTuple
            return jsonable(value._asdict(), _depth + 1)
        return [jsonable(v, _depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v, _depth + 1) for v in value), key=repr)
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):  # numbers read back from DynamoDB attributes
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value, _depth + 1)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return jsonable(dump(), _depth + 1)
        except Exception:  # a model that cannot dump itself: fall through to repr
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name), _depth + 1)
                for f in dataclasses.fields(value)}
    return repr(value)


def short(value: Any, width: int = 80) -> str:
    """A one-line rendering of a value, cut to ``width`` characters with its size after."""
    try:
        text = json.dumps(jsonable(value), ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError):
        text = repr(value)
    text = " ".join(text.split())  # multi-line strings stay on one line
    if len(text) <= width:
        return text
    if isinstance(value, (list, tuple)):
        what = f"list of {len(value)} item{'s' if len(value) != 1 else ''}, "
    elif isinstance(value, Mapping):
        what = f"{len(value)} key{'s' if len(value) != 1 else ''}, "
    else:
        what = ""
    suffix = f"… ({what}{len(text):,} chars)"
    return text[: max(8, width - len(suffix))] + suffix


def load(serde: SerializerProtocol, typed: TypedValue) -> tuple[Any, str | None]:
    """``(value, None)``, or ``(None, why not)`` when the serializer cannot read it."""
    type_, data = typed
    try:
        return serde.loads_typed(typed), None
    except Exception as e:  # any serializer failure is reported per value, not raised
        what = f"cannot deserialize {len(data):,} bytes of type {type_!r}"
        if "+" in type_:  # EncryptedSerializer's "{type}+{cipher}"
            return None, (f"{what}: encrypted with an EncryptedSerializer (cipher "
                          f"{type_.split('+', 1)[1]!r}); read with JsonPlusSerializer")
        return None, f"{what}: {type(e).__name__}: {e}"


# -- reads -------------------------------------------------------------------------------


def _partition_summary_items(saver: JournalSaver, pk: str) -> list[Item]:
    return saver._store.summary(pk)


@dataclass(frozen=True)
class ThreadRow:
    thread_id: str
    last_activity_ms: int
    """The latest write (checkpoint or pending writes) of any of its namespaces."""
    checkpoints: int
    """Visible checkpoints, every namespace."""
    namespaces: list[str]
    """Namespaces with at least one visible checkpoint (``""`` is the root graph)."""
    step: int | None
    """``metadata["step"]`` of the root namespace's latest checkpoint."""
    latest_checkpoint_id: str | None


def _plain(attr: dict[str, Any]) -> Any:
    return TypeDeserializer().deserialize(attr)  # type: ignore[arg-type]


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def summarise_partition(thread_id: str, items: list[Item], now_s: float) -> ThreadRow | None:
    """A thread's row from its partition's keys and attributes; None if nothing is visible
    (an index entry that outlived its thread)."""
    surveys = survey(items, now_s=now_s)
    live = {ns: sv for ns, sv in surveys.items() if sv.events}
    if not live:
        return None
    heads: dict[str, Item] = {}
    for item in items:
        sk = item["SK"]["S"]
        if sk.startswith("H#"):
            heads[_keys.unescape(sk[2:])] = item
    root = "" if "" in live else max(live, key=lambda ns: max(live[ns].events))
    latest = max(live[root].events)
    head = heads.get(root)
    step: int | None = None
    if head is not None and head.get("latest", {}).get("S") == latest and "step" in head:
        step = _int(_plain(head["step"]))
    if step is None:
        md = live[root].events[latest].get("md", {}).get("M", {})
        step = _int(_plain(md["step"])) if "step" in md else None
    # Last activity: the latest checkpoint or pending-writes event still visible (the
    # head's ts says the same once the projector has caught up).
    last = 0
    for item in items:
        try:
            key = _keys.parse_sk(item["SK"]["S"])
        except ValueError:
            continue
        if key.kind not in (_keys.KIND_CHECKPOINT, _keys.KIND_WRITES):
            continue
        sv = live.get(key.checkpoint_ns)
        written = int(item.get("written_at", {}).get("N", "0"))
        exp = item.get("expires_at")
        if sv is None or written <= sv.tombstone_ms or (exp and int(exp["N"]) <= now_s):
            continue
        last = max(last, written)
    return ThreadRow(
        thread_id=thread_id,
        last_activity_ms=last,
        checkpoints=sum(len(sv.events) for sv in live.values()),
        namespaces=sorted(live),
        step=step,
        latest_checkpoint_id=latest,
    )


def _thread_index(saver: JournalSaver, page_size: int | None) -> Iterator[str]:
    """Partition keys of threads by last activity, newest first: the ThreadIndex shards
    merged by ``ts`` (a thread with several namespaces shows up once per namespace)."""
    pagers = [
        saver._store.index_keys(
            _index.THREAD_INDEX, "ta", _index.thread_partition(s), "ts", limit=page_size
        )
        for s in range(_index.SHARDS)
    ]
    # The first page of every shard in parallel; later pages only as the merge needs them.
    firsts: list[list[Item]] = run_parallel(
        [lambda p=p: next(p, []) for p in pagers], saver._pool  # type: ignore[misc]
    )
    streams = [
        itertools.chain(first, itertools.chain.from_iterable(pager))
        for first, pager in zip(firsts, pagers)
    ]
    for item in heapq.merge(*streams, key=lambda i: i["ts"]["S"], reverse=True):
        yield item["PK"]["S"]


def list_threads(
    saver: JournalSaver, *, limit: int | None = None, progress: Progress = _nothing
) -> list[ThreadRow]:
    """Threads by last activity, newest first, with their counts.

    The order comes from the ThreadIndex GSI, which the projector maintains: eventually
    consistent, and empty where no projector runs. The counts come from one Query per
    thread (keys and attributes only), strongly consistent.
    """
    now = time.time()
    seen: set[str] = set()
    rows: list[ThreadRow] = []
    pks = _thread_index(saver, None if limit is None else limit + 8)

    def fresh(n: int) -> list[str]:
        out: list[str] = []
        for pk in pks:
            if pk not in seen:
                seen.add(pk)
                out.append(pk)
                if len(out) >= n:
                    break
        return out

    with ThreadPoolExecutor(8, thread_name_prefix="cj-browse") as pool:
        while limit is None or len(rows) < limit:
            batch = fresh(64 if limit is None else limit - len(rows))
            if not batch:
                break
            futures = [pool.submit(_partition_summary_items, saver, pk) for pk in batch]
            for pk, future in zip(batch, futures):
                row = summarise_partition(_keys.thread_from_pk(pk), future.result(), now)
                if row is not None:
                    rows.append(row)
                progress(f"counting checkpoints: {len(seen)} threads")
    rows.sort(key=lambda r: (r.last_activity_ms, r.thread_id), reverse=True)
    return rows if limit is None else rows[:limit]


@dataclass
class Journal:
    """One namespace of one thread, as read from the table."""

    thread_id: str
    checkpoint_ns: str
    items: list[Item]
    """The namespace's journal and view items, and the chunks of chunked records."""
    ns: Namespace
    """The journal fold (no views): every value is bytes at hand, never an S3 reference."""
    views: dict[str, Item]
    """View items by checkpoint id."""
    current_views: set[str]
    """Checkpoints whose view has folded every pending-writes event."""
    bucket: str | None

    def latest(self) -> str:
        return max(self.ns.checkpoints)

    def find(self, ref: str | None) -> CheckpointEvent:
        """A checkpoint by id or unique id prefix; the latest for None."""
        if ref is None:
            return self.ns.checkpoints[self.latest()]
        if ref in self.ns.checkpoints:
            return self.ns.checkpoints[ref]
        matches = sorted(c for c in self.ns.checkpoints if c.startswith(ref))
        if len(matches) == 1:
            return self.ns.checkpoints[matches[0]]
        where = f"thread {self.thread_id!r}, namespace {self.checkpoint_ns!r}"
        if not matches:
            raise NotFoundError(f"no checkpoint {ref!r} in {where} "
                                "(`checkpoint-journal history` lists them)")
        raise UsageError(f"{ref!r} matches {len(matches)} checkpoints in {where}; "
                         "give more of the id")

    def stored_bytes(self) -> dict[str, tuple[int, int | None]]:
        """checkpoint id -> (journal bytes, view bytes or None), as DynamoDB counts them.

        Journal bytes are the checkpoint's event, its pending-writes events, the values
        carried forward for it, and the chunks of any of them."""
        journal: dict[str, int] = {}
        view: dict[str, int] = {}
        for item in self.items:
            own = _keys.owner(item["SK"]["S"])
            if own is None:
                continue
            size = item_size(item)
            kind = item.get("kind", {}).get("S")
            target = view if kind == _keys.KIND_VIEW else journal
            target[own[1]] = target.get(own[1], 0) + size
        return {cid: (journal.get(cid, 0), view.get(cid)) for cid in self.ns.checkpoints}


def _namespaces_of(saver: JournalSaver, pk: str) -> list[str]:
    names = {
        ns for _, sk in saver._store.keys(pk, "")
        if (ns := _keys.namespace_of(sk)) is not None
    }
    return sorted(names)


def read_namespace(
    saver: JournalSaver, thread_id: str, checkpoint_ns: str = "", *,
    progress: Progress = _nothing,
) -> Journal:
    """Read and fold one namespace (raises NotFoundError when it has no visible checkpoint)."""
    pk = _keys.thread_pk(thread_id)
    items: list[Item] = []
    for page in saver._store.pages(pk, prefix=_keys.ns_prefix(checkpoint_ns)):
        items.extend(page)
        progress(f"reading {thread_id!r}: {len(items):,} items")
    commits = [i["SK"]["S"] for i in items if "chunks" in i]
    if commits:
        def chunks(sk: str) -> list[Item]:
            return [i for page in saver._store.pages(pk, prefix=_keys.chunk_prefix(sk))
                    for i in page]

        for group in run_parallel([lambda sk=sk: chunks(sk) for sk in commits], saver._pool):  # type: ignore[misc]
            items.extend(group)
    now = time.time()
    ns = fold_partition(items, now_s=now).namespaces.get(checkpoint_ns)
    if ns is None or not ns.checkpoints:
        others = [n for n in _namespaces_of(saver, pk) if n != checkpoint_ns]
        if others:
            raise NotFoundError(
                f"thread {thread_id!r} has no checkpoint in namespace {checkpoint_ns!r}; "
                "its namespaces: " + ", ".join(repr(n) for n in others) + " (pass --ns)"
            )
        raise NotFoundError(f"no thread {thread_id!r} in table {saver.table_name!r}")
    sv = survey(items, now_s=now).get(checkpoint_ns)
    views = dict(sv.views) if sv else {}
    current = {c for c in views if sv is not None and sv.current_view(c, now) is not None}
    return Journal(thread_id, checkpoint_ns, items, ns, views, current, saver.bucket)


# -- history -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryRow:
    checkpoint_id: str
    parent_checkpoint_id: str | None
    step: int | None
    source: str | None
    written_by: list[str]
    """The nodes whose writes made this checkpoint (see ``writers``)."""
    written_by_from: str | None
    """Where ``written_by`` comes from (see ``writers``)."""
    created_ms: int | None
    """From the uuid6 checkpoint id: when LangGraph made the checkpoint."""
    written_ms: int
    """When the saver appended it (the journal record's ``written_at``)."""
    journal_bytes: int
    view_bytes: int | None
    """None: the projector has not written this checkpoint's view (yet)."""
    pending_writes: int
    interrupts: int


def metadata_of(event: CheckpointEvent, serde: SerializerProtocol) -> tuple[dict[str, Any], str | None]:
    """The checkpoint's metadata; when the serializer cannot read it, the plain ``md``
    attribute the saver keeps for the index (it holds the JSON-like keys), and why."""
    md, error = load(serde, event.metadata)
    if error is None and isinstance(md, dict):
        return md, None
    return dict(event.md or {}), error


def _tasks(writes: Iterable[FoldedWrite]) -> dict[str, str]:
    """task id -> task path of the tasks that saved a result (a regular write, idx >= 0);
    a task that only failed or was interrupted saved special writes only."""
    out: dict[str, str] = {}
    for w in writes:
        if w.idx >= 0:
            out.setdefault(w.task_id, w.task_path)
    return out


def writers(
    ns: Namespace, event: CheckpointEvent, metadata: Mapping[str, Any],
    serde: SerializerProtocol,
) -> tuple[list[str], str | None]:
    """Which nodes' writes made this checkpoint, and where that was read.

    LangGraph 1.x no longer records ``metadata["writes"]`` (older versions did, and it is
    used when present). What it does record is each task's writes, saved with
    ``put_writes`` on the checkpoint the task ran from, with a task path naming the node:
    a loop checkpoint is made by the tasks with saved results among its parent's pending
    writes. When the parent has none (``durability="exit"`` saves no pending writes), the
    nodes whose ``versions_seen`` moved between the parent and this checkpoint are the ones
    that ran. An input checkpoint is the caller's input (``__input__``); ``update_state``
    does not record the node it acted as.
    """
    old = metadata.get("writes")
    if isinstance(old, Mapping) and old:
        return sorted(str(k) for k in old), "metadata.writes"
    source = metadata.get("source")
    if source == "input":
        return [INPUT], "input"
    if source in ("update", "fork"):
        return [], "update_state" if source == "update" else "fork"
    parent = event.parent_checkpoint_id
    if parent is None:
        return [], None
    paths = _tasks(ns.writes.get(parent, []))
    if paths:
        names = {node_of(p) or ("(send)" if p.startswith(_PUSH_PATH) else "(task)")
                 for p in paths.values() if not p.startswith(_UPDATE_PATH)}
        if names:
            return sorted(names), "pending_writes"
    parent_event = ns.checkpoints.get(parent)
    if parent_event is not None:
        before, e1 = load(serde, parent_event.checkpoint)
        after, e2 = load(serde, event.checkpoint)
        if e1 is None and e2 is None and isinstance(before, dict) and isinstance(after, dict):
            seen0 = before.get("versions_seen") or {}
            seen1 = after.get("versions_seen") or {}
            moved = sorted(
                n for n, v in seen1.items()
                if n not in (INTERRUPT, INPUT) and seen0.get(n) != v
            )
            if moved:
                return moved, "versions_seen"
    return [], None


def history(
    journal: Journal, serde: SerializerProtocol, *, limit: int | None = None
) -> list[HistoryRow]:
    """The namespace's checkpoints, newest first."""
    sizes = journal.stored_bytes()
    rows: list[HistoryRow] = []
    for cid in sorted(journal.ns.checkpoints, reverse=True)[:limit]:
        event = journal.ns.checkpoints[cid]
        md, _ = metadata_of(event, serde)
        names, basis = writers(journal.ns, event, md, serde)
        writes = journal.ns.writes.get(cid, [])
        journal_bytes, view_bytes = sizes[cid]
        rows.append(HistoryRow(
            checkpoint_id=cid,
            parent_checkpoint_id=event.parent_checkpoint_id,
            step=_int(md.get("step")),
            source=None if md.get("source") is None else str(md.get("source")),
            written_by=names,
            written_by_from=basis,
            created_ms=uuid6_ms(cid),
            written_ms=event.written_at_ms,
            journal_bytes=journal_bytes,
            view_bytes=view_bytes,
            pending_writes=len(writes),
            interrupts=sum(1 for w in writes if w.channel == INTERRUPT),
        ))
    return rows


# -- one checkpoint --------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """Where one value is kept."""

    bytes: int
    """Its serialized size (``serde.dumps_typed``)."""
    journal_checkpoint_id: str
    """The checkpoint whose journal record holds the bytes (a value unchanged since an
    earlier checkpoint is stored once, with that one)."""
    view: str | None
    """``"inline"`` in the view item, ``"s3"`` offloaded by the projector, or None (no
    view yet, or, for pending writes, a view that has not folded them all)."""
    s3_key: str | None
    s3_uri: str | None
    """``s3://bucket/key`` when the bucket is known (``--bucket``)."""
    s3_bytes: int | None
    """The object's size (zstd-compressed when that helps)."""


@dataclass(frozen=True)
class Shown:
    """A channel value or a pending write, deserialised."""

    channel: str
    type: str
    value: Any
    error: str | None
    """Why the value could not be deserialised (``value`` is then None)."""
    stored: Stored
    version: Any = None
    task_id: str | None = None
    task_path: str | None = None
    node: str | None = None


@dataclass(frozen=True)
class ShownInterrupt:
    task_id: str
    node: str | None
    id: str | None
    value: Any
    error: str | None
    resumed: bool
    """A resume value has been saved for it (the task then runs again with it)."""


@dataclass(frozen=True)
class Detail:
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    created_ms: int | None
    written_ms: int
    metadata: dict[str, Any]
    metadata_error: str | None
    written_by: list[str]
    written_by_from: str | None
    updated_channels: list[str] | None
    values: list[Shown]
    pending_writes: list[Shown]
    interrupts: list[ShownInterrupt]
    journal_bytes: int
    view_bytes: int | None
    checkpoint_error: str | None
    """Why the checkpoint record itself could not be deserialised, if it could not."""


def _stored(size: int, source: str, placed: Any, bucket: str | None) -> Stored:
    if isinstance(placed, BlobRef):
        return Stored(size, source, "s3", placed.key,
                      f"s3://{bucket}/{placed.key}" if bucket else None, placed.stored)
    return Stored(size, source, None if placed is None else "inline", None, None, None)


def channel_versions(event: CheckpointEvent, checkpoint: Any) -> dict[str, Any]:
    if event.channel_versions:
        return event.channel_versions
    versions = checkpoint.get("channel_versions") if isinstance(checkpoint, dict) else None
    return dict(versions or {})


def values_at(journal: Journal, event: CheckpointEvent, serde: SerializerProtocol,
              checkpoint: Any = None) -> dict[str, tuple[TypedValue, Any, str | None]]:
    """channel -> (serialized, value, error) at a checkpoint; empty channels left out."""
    out: dict[str, tuple[TypedValue, Any, str | None]] = {}
    resolved = journal.ns.resolve(event, channel_versions(event, checkpoint))
    for ch, r in sorted(resolved.items()):
        if r.value is None or isinstance(r.value, BlobRef):
            continue  # empty at this version (the journal-only fold holds no BlobRef)
        value, error = load(serde, r.value)
        out[ch] = (r.value, value, error)
    return out


def detail(journal: Journal, ref: str | None, serde: SerializerProtocol) -> Detail:
    """One checkpoint: values, metadata, pending writes and interrupts, and where each
    value is stored."""
    event = journal.find(ref)
    cid = event.checkpoint_id
    checkpoint, checkpoint_error = load(serde, event.checkpoint)
    md, md_error = metadata_of(event, serde)
    names, basis = writers(journal.ns, event, md, serde)
    view = decode_view(journal.views[cid]) if cid in journal.views else None
    resolved = journal.ns.resolve(event, channel_versions(event, checkpoint))
    values: list[Shown] = []
    for ch, r in sorted(resolved.items()):
        if r.value is None or isinstance(r.value, BlobRef):
            continue
        value, error = load(serde, r.value)
        placed = view.channels[ch][1] if view is not None and ch in view.channels else None
        values.append(Shown(ch, r.value[0], value, error,
                            _stored(len(r.value[1]), r.source, placed, journal.bucket),
                            version=r.version))
    view_writes = (
        {(w.task_id, w.idx): w.value for w in view.writes}
        if view is not None and cid in journal.current_views else {}
    )
    writes: list[Shown] = []
    interrupts: list[ShownInterrupt] = []
    folded = journal.ns.writes.get(cid, [])
    resumed_tasks = {w.task_id for w in folded if w.channel == RESUME}
    for w in folded:
        assert not isinstance(w.value, BlobRef)  # the journal-only fold holds bytes
        value, error = load(serde, w.value)
        node = node_of(w.task_path)
        writes.append(Shown(
            w.channel, w.value[0], value, error,
            _stored(len(w.value[1]), cid, view_writes.get((w.task_id, w.idx)), journal.bucket),
            task_id=w.task_id, task_path=w.task_path, node=node,
        ))
        if w.channel == INTERRUPT:
            items = value if isinstance(value, (list, tuple)) else [value]
            for i in (items if error is None else [None]):
                interrupts.append(ShownInterrupt(
                    task_id=w.task_id, node=node,
                    id=None if i is None else getattr(i, "id", None),
                    value=None if i is None else getattr(i, "value", i),
                    error=error,
                    resumed=w.task_id in resumed_tasks,
                ))
    updated = checkpoint.get("updated_channels") if isinstance(checkpoint, dict) else None
    journal_bytes, view_bytes = journal.stored_bytes()[cid]
    return Detail(
        thread_id=journal.thread_id, checkpoint_ns=journal.checkpoint_ns, checkpoint_id=cid,
        parent_checkpoint_id=event.parent_checkpoint_id, created_ms=uuid6_ms(cid),
        written_ms=event.written_at_ms, metadata=md, metadata_error=md_error,
        written_by=names, written_by_from=basis,
        updated_channels=list(updated) if isinstance(updated, (list, tuple)) else None,
        values=values, pending_writes=writes, interrupts=interrupts,
        journal_bytes=journal_bytes, view_bytes=view_bytes, checkpoint_error=checkpoint_error,
    )


# -- diff --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    channel: str
    change: str
    """``added``, ``removed`` or ``changed``."""
    summary: str
    detail: dict[str, Any]
    """JSON data: ``kind`` (list, str, dict, value, same, unreadable) and what changed."""


@dataclass(frozen=True)
class Diff:
    thread_id: str
    checkpoint_ns: str
    from_id: str
    to_id: str
    from_step: int | None
    to_step: int | None
    changes: list[Change]
    unchanged: list[str]


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # objects whose __eq__ raises are simply not equal
        return False


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def describe_change(old: Any, new: Any, width: int = 60) -> tuple[str, dict[str, Any]]:
    """How a value changed, in a few words, and as JSON data."""
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        o, n = list(old), list(new)
        if len(n) >= len(o) and _equal(n[: len(o)], o):
            added = n[len(o):]
            if not added:
                return "same value, new version", {"kind": "same"}
            return (f"appended {_plural(len(added), 'item')}: {short(added, width)}",
                    {"kind": "list", "appended": jsonable(added),
                     "from_length": len(o), "to_length": len(n)})
        if len(n) < len(o) and _equal(o[: len(n)], n):
            gone = o[len(n):]
            return (f"removed the last {_plural(len(gone), 'item')}: {short(gone, width)}",
                    {"kind": "list", "removed": jsonable(gone),
                     "from_length": len(o), "to_length": len(n)})
        changed = [i for i, (x, y) in enumerate(zip(o, n)) if not _equal(x, y)]
        return (f"list of {len(o)} -> {len(n)} items, {_plural(len(changed), 'item')} "
                "replaced in place",
                {"kind": "list", "replaced_indexes": changed,
                 "from_length": len(o), "to_length": len(n)})
    if isinstance(old, str) and isinstance(new, str):
        if old == new:
            return "same value, new version", {"kind": "same"}
        if new.startswith(old):
            tail = new[len(old):]
            return (f"appended {len(tail):,} chars: {short(tail, width)}",
                    {"kind": "str", "appended": tail,
                     "from_length": len(old), "to_length": len(new)})
        return (f"{short(old, width // 2)} -> {short(new, width // 2)}",
                {"kind": "str", "from": old, "to": new,
                 "from_length": len(old), "to_length": len(new)})
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        added_keys = sorted(str(k) for k in new if k not in old)
        removed_keys = sorted(str(k) for k in old if k not in new)
        changed_keys = sorted(str(k) for k in new if k in old and not _equal(old[k], new[k]))
        if not (added_keys or removed_keys or changed_keys):
            return "same value, new version", {"kind": "same"}
        parts = [f"+{k}" for k in added_keys] + [f"-{k}" for k in removed_keys] + [
            f"~{k}" for k in changed_keys]
        return ("keys " + short(" ".join(parts), width).strip('"'),
                {"kind": "dict", "added_keys": added_keys, "removed_keys": removed_keys,
                 "changed_keys": changed_keys})
    if _equal(old, new):
        return "same value, new version", {"kind": "same"}
    return (f"{short(old, width // 2)} -> {short(new, width // 2)}",
            {"kind": "value", "from": jsonable(old), "to": jsonable(new)})


def diff(journal: Journal, a: str, b: str, serde: SerializerProtocol) -> Diff:
    """Which channels changed from checkpoint ``a`` to checkpoint ``b``, and how."""
    ea, eb = journal.find(a), journal.find(b)
    old = values_at(journal, ea, serde, load(serde, ea.checkpoint)[0])
    new = values_at(journal, eb, serde, load(serde, eb.checkpoint)[0])
    va = channel_versions(ea, None)
    vb = channel_versions(eb, None)
    changes: list[Change] = []
    unchanged: list[str] = []
    for ch in sorted(set(old) | set(new)):
        if ch not in old:
            raw, value, error = new[ch]
            summary = error or short(value, 60)
            changes.append(Change(ch, "added", summary, {
                "kind": "unreadable" if error else "value",
                "to": None if error else jsonable(value)}))
        elif ch not in new:
            raw, value, error = old[ch]
            summary = error or short(value, 60)
            changes.append(Change(ch, "removed", summary, {
                "kind": "unreadable" if error else "value",
                "from": None if error else jsonable(value)}))
        elif va.get(ch) == vb.get(ch) and va.get(ch) is not None:
            unchanged.append(ch)
        else:
            (raw_a, value_a, err_a), (raw_b, value_b, err_b) = old[ch], new[ch]
            if err_a or err_b:
                if raw_a == raw_b:
                    unchanged.append(ch)
                    continue
                changes.append(Change(ch, "changed", "changed (" + (err_a or err_b or "") + ")",
                                      {"kind": "unreadable"}))
                continue
            summary, data = describe_change(value_a, value_b)
            if data["kind"] == "same":
                unchanged.append(ch)
                continue
            changes.append(Change(ch, "changed", summary, data))
    md_a, _ = metadata_of(ea, serde)
    md_b, _ = metadata_of(eb, serde)
    return Diff(journal.thread_id, journal.checkpoint_ns, ea.checkpoint_id, eb.checkpoint_id,
                _int(md_a.get("step")), _int(md_b.get("step")), changes, unchanged)
