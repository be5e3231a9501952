"""The DeltaChannel history's keys listed alongside get_tuple (saver/_prefetch.py): when
a listing is taken, used, and never used."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langgraph.checkpoint.base import CheckpointTuple

from checkpoint_journal._core import keys as _keys
from checkpoint_journal.errors import TransientError
from checkpoint_journal.saver._prefetch import MAX_AGE_S, Prefetch, replays
from checkpoint_journal.saver._values import Origins

T, NS, START, CID = "t1", "", "1f0-0001", "1f0-0009"
LO = _keys.checkpoint_sk(NS, START)
# A checkpoint between two snapshots of its DeltaChannel "messages": a version, no value.
BETWEEN: Any = {"channel_versions": {"messages": "3", "log": "3"}, "channel_values": {"log": []}}
COUNTED: Any = {"counters_since_delta_snapshot": {"messages": 2}}


def _wrote(pre: Prefetch, reader: Reader, cid: str, start: str | None) -> None:
    """A put of ``cid`` between snapshots; ``start``: its ``hfrom``, noted as the saver's
    put notes it (None: the saver did not know where its history starts)."""
    if start is not None:
        reader.origins.note_history((T, NS, cid), start)
    pre.wrote((T, NS, cid), BETWEEN, COUNTED)


def test_langgraph_asks_for_a_history_only_between_snapshots() -> None:
    snapshot = {**BETWEEN, "channel_values": {"messages": "snap", "log": []}}
    assert replays(BETWEEN, COUNTED)
    assert not replays(snapshot, COUNTED)  # its value is stored: no history read
    assert not replays(BETWEEN, {})  # no DeltaChannel named
    assert not replays(BETWEEN, {"counters_since_delta_snapshot": {"other": 1}})


class Store:
    """Answers the keys-only Query; ``gate``: only once the test opens it."""

    def __init__(self, keys: list[str], gate: threading.Event | None = None,
                 fail: bool = False) -> None:
        self.listed, self.gate, self.fail = keys, gate, fail
        self.ranges: list[tuple[str, str]] = []
        self.in_flight = threading.Event()

    def keys(self, pk: str, prefix: str, *, between: tuple[str, str]) -> list[tuple[str, str]]:
        self.ranges.append(between)
        self.in_flight.set()
        if self.gate is not None and not self.gate.wait(timeout=10):
            raise AssertionError("the gate was never opened")
        if self.fail:
            raise TransientError("throttled")
        return [(pk, sk) for sk in self.listed]


class Reader:
    def __init__(self, store: Store, pool: ThreadPoolExecutor) -> None:
        self.store, self.pool, self.origins = store, pool, Origins()


def _tuple(cid: str) -> CheckpointTuple:
    config: Any = {"configurable": {"thread_id": T, "checkpoint_ns": NS, "checkpoint_id": cid}}
    return CheckpointTuple(config, {"id": cid}, {}, None, [])  # type: ignore[arg-type]


@pytest.fixture
def pool() -> Any:
    with ThreadPoolExecutor(2) as p:
        yield p


def test_the_listing_is_in_flight_while_get_tuple_reads(pool: ThreadPoolExecutor) -> None:
    """get_tuple's own Query and the history's keys Query overlap: the listing is
    already sent when get_tuple reads (its answer waits on a gate that read opens)."""
    gate = threading.Event()
    store = Store(["J##1f0-0009", "J##1f0-0001"], gate)
    pre = Prefetch()
    reader = Reader(store, pool)
    _wrote(pre, reader, CID, START)

    def read(thread_id: str, ns_name: str) -> CheckpointTuple:
        assert store.in_flight.wait(timeout=10), "the listing was not sent alongside"
        gate.set()
        return _tuple(CID)

    assert pre.latest(reader, T, NS, read) == _tuple(CID)  # type: ignore[arg-type]
    assert store.ranges == [(LO, _keys.tombstone_sk(NS))]
    assert pre.take((T, NS, CID), LO) == ["J##1f0-0009", "J##1f0-0001"]
    assert pre.take((T, NS, CID), LO) is None  # once


@pytest.mark.parametrize("case", ["another_worker_is_newer", "other_range", "too_old",
                                  "query_failed", "thread_forgotten", "not_written_here",
                                  "then_a_snapshot", "then_no_hfrom"])
def test_a_listing_is_not_used(pool: ThreadPoolExecutor, case: str) -> None:
    now = [100.0]
    store = Store(["J##1f0-0009"], fail=case == "query_failed")
    pre = Prefetch(clock=lambda: now[0])
    reader = Reader(store, pool)
    if case != "not_written_here":
        _wrote(pre, reader, CID, START)
    if case == "then_a_snapshot":  # a newer checkpoint whose value is stored
        pre.wrote((T, NS, CID), {**BETWEEN, "channel_values": {"messages": 1}}, COUNTED)
    elif case == "then_no_hfrom":  # a newer checkpoint whose history start is not known
        _wrote(pre, reader, "1f0-000c", None)
    returned = "1f0-000a" if case == "another_worker_is_newer" else CID
    pre.latest(reader, T, NS, lambda *_: _tuple(returned))  # type: ignore[arg-type]
    lo = LO
    if case == "other_range":
        lo = _keys.checkpoint_sk(NS, "1f0-0002")
    elif case == "too_old":
        now[0] += MAX_AGE_S + 1
    elif case == "thread_forgotten":
        pre.forget_thread(T)
    assert pre.take((T, NS, CID), lo) is None
    assert pre.take((T, NS, returned), LO) is None
    if case in ("not_written_here", "then_a_snapshot", "then_no_hfrom"):
        assert store.ranges == []  # no history will be asked for: nothing sent


def test_a_history_starting_at_the_checkpoint_itself_lists_nothing(
    pool: ThreadPoolExecutor,
) -> None:
    store = Store([])
    pre, reader = Prefetch(), Reader(store, pool)
    _wrote(pre, reader, CID, CID)
    pre.latest(reader, T, NS, lambda *_: _tuple(CID))  # type: ignore[arg-type]
    assert store.ranges == [] and pre.take((T, NS, CID), LO) is None


def test_the_last_checkpoint_written_is_the_one_listed(pool: ThreadPoolExecutor) -> None:
    store = Store(["J##1f0-000b"])
    pre, reader = Prefetch(size=2), Reader(store, pool)
    _wrote(pre, reader, CID, START)
    _wrote(pre, reader, "1f0-000b", "1f0-0005")
    pre.latest(reader, T, NS, lambda *_: _tuple("1f0-000b"))  # type: ignore[arg-type]
    assert store.ranges == [(_keys.checkpoint_sk(NS, "1f0-0005"), _keys.tombstone_sk(NS))]
    assert pre.take((T, NS, "1f0-000b"), _keys.checkpoint_sk(NS, "1f0-0005")) == ["J##1f0-000b"]
