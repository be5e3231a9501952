"""``list(None, ...)``: checkpoints of every thread, from the projector's indexes.

No Scan (I7): threads come from the ThreadIndex GSI, and with a metadata filter the
matching checkpoints from the MetaIndex GSI, whose views are then read in batches. Both
are as fresh as the projector and the GSIs (eventually consistent).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from langgraph.checkpoint.base import CheckpointTuple

from checkpoint_journal._core import index as _index
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import decode_view
from checkpoint_journal._core.store import run_parallel
from checkpoint_journal.saver._read import Reader
from checkpoint_journal.saver._tuples import NeedsJournal, matching, view_tuple
from checkpoint_journal.saver._values import BlobUnavailable

# BatchGetItem takes at most 100 keys (DynamoDB limit).
_BATCH_GET_KEYS = 100


def every_thread(
    reader: Reader, filter: dict[str, Any] | None, before_id: str | None, limit: int | None
) -> Iterator[CheckpointTuple]:
    """Every thread's checkpoints, newest first (by id, then thread); unfiltered by
    metadata, each thread's own listing, merged as they stream."""
    indexed = [
        h for k, v in (filter or {}).items() if (h := _index.meta_hash(k, v)) is not None
    ]
    if indexed:
        yield from _by_metadata(reader, indexed[0], filter or {}, before_id)
        return
    store = reader.store
    threads: set[str] = set()
    for group in run_parallel(
        [
            lambda s=s: [  # type: ignore[misc]
                i["PK"]["S"]
                for page in store.index_keys(
                    _index.THREAD_INDEX, "ta", _index.thread_partition(s), "ts")
                for i in page
            ]
            for s in range(_index.SHARDS)
        ],
        reader.pool,
    ):
        threads.update(group)
    streams = [
        matching(reader.thread(_keys.thread_from_pk(pk), before=before_id, limit=limit), filter)
        for pk in threads
    ]
    yield from heapq.merge(
        *streams,
        key=lambda t: (t.config["configurable"]["checkpoint_id"],
                       t.config["configurable"]["thread_id"]),
        reverse=True,
    )


def _by_metadata(
    reader: Reader, key_value_hash: str, filter: dict[str, Any], before_id: str | None
) -> Iterator[CheckpointTuple]:
    """Checkpoints whose metadata matches, via the MetaIndex shards and the views."""
    store = reader.store
    entries = run_parallel(
        [
            lambda s=s: [  # type: ignore[misc]
                (i["ms"]["S"], i["PK"]["S"], i["SK"]["S"])
                for page in store.index_keys(
                    _index.META_INDEX, "mi", _index.meta_partition(key_value_hash, s),
                    "ms", below=before_id)
                for i in page
            ]
            for s in range(_index.SHARDS)
        ],
        reader.pool,
    )
    merged = sorted({e for group in entries for e in group}, reverse=True)
    for start in range(0, len(merged), _BATCH_GET_KEYS):
        keys = []
        for cid, pk, sk in merged[start : start + _BATCH_GET_KEYS]:
            own = _keys.owner(sk)
            if own is not None:
                keys.append((pk, _keys.view_sk(own[0], cid)))
        views = {(i["PK"]["S"], i["SK"]["S"]): i for i in store.batch_get(keys)}
        for pk, vsk in keys:
            item = views.get((pk, vsk))
            if item is None:
                continue
            exp = item.get("expires_at")
            if exp is not None and int(exp["N"]) <= reader.now:
                continue
            own = _keys.owner(vsk)
            assert own is not None
            thread_id = _keys.thread_from_pk(pk)
            try:
                tup = view_tuple(thread_id, own[0], decode_view(item), reader.loader,
                                 reader.origins)
            except (BlobUnavailable, NeedsJournal):
                # S3 cannot serve a value, or the view points to the journal for one (a
                # delta): the checkpoint from its journal instead.
                found = reader.by_id(thread_id, own[0], own[1])
                if found is None:
                    continue
                tup = found
            yield from matching([tup], filter)
