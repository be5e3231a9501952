"""What a ``put`` stores for a changed channel (pure: ``saver/_write.py``): a delta against
the previous version the saver holds, or the whole value, by the chain's rules."""

from __future__ import annotations

import random
from typing import Any

from langgraph.checkpoint.base import empty_checkpoint

from checkpoint_journal import schemas
from checkpoint_journal._core import chain as _chain
from checkpoint_journal._core import delta as _delta
from checkpoint_journal._core.delta import Chain
from checkpoint_journal._core.serde import StrictSerializer
from checkpoint_journal.saver import _write
from checkpoint_journal.saver._values import Origin, Values

THREAD, NS = "t", ""
NOW = 1_800_000_000.0


def _policy(*, ttl: int | None = None, deltas: bool = True) -> _write.Policy:
    return _write.Policy(StrictSerializer(), _chain.Hasher(None), True, 400_000, ttl, deltas)


def _log(turns: int) -> list[str]:
    rnd = random.Random(7)
    return [" ".join(f"w{rnd.randrange(50_000)}" for _ in range(200)) for _ in range(turns)]


def _put(policy: _write.Policy, values: dict[str, Any], parent: dict[str, Origin] | None,
         bases: Values, *, cid: str, md: dict[str, Any] | None = None,
         now: float = NOW) -> _write.CheckpointWrite:
    cp = empty_checkpoint()
    cp["id"] = cid
    cp["channel_values"] = values
    cp["channel_versions"] = {ch: f"v-{cid}" for ch in values} | {"flag": f"v-{cid}"}
    config = {"configurable": {"thread_id": THREAD, "checkpoint_ns": NS,
                               "checkpoint_id": "1f000000-0000-6000-8000-000000000000"}}
    return _write.checkpoint_write(
        policy, config, cp, md or {"source": "loop", "step": 1}, cp["channel_versions"],
        parent_origins=parent, parent_chain=None, now=now, bases=bases)


def _blob(written: _write.CheckpointWrite, channel: str) -> tuple[str, bytes] | None:
    item = written.plan.commit
    rec = schemas.decode(schemas.RECORD_CHECKPOINT, item["body"]["B"], item["fp"]["S"],
                         item["codec"]["S"])
    for b in rec["blobs"]:
        if b["channel"] == channel:
            return None if b["value"] is None else (b["value"]["type"], b["value"]["data"])
    raise AssertionError(f"no blob for {channel}")


def _first(policy: _write.Policy, bases: Values, log: list[str],
           cid: str = "1f000000-0000-6000-8000-000000000001") -> _write.CheckpointWrite:
    written = _put(policy, {"log": log}, None, bases, cid=cid)
    for key, typed, chain in written.values:
        bases.keep(THREAD, NS, key, typed, chain)
    return written


CID2 = "1f000000-0000-6000-8000-000000000002"


def test_a_grown_value_is_a_delta_against_the_one_the_saver_holds() -> None:
    policy, bases, log = _policy(), Values(1 << 24), _log(12)
    first = _first(policy, bases, log[:10])
    assert not _delta.is_delta(_blob(first, "log") or ("", b""))
    second = _put(policy, {"log": log}, first.origins, bases, cid=CID2)
    stored = _blob(second, "log")
    assert stored is not None and _delta.is_delta(stored)
    whole = dict((k[0], t) for k, t, _ in second.values)["log"]
    assert len(stored[1]) < len(whole[1]) / 5  # about the two entries appended
    d = _delta.parse(stored, "t")
    assert (d.base_version, d.base_source) == (first.origins["log"].version, first.key[2])
    origin = second.origins["log"]
    assert origin.chain is not None and (origin.chain.start, origin.chain.depth) == (
        first.key[2], 1)
    # Readers replay it from the chain's start: the event says where that is.
    assert second.plan.commit["jfrom"] == {"S": first.key[2]}


def test_without_the_previous_value_at_hand_it_is_stored_whole() -> None:
    policy, log = _policy(), _log(12)
    first = _first(policy, Values(1 << 24), log[:10])
    other_worker = Values(1 << 24)  # never saw the thread's values
    second = _put(policy, {"log": log}, first.origins, other_worker, cid=CID2)
    assert not _delta.is_delta(_blob(second, "log") or ("", b""))
    assert "jfrom" not in second.plan.commit
    assert second.origins["log"].chain == Chain(CID2, int(NOW * 1000),
                                                len(second.values[0][1][1]), 0, 0)


def test_deltas_off_store_every_value_whole() -> None:
    policy, bases, log = _policy(deltas=False), Values(1 << 24), _log(12)
    first = _first(policy, bases, log[:10])
    second = _put(policy, {"log": log}, first.origins, bases, cid=CID2)
    assert not _delta.is_delta(_blob(second, "log") or ("", b""))


def test_a_chain_that_has_cost_its_snapshot_starts_again() -> None:
    policy, bases, log = _policy(), Values(1 << 24), _log(12)
    first = _first(policy, bases, log[:10])
    spent = first.origins["log"]
    assert spent.chain is not None
    key = ("log", spent.version, first.key[2])
    typed = (_blob(first, "log") or ("", b""))
    bases.keep(THREAD, NS, key, typed, spent.chain._replace(
        deltas=int(_delta.SNAPSHOT_RATIO * spent.chain.whole)))
    second = _put(policy, {"log": log}, first.origins, bases, cid=CID2)
    assert not _delta.is_delta(_blob(second, "log") or ("", b""))


def test_with_a_ttl_a_chain_too_old_to_outlive_starts_again() -> None:
    ttl = 3600
    policy, bases, log = _policy(ttl=ttl), Values(1 << 24), _log(12)
    first = _first(policy, bases, log[:10])
    soon = _put(policy, {"log": log}, first.origins, bases, cid=CID2, now=NOW + 60)
    assert _delta.is_delta(_blob(soon, "log") or ("", b""))
    # Visible only while its chain's start is: that item expires first.
    assert soon.plan.commit["visible_until"] == {"N": str(int(NOW) + ttl)}
    late = _put(policy, {"log": log}, first.origins, bases, cid=CID2,
                now=NOW + _write.TTL_RECARRY_FRACTION * ttl + 60)
    assert not _delta.is_delta(_blob(late, "log") or ("", b""))


def test_a_value_after_empty_versions_is_a_delta_on_the_last_one_held() -> None:
    """A DeltaChannel stores nothing between snapshots: the next snapshot is a delta
    against the lineage's last value (which the empty versions' origins name, so that a
    retried put makes the same items), so it costs what changed since."""
    policy, bases, log = _policy(), Values(1 << 24), _log(12)
    first = _first(policy, bases, log[:10])
    cid3 = "1f000000-0000-6000-8000-000000000003"
    empty = _put(policy, {}, first.origins, bases, cid=CID2)
    empty.origins["log"] = Origin("v-empty", int(NOW * 1000), empty=True,
                                  seed=first.key[2],
                                  last=("log", first.origins["log"].version, first.key[2]))
    snap = _put(policy, {"log": log}, empty.origins, bases, cid=cid3)
    stored = _blob(snap, "log")
    assert stored is not None and _delta.is_delta(stored)
    assert _delta.parse(stored, "t").base_source == first.key[2]


def test_the_history_of_a_delta_channel_starts_at_its_seed() -> None:
    policy, bases = _policy(), Values(1 << 24)
    parent = {"log": Origin("v1", 0, empty=True, seed="1f000000-0000-6000-8000-00000000000a"),
              "other": Origin("v1", 0, empty=True, seed="1f000000-0000-6000-8000-000000000005")}
    md = {"source": "loop", "step": 3, "counters_since_delta_snapshot": {"log": [2, 2]}}
    written = _put(policy, {"x": "small"}, parent, bases, cid=CID2, md=md)
    assert written.plan.commit["hfrom"] == {"S": "1f000000-0000-6000-8000-00000000000a"}
    md["counters_since_delta_snapshot"] = {"log": [2, 2], "other": [1, 1]}
    written = _put(policy, {"x": "small"}, parent, bases, cid=CID2, md=md)
    assert written.plan.commit["hfrom"] == {"S": "1f000000-0000-6000-8000-000000000005"}
    # A channel the parent never had: its history starts at the namespace's first
    # checkpoint.
    md["counters_since_delta_snapshot"] = {"log": [2, 2], "new": [1, 1]}
    assert _put(policy, {"x": "small"}, parent, bases, cid=CID2,
                md=md).plan.commit["hfrom"] == {"S": _write.ROOT_SEED}
    # A seed the saver does not know (it read the parent, not its history): no hint, the
    # reader walks on its own.
    parent["log"] = parent["log"]._replace(seed=None)
    md["counters_since_delta_snapshot"] = {"log": [2, 2]}
    assert "hfrom" not in _put(policy, {"x": "small"}, parent, bases, cid=CID2,
                               md=md).plan.commit
