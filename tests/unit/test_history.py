"""The DeltaChannel history walk (``saver._history.walk``) and what maintenance keeps for
it (``saver._maintenance.with_delta_chains``), on folds of items built as the saver
builds them."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.serde.types import _DeltaSnapshot

from checkpoint_journal import JournalSaver, schemas
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import Namespace, fold_partition
from checkpoint_journal._core.items import Item, plan_items
from checkpoint_journal._core.serde import StrictSerializer
from checkpoint_journal.errors import CorruptRecordError
from checkpoint_journal.saver import _history, _maintenance

PK = _keys.thread_pk("t")
SERDE = StrictSerializer()


def typed(value: Any) -> dict[str, Any]:
    t, data = SERDE.dumps_typed(value)
    return {"type": t, "data": data}


def ckpt(cid: str, parent: str | None, versions: dict[str, str],
         stored: dict[str, Any], metadata: dict[str, Any] | None = None) -> Item:
    """A checkpoint event with ``versions``, storing ``stored`` (channel -> value, None
    for an empty channel) at those versions."""
    rec = {
        "thread_id": "t", "checkpoint_ns": "", "checkpoint_id": cid,
        "parent_checkpoint_id": parent, "written_at": 1,
        "checkpoint": typed({"v": 1}), "metadata": typed(metadata or {}),
        "blobs": [{"channel": ch, "version": versions[ch],
                   "value": None if v is None else typed(v)} for ch, v in stored.items()],
        "channel_versions": [{"channel": ch, "version": v} for ch, v in versions.items()],
    }
    enc = schemas.encode(schemas.RECORD_CHECKPOINT, rec, compress=True)
    return plan_items(PK, _keys.checkpoint_sk("", cid), "C", enc, written_at_ms=1,
                      expires_at=None).commit


def writes(cid: str, task: str, ws: list[tuple[str, Any]], path: str = "") -> Item:
    rec = {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": cid, "task_id": task,
           "task_path": path, "written_at": 1,
           "writes": [{"channel": c, "idx": i, "value": typed(v)} for i, (c, v) in enumerate(ws)]}
    enc = schemas.encode(schemas.RECORD_WRITES, rec, compress=True)
    return plan_items(PK, _keys.writes_sk("", cid, task, "u" + task), "W", enc,
                      written_at_ms=1, expires_at=None).commit


def ns_of(items: list[Item]) -> Namespace:
    return fold_partition(items, now_s=0).namespaces[""]


# c1 snapshots "ch"; c2, c3 and c4 store it empty; c2b forks from c1.
LINE = [
    ckpt("c1", None, {"ch": "1"}, {"ch": _DeltaSnapshot([0])}),
    writes("c1", "a", [("ch", [1])]),
    ckpt("c2", "c1", {"ch": "2"}, {"ch": None}),
    writes("c2", "a", [("ch", [2])]),
    ckpt("c2b", "c1", {"ch": "2b"}, {"ch": None}),
    ckpt("c3", "c2", {"ch": "3"}, {"ch": None}),
    writes("c3", "a", [("ch", [3])]),
    ckpt("c4", "c3", {"ch": "4"}, {"ch": None}, {"counters_since_delta_snapshot": {"ch": [3, 3]}}),
]


def everything(_: str) -> bool:
    return True


def test_the_walk_ends_at_the_stored_value_and_follows_parents_only() -> None:
    ns = ns_of(LINE)
    chain = _history.walk(ns, "c3", ["ch", "never"], passed=everything, exhausted=True)
    assert chain is not None
    assert chain.visited == ["c3", "c2", "c1"]  # not the fork c2b
    assert chain.seeds["ch"][0] == "c1" and chain.walked("ch") == ["c3", "c2", "c1"]
    assert "never" not in chain.seeds and chain.walked("never") == chain.visited
    assert chain.broken is None


def test_the_walk_waits_for_an_ancestor_not_read_yet_and_reports_a_gap() -> None:
    top = [i for i in LINE if i["SK"]["S"] >= _keys.checkpoint_sk("", "c2")]
    ns = ns_of(top)
    assert _history.walk(ns, "c3", ["ch"], passed=lambda c: c >= "c2", exhausted=False) is None
    gap = _history.walk(ns, "c3", ["ch"], passed=everything, exhausted=True)
    assert gap is not None and gap.broken == ("c2", "c1")
    start = _history.walk(ns_of(LINE[2:4]), "c1", ["ch"], passed=everything, exhausted=True)
    assert start is not None and start.broken == (None, "c1")


def test_a_value_held_but_not_rebuilt_is_damage_once_everything_was_read() -> None:
    ns = ns_of(LINE)
    ns.blobs[("ch", "3")] = [("c3", ("no-such-type", b""))]
    ns.resolve = lambda event, versions, **_: {}  # type: ignore[method-assign]
    with pytest.raises(CorruptRecordError, match="c3"):
        _history.walk(ns, "c3", ["ch"], passed=everything, exhausted=True)
    assert _history.walk(ns, "c3", ["ch"], passed=everything, exhausted=False) is None


def test_maintenance_keeps_the_chain_of_delta_channels_only() -> None:
    policy = JournalSaver("t", region_name="us-east-1")._policy()
    fold = fold_partition(LINE + [
        ckpt("c5", "c4", {"ch": "4", "plain": "1"}, {"plain": None}),
    ], now_s=0)
    # c5 stores "plain" empty, and no counters name it nor a snapshot holds it: an
    # ordinary channel, nothing to keep; "ch" is a DeltaChannel (c1's snapshot).
    keep = _maintenance.with_delta_chains(policy, fold, {("", "c5")})
    assert keep == {("", c) for c in ("c5", "c4", "c3", "c2", "c1")}
    assert _maintenance.delta_channels(policy, fold.namespaces[""], ["ch", "plain"]) == {"ch"}
    kept, gone = _maintenance.spare_delta_chains(
        policy, fold, {("", "c5"), ("", "c2b")}, {("", "c2"), ("", "c3"), ("", "c4")})
    assert gone == set() and ("", "c3") in kept
