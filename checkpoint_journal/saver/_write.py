"""The items of a ``put`` and a ``put_writes`` (pure: no I/O here).

A checkpoint event holds only the channels in ``new_versions`` (a delta); the others are
referenced where they were stored, as the parent's origins say. With a TTL, a value
stored long ago is written again (re-carried) so that the latest checkpoint of an active
thread outlives its oldest dependency by most of the TTL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_journal import errors, schemas
from checkpoint_journal._core import chain as _chain
from checkpoint_journal._core import delta as _delta
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.delta import Chain, Key
from checkpoint_journal._core.items import ItemPlan, metadata_attrs, plan_items, uniq
from checkpoint_journal.saver._values import Origin, Values

# With a TTL, a channel value stored more than this fraction of the TTL ago is written
# again with the next checkpoint instead of referenced, so the latest checkpoint of an
# active thread stays readable for at least (1 - fraction) * ttl after it is written.
TTL_RECARRY_FRACTION = 0.1
# A DeltaChannel seed before every checkpoint id (uuid6, hex): its history starts at the
# namespace's first checkpoint.
ROOT_SEED = "0"


@dataclass(frozen=True)
class Policy:
    """How the saver encodes what it writes (taken from the saver at each call, so that
    a ``with_allowlist`` clone uses its own serde)."""

    serde: SerializerProtocol
    hasher: _chain.Hasher
    compression: bool
    max_item_bytes: int
    ttl_seconds: int | None
    deltas: bool = True
    """Store a changed value as a delta against its previous version when that saves."""

    def expires_at(self, now: float) -> int | None:
        return None if self.ttl_seconds is None else int(now) + self.ttl_seconds

    def loads(self, typed: tuple[str, bytes]) -> Any:
        return self.serde.loads_typed(typed)

    def dumps(self, value: Any, what: str) -> dict[str, Any]:
        """A value as the journal's TypedValue record; SerializationError if the serde
        refuses it (before anything is written)."""
        try:
            type_, data = self.serde.dumps_typed(value)
        except Exception as e:  # serializers raise TypeError, ValueError, msgpack errors
            raise errors.SerializationError(
                f"cannot serialize {what} ({type(value).__name__}) with "
                f"{type(self.serde).__name__}: {e}. Nothing was written. Store only values "
                "the serializer supports, or pass a serde that handles this type."
            ) from e
        return {"type": type_, "data": data}


@dataclass(frozen=True)
class CheckpointWrite:
    """What one ``put`` writes, and what the saver remembers of it."""

    plan: ItemPlan
    key: tuple[str, str, str]
    """(thread, namespace, checkpoint id)."""
    origins: dict[str, Origin]
    """Where each channel's value of the new checkpoint is stored."""
    chain_hash: str | None
    config: RunnableConfig
    """What ``put`` returns."""
    values: list[tuple[Key, tuple[str, bytes], Chain]]
    """The serialized values it stores, to keep as the bases of the next deltas."""


def checkpoint_write(
    policy: Policy,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
    *,
    parent_origins: dict[str, Origin] | None,
    parent_chain: str | None,
    now: float,
    bases: Values | None = None,
) -> CheckpointWrite:
    """The checkpoint event of a ``put``: the channels in ``new_versions``, plus those
    whose stored value is unknown (no ``parent_origins`` for them) or, with a TTL, too
    old to reference. A changed value whose previous version is in ``bases`` is stored as
    a delta against it while its chain stays within ``_delta``'s bounds."""
    thread_id, ns_name, parent_id = _keys.from_config(config)
    cid = _keys.new_checkpoint_id(checkpoint.get("id"))
    pk = _keys.thread_pk(thread_id)
    sk = _keys.checkpoint_sk(ns_name, cid)
    now_ms = int(now * 1000)
    expires_at = policy.expires_at(now)
    ttl = policy.ttl_seconds

    values = checkpoint["channel_values"]
    versions = checkpoint["channel_versions"]
    to_store: dict[str, Any] = dict(new_versions)
    origins: dict[str, Origin] = {}
    visible_until = expires_at
    for ch, ver in versions.items():
        if ch in to_store:
            continue
        origin = (parent_origins or {}).get(ch)
        known = origin if origin is not None and origin[0] == ver else None
        if ttl is not None and (
            known is None or (now_ms - _oldest(known)) > TTL_RECARRY_FRACTION * ttl * 1000
        ):
            to_store[ch] = ver  # re-carry: write it again rather than reference
            continue
        if known is not None:
            # A DeltaChannel history ends at a checkpoint whose value is not empty, and
            # reads from the journal item holding that value.
            origins[ch] = known if known.empty else known._replace(seed=known.source)
            if visible_until is not None and ttl is not None:
                visible_until = min(visible_until, _oldest(known) // 1000 + ttl)
    blobs = []
    kept: list[tuple[Key, tuple[str, bytes], Chain]] = []
    for ch, ver in to_store.items():
        if ch not in values:
            blobs.append({"channel": ch, "version": ver, "value": None})
            before = (parent_origins or {}).get(ch)
            # Never stored in this lineage (the parent had no version of it): the
            # history of it starts at the namespace's first checkpoint.
            origins[ch] = Origin(ver, now_ms, empty=True, seed=(
                before.seed if before is not None else ROOT_SEED if parent_origins is not None
                else None), last=None if before is None else before.last)
            continue
        typed = policy.dumps(values[ch], f"channel {ch!r}")
        stored, chain = _as_delta(policy, typed, ch, (parent_origins or {}).get(ch), bases,
                                  (thread_id, ns_name), cid, now_ms)
        blobs.append({"channel": ch, "version": ver, "value": stored})
        origins[ch] = Origin(ver, now_ms, cid, chain, seed=cid, last=(ch, ver, cid))
        kept.append(((ch, ver, cid), (typed["type"], typed["data"]), chain))
        if visible_until is not None and ttl is not None:
            visible_until = min(visible_until, chain.start_ms // 1000 + ttl)
    stored_checkpoint = {k: v for k, v in checkpoint.items() if k != "channel_values"}
    md = get_checkpoint_metadata(config, metadata)
    record: dict[str, Any] = {
        "thread_id": thread_id,
        "checkpoint_ns": ns_name,
        "checkpoint_id": cid,
        "parent_checkpoint_id": parent_id,
        "written_at": now_ms,
        "checkpoint": policy.dumps(stored_checkpoint, "the checkpoint"),
        "metadata": policy.dumps(md, "the metadata"),
        "blobs": blobs,
        "channel_versions": [{"channel": ch, "version": v} for ch, v in versions.items()],
    }
    encoded = policy.hasher.encode(schemas.RECORD_CHECKPOINT, record,
                                   compress=policy.compression, parent_chain=parent_chain)
    extra = metadata_attrs(md)
    if parent_id:
        extra["parent"] = {"S": parent_id}
    chained = [o.chain.start for o in origins.values() if o.needs_journal() and o.chain]
    if chained:
        # A reader replays these channels' deltas from the journal from here up.
        extra["jfrom"] = {"S": min(chained)}
    held = [o.source for o in origins.values() if o.source is not None and o.source < cid]
    if held:
        # The oldest event holding one of its values: where a read without views stops.
        extra["vfrom"] = {"S": min(held)}
    start = history_start(md, parent_origins)
    if start is not None:
        extra["hfrom"] = {"S": start}
    if visible_until is not None and visible_until != expires_at:
        extra["visible_until"] = {"N": str(visible_until)}
    plan = plan_items(
        pk, sk, _keys.KIND_CHECKPOINT, encoded,
        written_at_ms=now_ms, expires_at=expires_at, extra=extra,
        max_item_bytes=policy.max_item_bytes,
    )
    return CheckpointWrite(
        plan=plan,
        key=(thread_id, ns_name, cid),
        origins=origins,
        chain_hash=record["chain_hash"],
        config={"configurable": {
            "thread_id": thread_id, "checkpoint_ns": ns_name, "checkpoint_id": cid,
        }},
        values=kept,
    )


def history_start(md: Any, parent_origins: dict[str, Origin] | None) -> str | None:
    """Where a DeltaChannel history of the new checkpoint starts (reads from): the oldest
    of its DeltaChannels' seeds at its parent, when the saver knows them all (LangGraph
    names the DeltaChannels in ``counters_since_delta_snapshot``)."""
    counters = md.get("counters_since_delta_snapshot") if isinstance(md, dict) else None
    if not isinstance(counters, dict) or not counters or not parent_origins:
        return None
    seeds = [parent_origins[ch].seed if ch in parent_origins else ROOT_SEED for ch in counters]
    return None if any(s is None for s in seeds) else min(s for s in seeds if s is not None)


def _oldest(origin: Origin) -> int:
    """written_at (ms) of the oldest journal item a value needs: its chain's start."""
    if origin.needs_journal() and origin.chain is not None:
        return origin.chain.start_ms
    return origin.written_at_ms


def _as_delta(
    policy: Policy, typed: dict[str, Any], channel: str, parent: Origin | None,
    bases: Values | None, where: tuple[str, str], cid: str, now_ms: int,
) -> tuple[dict[str, Any], Chain]:
    """``typed`` as stored: a delta against the parent's value of the channel when the
    saver holds that value's bytes, it is large enough to gain, its chain is young enough
    for a TTL and within the bounds; else whole (a new chain)."""
    whole = (typed, Chain(cid, now_ms, len(typed["data"]), 0, 0))
    if not policy.deltas or bases is None or len(typed["data"]) < _delta.MIN_BYTES:
        return whole
    # The parent's value; after empty versions (a DeltaChannel between snapshots), the
    # lineage's last value, so that a snapshot costs what changed since the one before.
    # Both follow from the parent alone: a retried put makes the same items.
    key: Key | None = None
    if parent is not None and parent.source is not None and not parent.empty:
        key = (channel, parent.version, parent.source)
    elif parent is not None and parent.empty:
        key = parent.last
    got = None if key is None or key[2] == cid else bases.get(where[0], where[1], key)
    if key is None or got is None:
        return whole  # another worker's value, not read here: start a new chain
    (_, base_version, base_source), ((_, data), chain) = key, got
    ttl = policy.ttl_seconds
    if chain.depth >= _delta.MAX_DEPTH or (
        ttl is not None and now_ms - chain.start_ms > TTL_RECARRY_FRACTION * ttl * 1000
    ):
        return whole
    made = _delta.make(typed["type"], typed["data"], data, base_version, base_source)
    if made is None or chain.deltas + len(made[1]) > _delta.SNAPSHOT_RATIO * chain.whole:
        return whole
    return ({"type": made[0], "data": made[1]},
            Chain(chain.start, chain.start_ms, chain.whole, chain.deltas + len(made[1]),
                  chain.depth + 1))


def writes_write(
    policy: Policy,
    config: RunnableConfig,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
    *,
    now: float,
) -> ItemPlan:
    """The writes event of a ``put_writes``: every write as given, with its LangGraph
    index; the dedup rules are the fold's (first regular write wins, last special one)."""
    thread_id, ns_name, cid = _keys.from_config(config)
    if cid is None:
        raise errors.InvalidKeyError(
            "put_writes needs the config of the checkpoint the writes belong to (with "
            "its checkpoint_id), as returned by put")
    now_ms = int(now * 1000)
    pk = _keys.thread_pk(thread_id)
    sk = _keys.writes_sk(ns_name, cid, task_id, uniq(now_ms))
    record = {
        "thread_id": thread_id,
        "checkpoint_ns": ns_name,
        "checkpoint_id": cid,
        "task_id": task_id,
        "task_path": task_path,
        "written_at": now_ms,
        "writes": [
            {
                "channel": ch,
                "idx": WRITES_IDX_MAP.get(ch, i),
                "value": policy.dumps(v, f"the write to channel {ch!r}"),
            }
            for i, (ch, v) in enumerate(writes)
        ],
    }
    encoded = policy.hasher.encode(schemas.RECORD_WRITES, record, compress=policy.compression)
    return plan_items(
        pk, sk, _keys.KIND_WRITES, encoded,
        written_at_ms=now_ms, expires_at=policy.expires_at(now),
        max_item_bytes=policy.max_item_bytes,
    )
