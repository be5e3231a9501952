"""Checkpoint tuples from what a read found: a view item, or a fold of journal items.

Each tuple built remembers, in the saver's ``Origins``, where its channels' values are
stored, and keeps the values the journal holds (the bases of the next deltas) in its
``Values``: what lets the next ``put`` write only what changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, CheckpointTuple

from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import (
    CheckpointEvent,
    JournalRef,
    Namespace,
    TypedValue,
    Value,
    ViewCheckpoint,
    fold_partition,
)
from checkpoint_journal._core.store import DynamoJournalStore
from checkpoint_journal.saver._values import Loader, Origin, Origins, Values

# -- tuples ---------------------------------------------------------------------------------


def config_of(thread_id: str, ns_name: str, cid: str | None) -> RunnableConfig | None:
    if not cid:
        return None
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns_name,
                             "checkpoint_id": cid}}


def view_tuple(
    thread_id: str, ns_name: str, view: ViewCheckpoint, loader: Loader, origins: Origins
) -> CheckpointTuple:
    """A checkpoint straight from its view item (and S3 for offloaded values); NeedsJournal
    when the view points to the journal for a value (a delta)."""
    if any(isinstance(v, JournalRef) for _, v, _ in view.channels.values()):
        raise NeedsJournal(view.checkpoint_id)
    loader.fetch([v for _, v, _ in view.channels.values()] + [w.value for w in view.writes])
    return _tuple(
        thread_id, ns_name, view.checkpoint_id, view.parent_checkpoint_id,
        loader.loads(view.checkpoint), view.metadata,
        {ch: Placed(ver, v, Origin(ver, at, empty=v is None))
         for ch, (ver, v, at) in view.channels.items()},
        [(w.task_id, w.channel, w.value) for w in view.writes], view.chain_hash,
        loader, origins, None,
    )


def fold_tuple(
    thread_id: str, ns_name: str, ns: Namespace, event: CheckpointEvent, loader: Loader,
    origins: Origins, values: Values | None = None,
) -> CheckpointTuple:
    """A checkpoint from a fold: its view when the fold has a current one that holds
    every value, else each channel resolved at its version (deltas replayed)."""
    view = ns.current_view(event.checkpoint_id)
    if view is not None and not any(
            isinstance(v, JournalRef) for _, v, _ in view.channels.values()):
        return view_tuple(thread_id, ns_name, view, loader, origins)
    checkpoint: Checkpoint = loader.loads(event.checkpoint)
    resolved = ns.resolve(event, checkpoint["channel_versions"])
    loader.fetch([r.value for r in resolved.values()])
    return _tuple(
        thread_id, ns_name, event.checkpoint_id, event.parent_checkpoint_id, checkpoint,
        event.metadata,
        {ch: Placed(r.version, r.value, Origin(
            r.version, r.written_at_ms, r.source if r.chain else None, r.chain,
            empty=r.value is None, seed=None if r.value is None or r.chain is None
            else r.source, last=(ch, r.version, r.source)
            if r.value is not None and r.chain is not None else None))
         for ch, r in resolved.items()},
        [(w.task_id, w.channel, w.value) for w in ns.writes.get(event.checkpoint_id, [])],
        event.chain_hash, loader, origins, values,
    )


class Placed(NamedTuple):
    version: Any
    value: Value | None
    origin: Origin


class NeedsJournal(Exception):
    """A view points to the journal for a value (a delta): answer from a fold instead."""


def _tuple(
    thread_id: str, ns_name: str, cid: str, parent_id: str | None,
    checkpoint: Checkpoint, metadata: TypedValue,
    channels: dict[str, Placed],
    writes: list[tuple[str, str, Value]], chain_hash: str | None,
    loader: Loader, origins: Origins, values: Values | None,
) -> CheckpointTuple:
    """The tuple of a checkpoint (deserialized, without its values) whose values are at
    hand (``loader`` has fetched every offloaded one); remembers where its channels are
    stored, and the bytes of those the journal holds, for the next ``put``."""
    checkpoint["channel_values"] = {
        ch: loader.value(p.value) for ch, p in channels.items() if p.value is not None
    }
    origins.remember((thread_id, ns_name, cid),
                     {ch: p.origin for ch, p in channels.items()}, chain_hash)
    for ch, p in channels.items():
        o = p.origin
        if (values is not None and o.source is not None and o.chain is not None
                and isinstance(p.value, tuple)):
            values.keep(thread_id, ns_name, (ch, o.version, o.source), p.value, o.chain)
    return CheckpointTuple(
        config=config_of(thread_id, ns_name, cid),  # type: ignore[arg-type]
        checkpoint=checkpoint,
        metadata=loader.loads(metadata),
        parent_config=config_of(thread_id, ns_name, parent_id),
        pending_writes=[(task, ch, loader.value(v)) for task, ch, v in writes],
    )


def chain_of(store: DynamoJournalStore, thread_id: str, ns_name: str, cid: str) -> str | None:
    """The chain hash of a checkpoint the saver has not seen (another worker wrote it, or
    it left the origins cache): one consistent GetItem (plus chunks). None when it does
    not exist or predates the hashes; its child then chains from zero bytes and verify
    reports the missing parent."""
    pk = _keys.thread_pk(thread_id)
    item = store.get(pk, _keys.checkpoint_sk(ns_name, cid))
    if item is None:
        return None
    fold = fold_partition(store.with_chunks(pk, [item]), now_s=0)
    ns = fold.namespaces.get(ns_name)
    event = ns.checkpoints.get(cid) if ns is not None else None
    return event.chain_hash if event is not None else None


def matching(
    tuples: Iterable[CheckpointTuple], filter: dict[str, Any] | None
) -> Iterator[CheckpointTuple]:
    """The tuples whose metadata holds every key and value of ``filter``."""
    for tup in tuples:
        if not filter or all(tup.metadata.get(k) == v for k, v in filter.items()):
            yield tup


def order(tup: CheckpointTuple) -> tuple[str, str]:
    """Listing order (descending): checkpoint id, then namespace."""
    conf = tup.config["configurable"]
    return conf["checkpoint_id"], conf["checkpoint_ns"]
