"""What delete_thread, delete_for_runs, prune and copy_thread write (pure: no I/O here).

These operations walk a thread's partition, write what the kept checkpoints still need
(carried values) before deleting anything, and leave the projector's items consistent
(views and index entries of deleted checkpoints go with them; the tombstone's stream
record makes the projector remove the thread's blobs). ``JournalSaver`` does the I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from langgraph.checkpoint.serde.types import _DeltaSnapshot

from checkpoint_journal import schemas
from checkpoint_journal._core import chain as _chain
from checkpoint_journal._core import delta as _delta
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import BlobRef, Fold, Namespace, value_record
from checkpoint_journal._core.items import (
    Item,
    ItemPlan,
    metadata_attrs,
    plan_items,
    uniq,
)
from checkpoint_journal.saver import _history
from checkpoint_journal.saver._write import Policy

# A tombstone outlives the stream's 24-hour retention and Lambda's retries with margin,
# and everything it hides: with a TTL, past the TTL of the latest item it can hide (one
# written just before it); without one, it never expires (I6b).
TOMBSTONE_TTL_SECONDS = 7 * 24 * 3600
TOMBSTONE_MARGIN_SECONDS = 24 * 3600
# Checkpoints listed per removal marker: ~140 bytes each, well inside one item.
REMOVED_PER_MARKER = 1000

Checkpoints = set[tuple[str, str]]
"""(namespace, checkpoint id) pairs."""


def tombstone(hasher: _chain.Hasher, pk: str, ns_name: str, now: float,
              ttl_seconds: int | None) -> Item:
    """The item that hides a namespace at once (I6). It outlives the stream's retention,
    so a late stream record cannot resurrect what it hides, and every item it hides (a
    put in flight when it was written lands hidden: I6b), so nothing hidden reappears."""
    sk = _keys.tombstone_sk(ns_name)
    item = {
        "PK": {"S": pk},
        "SK": {"S": sk},
        "kind": {"S": _keys.KIND_TOMBSTONE},
        "written_at": {"N": str(int(now * 1000))},
        "hash": {"S": hasher.tombstone(pk, sk, int(now * 1000))},
    }
    if ttl_seconds is not None:
        life = max(TOMBSTONE_TTL_SECONDS, ttl_seconds + TOMBSTONE_MARGIN_SECONDS)
        item["expires_at"] = {"N": str(int(now) + life)}
    if hasher.key_id is not None:
        item["hash_key_id"] = {"S": hasher.key_id}
    return item


def latest_of_each(fold: Fold) -> Checkpoints:
    """What ``prune(strategy="keep_latest")`` keeps: each namespace's latest checkpoint."""
    return {(ns_name, max(ns.checkpoints)) for ns_name, ns in fold.namespaces.items()
            if ns.checkpoints}


def keep_latest(policy: Policy, fold: Fold) -> Checkpoints:
    """What ``prune(strategy="keep_latest")`` keeps: each namespace's latest checkpoint,
    and the ancestors (with their writes) its DeltaChannel state is replayed from."""
    return with_delta_chains(policy, fold, latest_of_each(fold))


def spare_delta_chains(
    policy: Policy, fold: Fold, keep: Checkpoints, remove: Checkpoints
) -> tuple[Checkpoints, Checkpoints]:
    """``delete_for_runs``: (kept, removed) once the checkpoints a kept one's DeltaChannel
    state is replayed through are spared: deleting those would change what the kept
    checkpoint reads (its state is rebuilt from their writes), where deleting a run's
    checkpoints must leave every other checkpoint reading as before."""
    spared = with_delta_chains(policy, fold, keep) & remove
    return keep | spared, remove - spared


def with_delta_chains(policy: Policy, fold: Fold, keep: Checkpoints) -> Checkpoints:
    """``keep`` and, for each of its checkpoints, the ancestors its DeltaChannel state is
    rebuilt from (``get_delta_channel_keepset``)."""
    out = set(keep)
    by_ns: dict[str, list[str]] = defaultdict(list)
    for ns_name, cid in keep:
        by_ns[ns_name].append(cid)
    for ns_name, cids in by_ns.items():
        ns = fold.namespaces[ns_name]
        empty = {cid: [ch for ch in ns.checkpoints[cid].channel_versions
                       if not _stores(ns, cid, ch)] for cid in cids}
        delta = delta_channels(policy, ns, {ch for chs in empty.values() for ch in chs})
        for cid in cids:
            channels = [ch for ch in empty[cid] if ch in delta]
            chain = _history.walk(ns, cid, channels, passed=lambda _: True, exhausted=True)
            if chain is not None:
                out.update((ns_name, c) for ch in channels for c in chain.walked(ch))
    return out


def _stores(ns: Namespace, cid: str, channel: str) -> bool:
    found = _history.stored_value(ns, cid, channel)
    return not isinstance(found, bool) and found is not None and found.value is not None


def delta_channels(policy: Policy, ns: Namespace, channels: Iterable[str]) -> set[str]:
    """Which of ``channels`` are DeltaChannels in ``ns``: named in a checkpoint's
    ``counters_since_delta_snapshot`` metadata (LangGraph keeps it for every DeltaChannel
    not snapshotted at that checkpoint), or stored as a ``_DeltaSnapshot`` somewhere.
    A channel that is neither (an ordinary channel that is empty) needs no history."""
    wanted = set(channels)
    if not wanted:
        return set()
    out: set[str] = set()
    for event in ns.checkpoints.values():
        md = policy.loads(event.metadata)
        counters = md.get("counters_since_delta_snapshot") if isinstance(md, dict) else None
        if isinstance(counters, dict):
            out.update(wanted & set(counters))
    for cid, event in ns.checkpoints.items():
        for ch in wanted - out:
            if ch not in event.channel_versions:
                continue
            found = _history.stored_value(ns, cid, ch)
            if (isinstance(found, bool) or found is None or found.source != cid
                    or not isinstance(found.value, tuple)):
                continue
            if isinstance(policy.loads(found.value), _DeltaSnapshot):
                out.add(ch)
    return out


def all_but(fold: Fold, removed: Checkpoints) -> Checkpoints:
    return {(ns_name, cid) for ns_name, ns in fold.namespaces.items() for cid in ns.checkpoints
            if (ns_name, cid) not in removed}


def doomed(sk: str, keep: Checkpoints, remove: Checkpoints | None) -> bool:
    """Whether the item at ``sk`` goes: it belongs to a checkpoint that is not kept (or,
    with ``remove``, to one of those)."""
    own = _keys.owner(sk)
    if own is None:
        return False
    return own in remove if remove is not None else own not in keep


def removal(
    policy: Policy, thread_id: str, fold: Fold, keep: Checkpoints, remove: Checkpoints | None,
    *, now: float,
) -> list[ItemPlan]:
    """What to write before deleting the checkpoints that go: the values kept checkpoints
    still need from them (carried into a blobs item of each kept checkpoint), and removal
    markers naming what goes, with its chain hash, so that verify tells this removal from
    an item that went missing and still checks what remains."""
    pk = _keys.thread_pk(thread_id)
    now_ms = int(now * 1000)

    def goes(ns_name: str, cid: str) -> bool:
        return (ns_name, cid) in remove if remove is not None else (ns_name, cid) not in keep

    plans = []
    # Each value once, with the oldest kept checkpoint that needs it: a value is resolved
    # from the latest copy at or before a checkpoint, so the newer ones find it there.
    held: set[tuple[str, str, Any, str]] = set()
    for ns_name, cid in sorted(keep):
        ns = fold.namespaces[ns_name]
        event = ns.checkpoints[cid]
        checkpoint = policy.loads(event.checkpoint)
        carried = []
        for ch, r in ns.resolve(event, checkpoint["channel_versions"]).items():
            # A value held by a checkpoint that goes, or a delta whose chain runs
            # through one (it would no longer replay): carried whole.
            needed = (r.source != cid and goes(ns_name, r.source)) or any(
                goes(ns_name, link) for link in _links(ns, ch, r.version, r.source))
            if not needed or (ns_name, ch, r.version, r.source) in held:
                continue
            held.add((ns_name, ch, r.version, r.source))
            carried.append({"channel": ch, "version": r.version, "value": value_record(r.value)})
        if not carried:
            continue
        record = {
            "thread_id": thread_id, "checkpoint_ns": ns_name, "checkpoint_id": cid,
            "written_at": now_ms, "blobs": carried,
        }
        encoded = policy.hasher.encode(schemas.RECORD_BLOBS, record, compress=policy.compression)
        plans.append(plan_items(
            pk, _keys.blobs_sk(ns_name, cid, uniq(now_ms)), _keys.KIND_BLOBS, encoded,
            written_at_ms=now_ms, expires_at=policy.expires_at(now),
            max_item_bytes=policy.max_item_bytes,
        ))
    reason = "prune" if remove is None else "delete_for_runs"
    # ~150 bytes per entry before compression: a marker never needs chunks.
    per_marker = max(1, min(REMOVED_PER_MARKER, (policy.max_item_bytes - 8192) // 200))
    for ns_name, ns in sorted(fold.namespaces.items()):
        gone = [
            {"checkpoint_id": cid, "parent_checkpoint_id": ev.parent_checkpoint_id,
             "chain_hash": ev.chain_hash}
            for cid, ev in sorted(ns.checkpoints.items()) if goes(ns_name, cid)
        ]
        for i in range(0, len(gone), per_marker):
            marker = {
                "thread_id": thread_id, "checkpoint_ns": ns_name, "written_at": now_ms,
                "reason": reason, "removed": gone[i:i + per_marker],
            }
            encoded = policy.hasher.encode(
                schemas.RECORD_REMOVAL, marker, compress=policy.compression
            )
            plans.append(plan_items(
                pk, _keys.removal_sk(ns_name, uniq(now_ms)), _keys.KIND_REMOVAL, encoded,
                written_at_ms=now_ms, expires_at=policy.expires_at(now),
                max_item_bytes=policy.max_item_bytes,
            ))
    return plans


def _links(ns: Namespace, channel: str, version: Any, source: str) -> list[str]:
    """The checkpoints whose journal items a value stored as a delta is replayed from (its
    own and its bases', down to the chain's whole value); empty for a whole value."""
    out: list[str] = []
    stored = ns.journal.get((channel, version, source))
    while stored is not None and _delta.is_delta(stored) and len(out) <= _delta.MAX_DEPTH:
        out.append(source)
        d = _delta.parse(stored, f"checkpoint {source}, channel {channel!r}")
        version, source = d.base_version, d.base_source
        stored = ns.journal.get((channel, version, source))
        if stored is not None and not _delta.is_delta(stored):
            out.append(source)
    return out


def copy(policy: Policy, fold: Fold, target_thread_id: str, *, now: float) -> list[ItemPlan]:
    """Every visible checkpoint and pending write of ``fold`` (a journal-only fold) as
    events of another thread; each copy holds the values it needs from checkpoints not
    copied, and chains to its parent's copy."""
    pk = _keys.thread_pk(target_thread_id)
    now_ms = int(now * 1000)
    expires_at = policy.expires_at(now)
    plans = []
    for ns_name, ns in fold.namespaces.items():
        copied = set(ns.checkpoints)
        chains: dict[str, str] = {}
        # In id order (uuid6: a parent sorts before its children), so each copy
        # chains to its parent's copy.
        for cid, event in sorted(ns.checkpoints.items()):
            checkpoint = policy.loads(event.checkpoint)
            blobs = dict(event.blobs)
            for ch, r in ns.resolve(event, checkpoint["channel_versions"]).items():
                if r.source not in copied or (ch, r.version) not in ns.checkpoints[
                    r.source
                ].blobs:
                    assert not isinstance(r.value, BlobRef)  # a journal-only fold
                    blobs[(ch, r.version)] = r.value
            record: dict[str, Any] = {
                "thread_id": target_thread_id, "checkpoint_ns": ns_name, "checkpoint_id": cid,
                "parent_checkpoint_id": event.parent_checkpoint_id, "written_at": now_ms,
                "checkpoint": {"type": event.checkpoint[0], "data": event.checkpoint[1]},
                "metadata": {"type": event.metadata[0], "data": event.metadata[1]},
                "blobs": [
                    {"channel": ch, "version": ver,
                     "value": None if v is None else {"type": v[0], "data": v[1]}}
                    for (ch, ver), v in blobs.items()
                ],
                "channel_versions": [
                    {"channel": ch, "version": v}
                    for ch, v in checkpoint["channel_versions"].items()
                ],
            }
            encoded = policy.hasher.encode(
                schemas.RECORD_CHECKPOINT, record, compress=policy.compression,
                parent_chain=chains.get(event.parent_checkpoint_id or ""),
            )
            chains[cid] = record["chain_hash"]
            extra = metadata_attrs(policy.loads(event.metadata))
            if event.parent_checkpoint_id:
                extra["parent"] = {"S": event.parent_checkpoint_id}
            plans.append(plan_items(
                pk, _keys.checkpoint_sk(ns_name, cid), _keys.KIND_CHECKPOINT, encoded,
                written_at_ms=now_ms, expires_at=expires_at, extra=extra,
                max_item_bytes=policy.max_item_bytes,
            ))
        for cid, writes in ns.writes.items():
            by_task: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
            for w in writes:
                by_task[(w.task_id, w.task_path)].append(
                    {"channel": w.channel, "idx": w.idx, "value": value_record(w.value)}
                )
            for (task_id, task_path), ws in by_task.items():
                record = {
                    "thread_id": target_thread_id, "checkpoint_ns": ns_name,
                    "checkpoint_id": cid, "task_id": task_id, "task_path": task_path,
                    "written_at": now_ms, "writes": ws,
                }
                encoded = policy.hasher.encode(
                    schemas.RECORD_WRITES, record, compress=policy.compression
                )
                plans.append(plan_items(
                    pk, _keys.writes_sk(ns_name, cid, task_id, uniq(now_ms)),
                    _keys.KIND_WRITES, encoded, written_at_ms=now_ms, expires_at=expires_at,
                    max_item_bytes=policy.max_item_bytes,
                ))
    return plans

