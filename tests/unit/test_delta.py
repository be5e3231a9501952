"""Channel values as deltas (``_core/delta.py``): the codec, chain replay, and damage."""

from __future__ import annotations

import random

import pytest

from checkpoint_journal._core import delta
from checkpoint_journal._core.delta import Chain, Replayer
from checkpoint_journal.errors import CorruptRecordError


def _text(n: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    return " ".join(f"w{rnd.randrange(10_000)}" for _ in range(n)).encode()


def _versions(count: int) -> list[bytes]:
    """A growing list's serialized versions: each appends about 1.5 KB."""
    out, acc = [], _text(2500, 999)
    for i in range(count):
        acc += _text(250, i)
        out.append(b"LIST%05d" % i + acc)  # a header that changes, like msgpack's length
    return out


def test_a_delta_costs_what_changed_and_reconstructs_exactly() -> None:
    old, new = _versions(40)[-2:]
    made = delta.make("msgpack", new, old, 7, "cid-7")
    assert made is not None
    type_, data = made
    assert type_ == "jd1:msgpack"
    assert len(data) < (len(new) - len(old)) + 300  # about the appended part
    d = delta.parse(made, "here")
    assert (d.type, d.base_version, d.base_source, d.size) == ("msgpack", 7, "cid-7", len(new))
    assert delta.apply(d, old, "here") == new


def test_an_unrelated_value_is_not_worth_a_delta() -> None:
    """Compressible, but sharing nothing with its base: compression alone gets as much."""
    assert delta.make("msgpack", _text(2000, 1), _text(2000, 2), 1, "c") is None
    assert delta.make("msgpack", random.Random(1).randbytes(9000),
                      random.Random(2).randbytes(9000), 1, "c") is None


def test_a_wrong_base_is_refused_not_misread() -> None:
    old, new = _versions(5)[-2:]
    made = delta.make("msgpack", new, old, 1, "c")
    assert made is not None
    other = old.replace(b"w", b"v", 1)
    with pytest.raises(CorruptRecordError, match="does not reconstruct"):
        delta.apply(delta.parse(made, "x"), other, "x")


def test_a_damaged_header_or_frame_is_a_clear_error() -> None:
    old, new = _versions(5)[-2:]
    type_, data = delta.make("msgpack", new, old, 1, "c") or ("", b"")
    with pytest.raises(CorruptRecordError, match="unreadable header"):
        delta.parse((type_, b"{not json\n" + data), "x")
    d = delta.parse((type_, data[:-20] + b"\0" * 20), "x")
    with pytest.raises(CorruptRecordError):
        delta.apply(d, old, "x")


def _journal(versions: list[bytes]) -> dict[delta.Key, tuple[str, bytes] | None]:
    """A chain: version 0 whole, each next one a delta on the one before."""
    journal: dict[delta.Key, tuple[str, bytes] | None] = {("m", 0, "c00"): ("msgpack",
                                                                             versions[0])}
    for i in range(1, len(versions)):
        made = delta.make("msgpack", versions[i], versions[i - 1], i - 1, f"c{i - 1:02d}")
        assert made is not None
        journal[("m", i, f"c{i:02d}")] = made
    return journal


def test_the_replayer_rebuilds_every_version_of_a_chain() -> None:
    versions = _versions(40)
    journal = _journal(versions)
    r = Replayer(journal, {"c00": 1000}, "thread 't'")
    for i in reversed(range(40)):  # newest first, as a listing reads
        got = r.full(("m", i, f"c{i:02d}"))
        assert got is not None
        (type_, data), chain = got
        assert (type_, data) == ("msgpack", versions[i])
        assert (chain.start, chain.start_ms, chain.depth) == ("c00", 1000, i)
        assert chain.whole == len(versions[0])


def test_a_missing_link_is_unresolved_and_known_values_fill_it() -> None:
    versions = _versions(10)
    journal = _journal(versions)
    del journal[("m", 3, "c03")]  # not read (or gone)
    r = Replayer(journal, {}, "t")
    assert r.full(("m", 9, "c09")) is None
    held = {("m", 3, "c03"): (("msgpack", versions[3]), Chain("c00", 5, 9, 9, 3))}
    r = Replayer(journal, {}, "t", known=held.get)
    got = r.full(("m", 9, "c09"))
    assert got is not None and got[0][1] == versions[9] and got[1].depth == 9


def test_a_cycle_is_damage() -> None:
    versions = _versions(3)
    made = delta.make("msgpack", versions[1], versions[0], 1, "c01")  # points to itself
    assert made is not None
    r = Replayer({("m", 1, "c01"): made}, {}, "t")
    with pytest.raises(CorruptRecordError, match="cycle"):
        r.full(("m", 1, "c01"))
