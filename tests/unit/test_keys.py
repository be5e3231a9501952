from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkpoint_journal._core import keys as _keys
from checkpoint_journal.errors import InvalidKeyError

awkward = st.text(alphabet=st.sampled_from("ab#%|: é🙂\t~"), max_size=12)


@given(awkward)
def test_escape_round_trips_and_removes_separator(s: str) -> None:
    e = _keys.escape(s)
    assert "#" not in e
    assert _keys.unescape(e) == s


@given(awkward, awkward)
def test_one_namespace_prefix_never_matches_another(a: str, b: str) -> None:
    if a != b:
        assert not _keys.checkpoint_sk(b, "1f0-cid").startswith(_keys.ns_prefix(a))


@given(awkward, st.uuids().map(str), st.text(alphabet="abc#%", min_size=1, max_size=5))
def test_parse_every_kind(ns: str, cid: str, task: str) -> None:
    c = _keys.checkpoint_sk(ns, cid)
    w = _keys.writes_sk(ns, cid, task, "0001")
    b = _keys.blobs_sk(ns, cid, "0002")
    cases = {
        c: ("C", c), w: ("W", w), b: ("B", b),
        _keys.chunk_sk(c, 3): ("P", c), _keys.chunk_sk(w, 0): ("P", w),
        _keys.chunk_sk(b, 12): ("P", b), _keys.view_sk(ns, cid): ("V", c),
    }
    for sk, (kind, parent) in cases.items():
        parsed = _keys.parse_sk(sk)
        assert (parsed.kind, parsed.checkpoint_ns, parsed.checkpoint_id, parsed.parent_sk) == (
            kind, ns, cid, parent)
    t = _keys.parse_sk(_keys.tombstone_sk(ns))
    assert (t.kind, t.checkpoint_ns) == ("X", ns)


def test_tombstone_sorts_after_every_item_of_its_namespace() -> None:
    cid = "ffffffff-ffff-6fff-bfff-ffffffffffff"
    assert _keys.tombstone_sk("") > _keys.writes_sk("", cid, "~~", "ff")
    assert _keys.tombstone_sk("") > _keys.view_sk("", cid)


def test_a_checkpoint_sorts_writes_then_view_then_event_descending() -> None:
    """The read path's first page: newest writes, the view that folds them, the event."""
    cid = "1f0c2d3e-0000-6000-8000-000000000001"
    c, v = _keys.checkpoint_sk("", cid), _keys.view_sk("", cid)
    b, w = _keys.blobs_sk("", cid, "00"), _keys.writes_sk("", cid, "A", "00")
    assert sorted([w, v, c, b], reverse=True) == [w, v, b, c]
    older = _keys.writes_sk("", "1f0c2d3e-0000-6000-8000-000000000000", "zz", "ff")
    assert older < c


def test_chunks_and_projector_items_are_outside_the_journal_range() -> None:
    prefix = _keys.ns_prefix("")
    cid = "1f0c2d3e-0000-6000-8000-000000000001"
    for sk in (_keys.chunk_sk(_keys.checkpoint_sk("", cid), 0), _keys.head_sk(""),
               _keys.index_sk("", cid, "ab")):
        assert not sk.startswith(prefix)
    for sk in (_keys.head_sk(""), _keys.index_sk("", cid, "ab")):
        with pytest.raises(ValueError):
            _keys.parse_sk(sk)


def test_task_named_like_a_marker_is_not_a_chunk() -> None:
    sk = _keys.writes_sk("", "cid", "P", "0001")
    assert _keys.parse_sk(sk).kind == "W"


def test_pk_and_thread_round_trip() -> None:
    assert _keys.thread_from_pk(_keys.thread_pk("a#b%c")) == "a#b%c"


def test_limits_are_enforced_with_clear_errors() -> None:
    _keys.thread_pk("x" * 2000)  # within 2048 bytes with the prefix
    with pytest.raises(InvalidKeyError, match="2048"):
        _keys.thread_pk("x" * 2047)
    with pytest.raises(InvalidKeyError, match="empty"):
        _keys.thread_pk("")
    with pytest.raises(InvalidKeyError, match="must be a str"):
        _keys.thread_pk(12)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError, match="1024"):
        _keys.ns_prefix("n" * 900)
    with pytest.raises(InvalidKeyError, match="uuid6"):
        _keys.checkpoint_sk("", "a#b")
    with pytest.raises(ValueError):
        _keys.parse_sk("V#view")
