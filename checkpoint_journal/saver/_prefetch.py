"""The DeltaChannel history's keys, listed alongside the ``get_tuple`` that precedes it.

LangGraph loads a thread with a DeltaChannel in two calls, one after the other:
``get_tuple`` (the latest checkpoint), then ``get_delta_channel_history`` for it. For a
checkpoint this saver wrote, the history is one keys-only Query over the range its event
names (``hfrom`` .. the namespace's tombstone key; the items' content is in memory,
``_history._held_or_read``). That range is known before ``get_tuple`` is called: the
saver wrote the checkpoint. So ``get_tuple`` sends that Query in parallel with its own,
and the history that follows takes its answer instead of waiting for another round trip.

A listing is used once, only by a history of the checkpoint ``get_tuple`` returned
(another worker's newer checkpoint discards it), over the same range, within
``MAX_AGE_S`` of being taken. It is what the table held when ``get_tuple`` read the
checkpoint itself, so the pair answers from one moment, as LangGraph uses them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import Checkpoint, CheckpointTuple

from checkpoint_journal._core import keys as _keys
from checkpoint_journal.errors import JournalError
from checkpoint_journal.saver._read import Reader

MAX_AGE_S = 5.0
"""How long a listing may wait for its history (LangGraph asks right away)."""

Key = tuple[str, str, str]
"""(thread, namespace, checkpoint id)."""


@dataclass(frozen=True)
class Listing:
    key: Key
    lo: str
    """The range's lower key (the checkpoint event where the history starts)."""
    taken_at: float
    keys: Future[list[str]]


def replays(checkpoint: Checkpoint, metadata: Mapping[str, Any]) -> bool:
    """Whether loading ``checkpoint`` asks for a DeltaChannel history: LangGraph's rule
    (``langgraph.pregel._checkpoint``: a DeltaChannel with a version and no value
    stored at it), for the DeltaChannels its metadata names. At a snapshot step every
    one has its value, and the history is not read."""
    counters = metadata.get("counters_since_delta_snapshot")
    if not isinstance(counters, Mapping):
        return False
    values = checkpoint.get("channel_values") or {}
    return any(ch in checkpoint["channel_versions"] and ch not in values for ch in counters)


class Prefetch:
    """The last checkpoint this saver wrote in each namespace whose DeltaChannel history
    LangGraph will read, and the listings taken for them."""

    def __init__(self, size: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.clock = clock
        self._lock = threading.Lock()
        self._wrote: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._ready: OrderedDict[Key, Listing] = OrderedDict()

    def wrote(self, key: Key, checkpoint: Checkpoint, metadata: Mapping[str, Any]) -> None:
        """The saver wrote checkpoint ``key``: remembered as its namespace's last when
        LangGraph will ask for its history, else the namespace's entry goes."""
        thread_id, ns_name, cid = key
        with self._lock:
            if not replays(checkpoint, metadata):
                self._wrote.pop((thread_id, ns_name), None)
                return
            self._wrote[(thread_id, ns_name)] = cid
            self._wrote.move_to_end((thread_id, ns_name))
            while len(self._wrote) > self.size:
                self._wrote.popitem(last=False)

    def latest(self, reader: Reader, thread_id: str, ns_name: str,
               read: Callable[[str, str], CheckpointTuple | None]) -> CheckpointTuple | None:
        """``read(thread_id, ns_name)``, with the history's keys listed alongside when this
        saver wrote the namespace's last checkpoint it knows of."""
        with self._lock:
            cid = self._wrote.get((thread_id, ns_name))
        # Where its history starts: the event's ``hfrom``, which the put noted.
        start = reader.origins.history_from((thread_id, ns_name, cid)) if cid else None
        if cid is None or start is None or not start < cid:
            return read(thread_id, ns_name)
        pk = _keys.thread_pk(thread_id)
        lo = _keys.checkpoint_sk(ns_name, start)
        tomb = _keys.tombstone_sk(ns_name)
        listing = Listing((thread_id, ns_name, cid), lo, self.clock(), reader.pool.submit(
            lambda: [sk for _, sk in reader.store.keys(pk, "", between=(lo, tomb))]))
        found = read(thread_id, ns_name)
        if found is not None and found.config["configurable"]["checkpoint_id"] == cid:
            with self._lock:
                self._ready[listing.key] = listing
                while len(self._ready) > self.size:
                    self._ready.popitem(last=False)
        return found

    def take(self, key: Key, lo: str) -> list[str] | None:
        """The listing taken for ``key`` over a range starting at ``lo``, once; None when
        there is none (or it is too old, or its Query failed: the caller reads)."""
        with self._lock:
            listing = self._ready.pop(key, None)
        if listing is None or listing.lo != lo or (
                self.clock() - listing.taken_at > MAX_AGE_S):
            return None
        try:
            return listing.keys.result()
        except JournalError:
            return None

    def forget_thread(self, thread_id: str) -> None:
        """A delete, prune or delete_for_runs changed the thread: no listing of it holds."""
        with self._lock:
            for k in [k for k in self._wrote if k[0] == thread_id]:
                del self._wrote[k]
            for key in [key for key in self._ready if key[0] == thread_id]:
                del self._ready[key]
