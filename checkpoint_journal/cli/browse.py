"""What the browsing commands read: the threads, and one namespace of one thread.

The I/O is a handful of documented reads through the journal store
(``_core/store.py``, so errors are ``JournalError``\\ s naming the table): the
``ThreadIndex`` GSI and one keys-and-attributes Query per thread for ``threads``; one
Query of a namespace's journal range (plus the chunks of any chunked record) for
``history``, ``show`` and ``diff``, whose pure part is in ``detail``. The journal's own
fold (``_core/fold.py``) reads the items, so what is shown is what ``get_tuple`` returns.

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_journal._core import delta as _delta
from checkpoint_journal._core import index as _index
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import (
    CheckpointEvent,
    Namespace,
    TypedValue,
    fold_partition,
)
from checkpoint_journal._core.items import Item, from_attr
from checkpoint_journal._core.serde import StrictSerializer, parse_allow
from checkpoint_journal._core.size import item_size
from checkpoint_journal._core.store import DynamoJournalStore, run_parallel
from checkpoint_journal._core.survey import survey
from checkpoint_journal.cli.errors import NotFoundError, UsageError

Progress = Callable[[str], None]

# LangGraph's name for a node's task path (langgraph._internal._constants), spelled out:
# it is part of the stored data, not of LangGraph's public API.
_PULL_PATH = "~__pregel_pull, "
# 100-ns intervals between the UUID epoch (1582-10-15) and the Unix epoch.
_UUID_EPOCH_OFFSET = 0x01B21DD213814000


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


def default_serde(allow: Sequence[str] = ()) -> SerializerProtocol:
    """What every reading command reads values with: the saver's default, strict serde
    (LangGraph's and langchain-core's own types, plus ``allow``: ``module.Name`` strings,
    the ``--allow`` option; never pickle: stored data never runs code).

    Raises:
        UsageError: an ``allow`` entry is not ``module.Name``.
    """
    try:
        return StrictSerializer(parse_allow(allow))
    except ValueError as e:
        raise UsageError(str(e)) from e


def load(serde: SerializerProtocol, typed: TypedValue) -> tuple[Any, str | None]:
    """``(value, None)``, or ``(None, why not)`` when the serializer cannot read it."""
    type_, data = typed
    if type_.startswith(_delta.PREFIX):
        return None, (f"stored as a delta of {len(data):,} bytes against the channel's "
                      "previous version (its base is not at hand here)")
    try:
        return serde.loads_typed(typed), None
    except Exception as e:  # any serializer failure is reported per value, not raised
        what = f"cannot deserialize {len(data):,} bytes of type {type_!r}"
        if "+" in type_:  # EncryptedSerializer's "{type}+{cipher}"
            return None, (f"{what}: encrypted with an EncryptedSerializer (cipher "
                          f"{type_.split('+', 1)[1]!r}); it cannot be read without its key")
        return None, f"{what}: {type(e).__name__}: {e}"


# -- threads -----------------------------------------------------------------------------


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


def int_or_none(value: Any) -> int | None:
    """A whole number read from stored data, or None when it is not one."""
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
    root = "" if "" in live else max(live, key=lambda ns: max(live[ns].events))
    latest = max(live[root].events)
    head_sk = _keys.head_sk(root)
    head = next((i for i in items if i["SK"]["S"] == head_sk), None)
    step: int | None = None
    if head is not None and head.get("latest", {}).get("S") == latest and "step" in head:
        step = int_or_none(from_attr(head["step"]))
    if step is None:
        md = live[root].events[latest].get("md", {}).get("M", {})
        step = int_or_none(from_attr(md["step"])) if "step" in md else None
    return ThreadRow(
        thread_id=thread_id,
        # The latest checkpoint or pending-writes event still visible (the head's ts says
        # the same once the projector has caught up).
        last_activity_ms=max(sv.last_activity_ms for sv in live.values()),
        checkpoints=sum(len(sv.events) for sv in live.values()),
        namespaces=sorted(live),
        step=step,
        latest_checkpoint_id=latest,
    )


def _thread_index(store: DynamoJournalStore, page_size: int | None,
                  pool: ThreadPoolExecutor) -> Iterator[str]:
    """Partition keys of threads by last activity, newest first: the ThreadIndex shards
    merged by ``ts`` (a thread with several namespaces shows up once per namespace)."""
    pagers = [
        store.index_keys(
            _index.THREAD_INDEX, "ta", _index.thread_partition(s), "ts", limit=page_size
        )
        for s in range(_index.SHARDS)
    ]
    # The first page of every shard in parallel; later pages only as the merge needs them.
    firsts: list[list[Item]] = run_parallel(
        [lambda p=p: next(p, []) for p in pagers], pool  # type: ignore[misc]
    )
    streams = [
        itertools.chain(first, itertools.chain.from_iterable(pager))
        for first, pager in zip(firsts, pagers)
    ]
    for item in heapq.merge(*streams, key=lambda i: i["ts"]["S"], reverse=True):
        yield item["PK"]["S"]


def list_threads(
    store: DynamoJournalStore, *, limit: int | None = None, progress: Progress = _nothing
) -> list[ThreadRow]:
    """Threads by last activity, newest first, with their counts.

    The order comes from the ThreadIndex GSI, which the projector maintains: eventually
    consistent, and empty where no projector runs. The counts come from one Query per
    thread (keys and attributes only), strongly consistent.
    """
    now = time.time()
    seen: set[str] = set()
    rows: list[ThreadRow] = []
    with ThreadPoolExecutor(8, thread_name_prefix="cj-browse") as pool:
        pks = _thread_index(store, None if limit is None else limit + 8, pool)

        def fresh(n: int) -> list[str]:
            out: list[str] = []
            for pk in pks:
                if pk not in seen:
                    seen.add(pk)
                    out.append(pk)
                    if len(out) >= n:
                        break
            return out

        while limit is None or len(rows) < limit:
            batch = fresh(64 if limit is None else limit - len(rows))
            if not batch:
                break
            futures = [pool.submit(store.summary, pk) for pk in batch]
            for pk, future in zip(batch, futures):
                row = summarise_partition(_keys.thread_from_pk(pk), future.result(), now)
                if row is not None:
                    rows.append(row)
                progress(f"counting checkpoints: {len(seen)} threads")
    rows.sort(key=lambda r: (r.last_activity_ms, r.thread_id), reverse=True)
    return rows if limit is None else rows[:limit]


# -- one namespace ---------------------------------------------------------------------


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


def _namespaces_of(store: DynamoJournalStore, pk: str) -> list[str]:
    return _keys.namespaces(sk for _, sk in store.keys(pk, ""))


def read_namespace(
    store: DynamoJournalStore, thread_id: str, checkpoint_ns: str = "", *,
    bucket: str | None = None, progress: Progress = _nothing,
) -> Journal:
    """Read and fold one namespace (raises NotFoundError when it has no visible
    checkpoint). ``bucket`` names the blob bucket in the S3 URIs of offloaded values."""
    pk = _keys.thread_pk(thread_id)
    items: list[Item] = []
    for page in store.pages(pk, prefix=_keys.ns_prefix(checkpoint_ns)):
        items.extend(page)
        progress(f"reading {thread_id!r}: {len(items):,} items")
    items = store.with_chunks(pk, items)
    now = time.time()
    ns = fold_partition(items, now_s=now).namespaces.get(checkpoint_ns)
    if ns is None or not ns.checkpoints:
        others = [n for n in _namespaces_of(store, pk) if n != checkpoint_ns]
        if others:
            raise NotFoundError(
                f"thread {thread_id!r} has no checkpoint in namespace {checkpoint_ns!r}; "
                "its namespaces: " + ", ".join(repr(n) for n in others) + " (pass --ns)"
            )
        raise NotFoundError(f"no thread {thread_id!r} in table {store.table!r}")
    sv = survey(items, now_s=now).get(checkpoint_ns)
    views = dict(sv.views) if sv else {}
    current = {c for c in views if sv is not None and sv.current_view(c, now) is not None}
    return Journal(thread_id, checkpoint_ns, items, ns, views, current, bucket)
