"""What ``history``, ``show`` and ``diff`` make of one namespace read by
``browse.read_namespace``: the checkpoints newest first, one checkpoint in full (values,
metadata, pending writes, interrupts, and where each value is stored), and the change
between two checkpoints. Pure: the items are at hand; values are read with the serde
given (the commands give ``browse.default_serde()``, which never runs pickle).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_journal._core.fold import (
    BlobRef,
    CheckpointEvent,
    FoldedWrite,
    JournalRef,
    Namespace,
    TypedValue,
    decode_view,
)
from checkpoint_journal.cli.browse import (
    Journal,
    int_or_none,
    jsonable,
    load,
    node_of,
    short,
    uuid6_ms,
)
from checkpoint_journal.cli.conversation import MessageDiff, diff_messages

# LangGraph's names (langgraph._internal._constants), spelled out: they are part of the
# stored data, not of LangGraph's public API.
INTERRUPT = "__interrupt__"
RESUME = "__resume__"
INPUT = "__input__"
TASKS = "__pregel_tasks"  # the Sends pending at a checkpoint, in order
_PUSH_PATH = "~__pregel_push"
_UPDATE_PATH = "~__interrupt__"  # update_state runs its writers as task (INTERRUPT, i)
# A Send's task: (PUSH, index of the Send in the checkpoint's TASKS value, ...).
_SEND_PATH = re.compile(r"~__pregel_push, (\d+)(?:,|$)")
# A functional-API task called by a node: (PUSH, the caller's path, ...); the first pull
# path inside names the node whose code called it.
_CALLER = re.compile(r"~__pregel_pull, ([^,]+)")


# -- which node ran a task -----------------------------------------------------------------


def sends_at(ns: Namespace, checkpoint_id: str, serde: SerializerProtocol) -> list[Any]:
    """The Sends pending at a checkpoint (its ``__pregel_tasks`` value; empty when there
    are none or they cannot be read): the tasks that run from it next, in order."""
    event = ns.checkpoints.get(checkpoint_id)
    if event is None:
        return []
    versions = channel_versions(event, None) or channel_versions(
        event, load(serde, event.checkpoint)[0])
    if TASKS not in versions:
        return []
    resolved = ns.resolve(event, {TASKS: versions[TASKS]}).get(TASKS)
    if resolved is None or not isinstance(resolved.value, tuple):
        return []  # empty, or (in a view-only read) a reference: no Sends to read
    value, error = load(serde, resolved.value)
    return list(value) if error is None and isinstance(value, (list, tuple)) else []


def task_node(task_path: str, sends: list[Any]) -> str | None:
    """The node a task ran, from its task path: a node triggered by its channels names
    itself; a ``Send`` task is the node of the Send it was made from (``sends``: the
    Sends pending at the checkpoint it ran from); a functional-API task is its caller's.
    None when the path does not tell (an ``update_state`` task, an unreadable Send)."""
    node = node_of(task_path)
    if node is not None:
        return node
    send = _SEND_PATH.match(task_path)
    if send is not None:
        i = int(send.group(1))
        target = getattr(sends[i], "node", None) if i < len(sends) else None
        return target if isinstance(target, str) and target else None
    if task_path.startswith(_PUSH_PATH):
        caller = _CALLER.search(task_path)
        return caller.group(1) if caller else None
    return None


class TaskNodes:
    """``nodes(checkpoint_id, task_path)``: :func:`task_node` for a task that ran from
    that checkpoint, reading each checkpoint's Sends once, and only for Send tasks."""

    def __init__(self, ns: Namespace, serde: SerializerProtocol) -> None:
        self.ns = ns
        self.serde = serde
        self._sends: dict[str, list[Any]] = {}

    def sends(self, checkpoint_id: str) -> list[Any]:
        if checkpoint_id not in self._sends:
            self._sends[checkpoint_id] = sends_at(self.ns, checkpoint_id, self.serde)
        return self._sends[checkpoint_id]

    def __call__(self, checkpoint_id: str, task_path: str) -> str | None:
        sends = self.sends(checkpoint_id) if _SEND_PATH.match(task_path) else []
        return task_node(task_path, sends)


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
    serde: SerializerProtocol, nodes: TaskNodes | None = None,
) -> tuple[list[str], str | None]:
    """Which nodes' writes made this checkpoint, and where that was read.

    LangGraph 1.x no longer records ``metadata["writes"]`` (older versions did, and it is
    used when present). What it does record is each task's writes, saved with
    ``put_writes`` on the checkpoint the task ran from, with a task path naming the node:
    a loop checkpoint is made by the tasks with saved results among its parent's pending
    writes (a ``Send`` task, such as a tool node's, is named by the Send it ran; see
    :func:`task_node`). When the parent has none (``durability="exit"`` saves no pending
    writes), the nodes whose ``versions_seen`` moved between the parent and this
    checkpoint ran, and so did the nodes of the Sends pending at the parent (``tasks``
    when only those tell). An input checkpoint is the caller's input (``__input__``);
    ``update_state`` does not record the node it acted as. ``nodes`` caches the Sends
    read across calls.
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
    nodes = nodes or TaskNodes(ns, serde)
    paths = _tasks(ns.writes.get(parent, []))
    if paths:
        names = {nodes(parent, p) or ("(send)" if p.startswith(_PUSH_PATH) else "(task)")
                 for p in paths.values() if not p.startswith(_UPDATE_PATH)}
        if names:
            return sorted(names), "pending_writes"
    sent = {n for n in (getattr(s, "node", None) for s in nodes.sends(parent))
            if isinstance(n, str) and n}
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
                return sorted(set(moved) | sent), "versions_seen"
    if sent:
        return sorted(sent), "tasks"
    return [], None


def history(
    journal: Journal, serde: SerializerProtocol, *, limit: int | None = None
) -> list[HistoryRow]:
    """The namespace's checkpoints, newest first."""
    sizes = journal.stored_bytes()
    nodes = TaskNodes(journal.ns, serde)
    rows: list[HistoryRow] = []
    for cid in sorted(journal.ns.checkpoints, reverse=True)[:limit]:
        event = journal.ns.checkpoints[cid]
        md, _ = metadata_of(event, serde)
        names, basis = writers(journal.ns, event, md, serde, nodes)
        writes = journal.ns.writes.get(cid, [])
        journal_bytes, view_bytes = sizes[cid]
        rows.append(HistoryRow(
            checkpoint_id=cid,
            parent_checkpoint_id=event.parent_checkpoint_id,
            step=int_or_none(md.get("step")),
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
    if isinstance(placed, JournalRef):
        return Stored(size, source, "journal", None, None, None)
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
        if r.value is None or isinstance(r.value, (BlobRef, JournalRef)):
            continue  # empty at this version (the journal-only fold holds no reference)
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
    nodes = TaskNodes(journal.ns, serde)
    names, basis = writers(journal.ns, event, md, serde, nodes)
    view = decode_view(journal.views[cid]) if cid in journal.views else None
    resolved = journal.ns.resolve(event, channel_versions(event, checkpoint))
    values: list[Shown] = []
    for ch, r in sorted(resolved.items()):
        if r.value is None or isinstance(r.value, (BlobRef, JournalRef)):
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
        assert not isinstance(w.value, (BlobRef, JournalRef))  # the journal-only fold: bytes
        value, error = load(serde, w.value)
        node = nodes(cid, w.task_path)
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
    """JSON data: ``kind`` (list, str, dict, value, same, unreadable) and what changed;
    for a list of chat messages also ``messages`` (``MessageDiff.doc``)."""
    messages: MessageDiff | None = None
    """A list of chat messages: which messages were added, removed or changed."""


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
    """Which channels changed from checkpoint ``a`` to checkpoint ``b``, and how; for a
    list of chat messages, also which messages were added, removed or changed (matched
    by id, else by position: ``conversation.diff_messages``)."""
    ea, eb = journal.find(a), journal.find(b)
    old = values_at(journal, ea, serde, load(serde, ea.checkpoint)[0])
    new = values_at(journal, eb, serde, load(serde, eb.checkpoint)[0])
    va = channel_versions(ea, None)
    vb = channel_versions(eb, None)
    changes: list[Change] = []
    unchanged: list[str] = []
    for ch in sorted(set(old) | set(new)):
        if ch not in old or ch not in new:
            gone = ch not in new
            raw, value, error = old[ch] if gone else new[ch]
            data: dict[str, Any] = {"kind": "unreadable" if error else "value",
                                    ("from" if gone else "to"): None if error else jsonable(value)}
            md = None if error else (diff_messages(value, None) if gone
                                     else diff_messages(None, value))
            if md is not None:
                data["messages"] = md.doc()
            summary = error or (md.summary() if md is not None else short(value, 60))
            changes.append(Change(ch, "removed" if gone else "added", summary, data, md))
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
            md = diff_messages(value_a, value_b)
            if md is not None and md.changes:
                summary, data["messages"] = md.summary(), md.doc()
            else:
                md = None
            changes.append(Change(ch, "changed", summary, data, md))
    md_a, _ = metadata_of(ea, serde)
    md_b, _ = metadata_of(eb, serde)
    return Diff(journal.thread_id, journal.checkpoint_ns, ea.checkpoint_id, eb.checkpoint_id,
                int_or_none(md_a.get("step")), int_or_none(md_b.get("step")), changes, unchanged)
