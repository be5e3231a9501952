"""The journal fold, on items built by the same pure functions the saver uses."""

from __future__ import annotations

from typing import Any

import pytest

from checkpoint_journal import schemas
from checkpoint_journal.errors import CorruptRecordError
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import fold_partition
from checkpoint_journal._core.items import Item, plan_items

PK = _keys.thread_pk("t")


def tv(v: bytes) -> dict[str, Any]:
    return {"type": "bytes", "data": v}


def ckpt(cid: str, blobs: dict[tuple[str, str], bytes | None], *, at: int = 1,
         parent: str | None = None, expires: int | None = None, ns: str = "",
         budget: int = 400 * 1024, extra: dict[str, Any] | None = None) -> list[Item]:
    rec = {
        "thread_id": "t", "checkpoint_ns": ns, "checkpoint_id": cid,
        "parent_checkpoint_id": parent, "written_at": at,
        "checkpoint": tv(b"c"), "metadata": tv(b"m"),
        "blobs": [{"channel": c, "version": v, "value": None if b is None else tv(b)}
                  for (c, v), b in blobs.items()],
        "channel_versions": [{"channel": c, "version": v} for (c, v) in blobs],
    }
    enc = schemas.encode(schemas.RECORD_CHECKPOINT, rec, compress=True)
    plan = plan_items(PK, _keys.checkpoint_sk(ns, cid), "C", enc, written_at_ms=at,
                      expires_at=expires, extra=extra, max_item_bytes=budget)
    return plan.chunks + [plan.commit]


def writes(cid: str, task: str, ws: list[tuple[str, int, bytes]], uniq: str,
           path: str = "") -> Item:
    rec = {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": cid, "task_id": task,
           "task_path": path, "written_at": 1,
           "writes": [{"channel": c, "idx": i, "value": tv(v)} for c, i, v in ws]}
    enc = schemas.encode(schemas.RECORD_WRITES, rec, compress=True)
    return plan_items(PK, _keys.writes_sk("", cid, task, uniq), "W", enc, written_at_ms=1,
                      expires_at=None).commit


def test_resolves_each_channel_at_its_version_from_earlier_events() -> None:
    items = ckpt("c1", {("a", "1"): b"a1", ("b", "1"): b"b1"}) + ckpt(
        "c2", {("a", "2"): b"a2"}, parent="c1")
    ns = fold_partition(items, now_s=0).namespaces[""]
    c2 = ns.checkpoints["c2"]
    got = ns.resolve(c2, {"a": "2", "b": "1"})
    assert {k: r.value for k, r in got.items()} == {"a": ("bytes", b"a2"), "b": ("bytes", b"b1")}
    assert got["b"].source == "c1"


def test_a_version_written_on_two_branches_resolves_to_the_nearest_earlier() -> None:
    items = ckpt("c1", {("a", "2"): b"left"}) + ckpt("c3", {("a", "2"): b"right"})
    ns = fold_partition(items, now_s=0).namespaces[""]
    assert ns.resolve(ns.checkpoints["c1"], {"a": "2"})["a"].value == ("bytes", b"left")
    assert ns.resolve(ns.checkpoints["c3"], {"a": "2"})["a"].value == ("bytes", b"right")


def test_ttl_hides_expired_items_and_checkpoints_past_visible_until() -> None:
    items = ckpt("c1", {("a", "1"): b"x"}, expires=100) + ckpt(
        "c2", {}, expires=200, extra={"visible_until": {"N": "100"}})
    assert set(fold_partition(items, now_s=99).namespaces[""].checkpoints) == {"c1", "c2"}
    assert set(fold_partition(items, now_s=100).namespaces[""].checkpoints) == set()


def test_tombstone_hides_older_items_only() -> None:
    tomb = {"PK": {"S": PK}, "SK": {"S": _keys.tombstone_sk("")}, "kind": {"S": "X"},
            "written_at": {"N": "50"}}
    items = ckpt("c1", {}, at=10) + ckpt("c2", {}, at=60) + [tomb] + ckpt("c9", {}, ns="other", at=1)
    fold = fold_partition(items, now_s=0)
    assert set(fold.namespaces[""].checkpoints) == {"c2"}
    assert set(fold.namespaces["other"].checkpoints) == {"c9"}


def test_chunked_record_needs_every_chunk_and_a_matching_digest() -> None:
    big = __import__("os").urandom(300_000)  # incompressible: chunked at a 64 KB budget
    items = ckpt("c1", {("a", "1"): big}, budget=64 * 1024)
    assert len(items) > 2
    full = fold_partition(items, now_s=0).namespaces[""]
    assert full.resolve(full.checkpoints["c1"], {"a": "1"})["a"].value == ("bytes", big)
    # Chunks without their commit are invisible (a put that crashed before its commit).
    assert "" not in fold_partition(items[:-1], now_s=0).namespaces
    # A commit is written after every chunk: a missing or altered chunk is damage, and
    # the fold raises naming the record rather than showing the state before it (I2b).
    with pytest.raises(CorruptRecordError, match=r"J##c1.*1 are missing.*P##c1#00000"):
        fold_partition(items[1:], now_s=0)
    with pytest.raises(CorruptRecordError, match="missing"):
        fold_partition(items[-1:], now_s=0)  # commit alone
    tampered = [dict(i) for i in items]
    tampered[0] = {**tampered[0], "body": {"B": b"\0" + tampered[0]["body"]["B"][1:]}}
    with pytest.raises(CorruptRecordError, match="do not reassemble to the digest"):
        fold_partition(tampered, now_s=0)


def test_pending_writes_follow_langgraphs_rules() -> None:
    items = ckpt("c1", {}) + [
        writes("c1", "t2", [("x", 0, b"first"), ("y", 1, b"y")], "0001", path="b"),
        writes("c1", "t2", [("x", 0, b"second")], "0002", path="b"),
        writes("c1", "t1", [("__error__", -1, b"e1")], "0001", path="a"),
        writes("c1", "t1", [("__error__", -1, b"e2")], "0002", path="a"),
    ]
    ns = fold_partition(items, now_s=0).namespaces[""]
    got = [(w.task_id, w.channel, w.value[1]) for w in ns.writes["c1"]]
    assert got == [("t1", "__error__", b"e2"), ("t2", "x", b"first"), ("t2", "y", b"y")]


def test_items_outside_the_journal_are_ignored() -> None:
    view = {"PK": {"S": PK}, "SK": {"S": "V##c1"}, "kind": {"S": "V"}}
    assert fold_partition(ckpt("c1", {}) + [view], now_s=0).namespaces[""].checkpoints


def test_the_folds_writes_order_is_langgraphs() -> None:
    """fold spells out LangGraph's writes_sort_key (so the handlers' layer needs no
    LangGraph): the two must order every write alike."""
    from langgraph.checkpoint.base import writes_sort_key as langgraphs

    from checkpoint_journal._core.fold import writes_sort_key as ours

    for args in [("", "", 0), ("~__pregel_pull, tools", "t1", -3), ("a", "b", 7)]:
        assert ours(*args) == langgraphs(*args)
