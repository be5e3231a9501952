"""Projector items from a fold (pure), doorbells, and the index keys."""

from __future__ import annotations

import decimal
import os
from typing import Any

from checkpoint_journal._core import blobs as _blobs
from checkpoint_journal._core import index as _index
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import BlobRef, decode_view, fold_partition
from checkpoint_journal._core.size import item_size
from checkpoint_journal.stream_handlers._projector import doorbell
from checkpoint_journal.stream_handlers._view import build_view, head_item
from tests.unit.test_fold import ckpt, writes


def _record(pk: str, sk: str, event: str = "INSERT", service: bool = False) -> dict[str, Any]:
    rec: dict[str, Any] = {"eventName": event,
                           "dynamodb": {"Keys": {"PK": {"S": pk}, "SK": {"S": sk}}}}
    if service:
        rec["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return rec


def test_doorbells_name_a_namespace_and_ignore_the_projectors_own_items() -> None:
    pk = _keys.thread_pk("t#1")
    c = _keys.checkpoint_sk("sub:1", "c1")
    bell = doorbell(_record(pk, c))
    assert bell is not None and (bell.thread_id, bell.checkpoint_ns) == ("t#1", "sub:1")
    assert not bell.tombstone and not bell.removal
    assert doorbell(_record(pk, _keys.writes_sk("", "c1", "task", "00"))) is not None
    tomb = doorbell(_record(pk, _keys.tombstone_sk("")))
    assert tomb is not None and tomb.tombstone
    removed = doorbell(_record(pk, c, "REMOVE"))
    assert removed is not None and removed.removal
    for own in (_keys.view_sk("", "c1"), _keys.head_sk(""), _keys.index_sk("", "c1", "ab"),
                _keys.chunk_sk(c, 0)):
        assert doorbell(_record(pk, own)) is None
    assert doorbell(_record(pk, c, "REMOVE", service=True)) is None  # TTL deletion
    assert doorbell({"eventName": "INSERT", "dynamodb": {}}) is None


def test_build_view_is_deterministic_and_offloads_by_stored_size() -> None:
    big = os.urandom(40_000)  # incompressible: 40 KB as stored
    squeezable = b"a" * 200_000  # 200 KB that zstd makes tiny: stays inline
    items = ckpt("c1", {("big", "1"): big, ("sq", "1"): squeezable, ("e", "1"): None},
                 extra={"md": {"M": {"source": {"S": "loop"}}}}) + [
        writes("c1", "task", [("big", 0, big)], "00")]
    fold = fold_partition(items, now_s=0)
    ns = fold.namespaces[""]
    event = ns.checkpoints["c1"]
    one = build_view("t", "", ns, event)
    two = build_view("t", "", ns, event)
    assert one == two
    view = decode_view(one.view)
    big_v, sq_v, e_v = (view.channels[c][1] for c in ("big", "sq", "e"))
    assert isinstance(big_v, BlobRef) and big_v.key.startswith(_blobs.namespace_prefix("t", ""))
    assert sq_v == ("bytes", squeezable) and e_v is None
    # The write carries the same value: one object for both.
    assert [o.ref.key for o in one.offloads] == [big_v.key]
    assert isinstance(view.writes[0].value, BlobRef) and view.writes[0].value.key == big_v.key
    assert one.view["wm"] == {"N": "1"}
    assert [i["mi"]["S"] for i in one.index] == [
        _index.meta_partition(_index.meta_hash("source", "loop") or "", _index.shard("t"))]
    head = head_item("t", "", ns, projected_at_ms=5)
    assert head is not None and head["latest"] == {"S": "c1"}


def test_head_carries_the_latest_step() -> None:
    items = ckpt("c1", {("a", "1"): b"x"}, extra={"md": {"M": {"step": {"N": "3"}}}})
    ns = fold_partition(items, now_s=0).namespaces[""]
    head = head_item("t", "", ns, projected_at_ms=5)
    assert head is not None and head["step"] == {"N": "3"}


def test_a_view_too_big_for_an_item_moves_values_out_until_it_fits() -> None:
    values = {(f"ch{i}", "1"): os.urandom(30_000) for i in range(20)}  # 600 KB inline
    items = ckpt("c1", values, budget=400 * 1024)
    ns = fold_partition(items, now_s=0).namespaces[""]
    event = ns.checkpoints["c1"]
    built = build_view("t", "", ns, event, inline_limit=350 * 1024)
    assert item_size(built.view) <= 400 * 1024
    assert 0 < len(built.offloads) < 20


def test_index_canonical_values() -> None:
    assert _index.meta_hash("n", 1) == _index.meta_hash("n", decimal.Decimal("1"))
    assert _index.meta_hash("n", 1.0) == _index.meta_hash("n", 1)
    assert _index.meta_hash("n", {"b": 1, "a": 2}) == _index.meta_hash("n", {"a": 2, "b": 1})
    assert _index.meta_hash("n", "1") != _index.meta_hash("n", 1)
    assert _index.meta_hash("n", "x" * 2000) is None
    assert _index.meta_hash("parents", {}) is None and _index.meta_hash("n", "") is None
    assert _index.meta_hash("n", object()) is None
    assert {_index.shard(f"t{i}") for i in range(200)} == set(range(_index.SHARDS))
