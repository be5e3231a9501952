"""DeltaChannel support: ``get_delta_channel_history`` (LangGraph's DELTA_CHANNEL_HISTORY
contract, each case written here against both backends), its request budget, a real
graph compared with InMemorySaver, and the maintenance operations keeping what a delta
chain needs (prune keep_latest, delete_for_runs, copy_thread)."""

from __future__ import annotations

import base64
import operator
import random
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import Checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.graph import END, START, StateGraph

from checkpoint_journal import JournalSaver, errors
from checkpoint_journal._core import keys as _keys
from checkpoint_journal.local import LocalDeployment
from tests.integration.tables import partition


def _cfg(thread: str, cid: str | None = None, ns: str = "") -> dict[str, Any]:
    c: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if cid:
        c["checkpoint_id"] = cid
    return {"configurable": c}


def _put(saver: JournalSaver, thread: str, parent: dict[str, Any] | None,
         values: dict[str, Any], versions: dict[str, int], step: int,
         new: dict[str, int] | None = None, **md: Any) -> dict[str, Any]:
    cp = Checkpoint(v=1, id=str(uuid6(clock_seq=-1)), ts="", channel_values=values,
                    channel_versions=versions, versions_seen={}, updated_channels=None)
    config = _cfg(thread, parent["configurable"]["checkpoint_id"] if parent else None)
    return saver.put(config, cp, {"source": "loop", "step": step, **md},
                     dict(versions if new is None else new))


def chain(saver: JournalSaver, thread: str, *, snapshots: Sequence[int], steps: int,
          channel: str = "ch", value: Callable[[int], Any] = lambda s: s,
          langgraph: bool = False) -> list[dict[str, Any]]:
    """One checkpoint per step (oldest first): a ``_DeltaSnapshot`` of ``value(step)``
    stored at the ``snapshots`` steps, a pending write of ``value(step)`` at the others.
    With ``langgraph``, as LangGraph writes them: the channel's version carried by every
    checkpoint after its first snapshot, and the channel named in the metadata's
    ``counters_since_delta_snapshot``."""
    out: list[dict[str, Any]] = []
    version: dict[str, int] = {}
    for step in range(steps):
        snap = step in snapshots
        stored = {channel: _DeltaSnapshot(value(step))} if snap else {}
        if snap or not langgraph:
            version = {channel: step + 1} if snap else {}
        md = {"counters_since_delta_snapshot": {channel: [1, 1]}} if langgraph else {}
        out.append(_put(saver, thread, out[-1] if out else None, stored, version, step,
                        new={channel: step + 1} if snap else {}, **md))
        if not snap:
            saver.put_writes(out[-1], [(channel, value(step))], str(uuid.uuid4()))
    return out


def _values(entry: Any) -> list[Any]:
    return [w[2] for w in entry["writes"]]


@pytest.fixture(scope="module")
def saver(deployment: LocalDeployment) -> Iterator[JournalSaver]:
    with deployment.saver() as s:
        yield s


def _thread() -> str:
    return f"delta-{uuid.uuid4()}"


# -- the contract ------------------------------------------------------------------------


def test_writes_come_oldest_first_down_to_the_nearest_snapshot(saver: JournalSaver) -> None:
    t = _thread()
    head = chain(saver, t, snapshots=[0], steps=5)[-1]
    got = saver.get_delta_channel_history(config=head, channels=["ch"])
    assert _values(got["ch"]) == [1, 2, 3]  # the head's parent (step 3) back to step 0
    assert got["ch"]["seed"] == _DeltaSnapshot(0)
    assert all(w[1] == "ch" for w in got["ch"]["writes"])

    t2 = _thread()
    head2 = chain(saver, t2, snapshots=[0, 3], steps=6)[-1]
    got2 = saver.get_delta_channel_history(config=head2, channels=["ch"])
    assert got2["ch"]["seed"] == _DeltaSnapshot(3)  # the nearest one, not step 0's
    assert _values(got2["ch"]) == [4]


async def test_async_twin_and_the_latest_checkpoint_without_an_id(saver: JournalSaver) -> None:
    t = _thread()
    head = chain(saver, t, snapshots=[0], steps=4)[-1]
    by_id = await saver.aget_delta_channel_history(config=head, channels=["ch"])
    latest = await saver.aget_delta_channel_history(config=_cfg(t), channels=["ch"])
    assert by_id == latest and _values(latest["ch"]) == [1, 2]


def test_the_targets_own_writes_are_left_out(saver: JournalSaver) -> None:
    t = _thread()
    head = chain(saver, t, snapshots=[0], steps=3)[-1]
    saver.put_writes(head, [("ch", "pending")], str(uuid.uuid4()))
    got = saver.get_delta_channel_history(config=head, channels=["ch"])
    assert _values(got["ch"]) == [1]


def test_each_channel_ends_at_its_own_snapshot(saver: JournalSaver) -> None:
    t = _thread()
    configs: list[dict[str, Any]] = []
    for step in range(5):
        values: dict[str, Any] = {}
        versions: dict[str, int] = {}
        if step == 1:
            values["a"], versions["a"] = _DeltaSnapshot("snap_a"), 2
        if step == 3:
            values["b"], versions["b"] = _DeltaSnapshot("snap_b"), 4
        configs.append(_put(saver, t, configs[-1] if configs else None, values, versions, step))
        saver.put_writes(configs[-1], [("a", step), ("b", step)], str(uuid.uuid4()))
    got = saver.get_delta_channel_history(config=configs[-1], channels=["a", "b"])
    assert _values(got["a"]) == [1, 2, 3] and got["a"]["seed"] == _DeltaSnapshot("snap_a")
    assert _values(got["b"]) == [3] and got["b"]["seed"] == _DeltaSnapshot("snap_b")
    assert saver.get_delta_channel_keepset(config=configs[-1], channels=["a", "b"]) == {
        c["configurable"]["checkpoint_id"] for c in configs[1:]}


def test_no_channels_no_target_and_no_seed(saver: JournalSaver) -> None:
    t = _thread()
    head = chain(saver, t, snapshots=[], steps=4)[-1]
    assert saver.get_delta_channel_history(config=head, channels=[]) == {}
    got = saver.get_delta_channel_history(config=head, channels=["ch", "other"])
    assert got == {"ch": {"writes": got["ch"]["writes"]}, "other": {"writes": []}}
    assert _values(got["ch"]) == [0, 1, 2]  # to the root: no seed
    missing = _cfg(t, str(uuid6(clock_seq=-1)))
    assert saver.get_delta_channel_history(config=missing, channels=["ch"]) == {
        "ch": {"writes": []}}
    assert saver.get_delta_channel_history(config=_cfg(_thread()), channels=["ch"]) == {
        "ch": {"writes": []}}
    assert saver.get_delta_channel_keepset(config=missing, channels=["ch"]) == set()


def test_a_plain_value_is_a_seed_and_its_checkpoints_writes_are_replayed(
    saver: JournalSaver,
) -> None:
    """A stored value is the state entering its checkpoint: the writes stored with it made
    its child, so they are replayed; writes older than it are not."""
    t = _thread()
    configs: list[dict[str, Any]] = []
    labels = {0: "older-than-seed", 1: "at-seed", 2: "after-seed", 3: "pending-at-head"}
    stored = {0: [10], 1: [10, 20]}
    for step in range(4):
        values = {"ch": stored[step]} if step in stored else {}
        versions = {"ch": step + 1} if step in stored else {}
        configs.append(_put(saver, t, configs[-1] if configs else None, values, versions, step))
        saver.put_writes(configs[-1], [("ch", labels[step])], str(uuid.uuid4()))
    got = saver.get_delta_channel_history(config=configs[-1], channels=["ch"])
    assert got["ch"]["seed"] == [10, 20]
    assert _values(got["ch"]) == ["at-seed", "after-seed"]


def test_parallel_writes_replay_in_task_path_order_pathless_first(saver: JournalSaver) -> None:
    t = _thread()
    configs = chain(saver, t, snapshots=[0], steps=3)
    first_id, last_id = "0" * 8 + "-0000-0000-0000-" + "0" * 12, "f" * 8 + "-ffff-ffff-ffff-" + "f" * 12
    saver.put_writes(configs[1], [("ch", "second")], first_id, "~pull, 02")
    saver.put_writes(configs[1], [("ch", "first")], last_id, "~pull, 01")
    saver.put_writes(configs[1], [("ch", "input")], last_id + "x")  # no task_path
    got = saver.get_delta_channel_history(config=configs[2], channels=["ch"])
    assert _values(got["ch"]) == [1, "input", "first", "second"]


def test_a_fork_reads_only_its_own_ancestors(saver: JournalSaver) -> None:
    t = _thread()
    configs = chain(saver, t, snapshots=[0], steps=3)
    # A branch from step 1, written after the main line: its writes must not leak in.
    branch = _put(saver, t, configs[1], {}, {}, 2)
    saver.put_writes(branch, [("ch", "branch")], str(uuid.uuid4()))
    tip = _put(saver, t, branch, {}, {}, 3)
    main = saver.get_delta_channel_history(config=configs[2], channels=["ch"])
    forked = saver.get_delta_channel_history(config=tip, channels=["ch"])
    assert _values(main["ch"]) == [1]
    assert _values(forked["ch"]) == [1, "branch"]


def test_keepset_is_the_target_and_its_chain_to_the_snapshot(saver: JournalSaver) -> None:
    t = _thread()
    configs = chain(saver, t, snapshots=[0, 3], steps=5)
    ids = [c["configurable"]["checkpoint_id"] for c in configs]
    assert saver.get_delta_channel_keepset(config=configs[3], channels=["ch"]) == {ids[3]}
    assert saver.get_delta_channel_keepset(config=configs[2], channels=["ch"]) == set(ids[:3])
    assert saver.get_delta_channel_keepset(config=configs[4], channels=[]) == {ids[4]}


def test_reconstruction_round_trips_snapshots(saver: JournalSaver) -> None:
    t = _thread()
    head = chain(saver, t, snapshots=[0, 3], steps=6, value=lambda s: [s])[-1]
    got = saver.get_delta_channel_history(config=head, channels=["ch"])
    seed = got["ch"]["seed"]
    assert isinstance(seed, _DeltaSnapshot)
    assert list(seed.value) + [v for w in got["ch"]["writes"] for v in w[2]] == [3, 4]


# -- what a read costs -------------------------------------------------------------------


class Requests:
    """DynamoDB requests made through one session, by operation."""

    def __init__(self, dep: LocalDeployment) -> None:
        self.session = dep.session()
        self.calls: list[str] = []
        self.threads: list[str] = []
        self.bytes = 0
        self.session.events.register("before-call.dynamodb.*", self._count)
        self.session.events.register("before-call.s3.*", self._count)
        self.session.events.register("after-call.dynamodb.*", self._size)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)
        self.threads.append(threading.current_thread().name)

    def _size(self, http_response: Any, **_: Any) -> None:
        self.bytes += len(http_response.content)


def test_a_30_checkpoint_chain_is_read_down_to_its_snapshot(deployment: LocalDeployment) -> None:
    """Events that do not say where their history starts (no ``hfrom``: the saver did not
    know their channels were DeltaChannels): the target's items, then the rest below."""
    requests = Requests(deployment)
    t = _thread()
    with deployment.saver(boto3_session=requests.session) as saver:
        configs = chain(saver, t, snapshots=[0], steps=31)
        requests.calls.clear()
        got = saver.get_delta_channel_history(config=configs[-1], channels=["ch"])
        assert _values(got["ch"]) == list(range(1, 30))
        # The target's items, with the namespace's tombstone alongside, then one page.
        assert sorted(requests.calls) == ["GetItem", "Query", "Query"]
        requests.calls.clear()
        latest = saver.get_delta_channel_history(config=_cfg(t), channels=["ch"])
        assert latest == got and requests.calls == ["Query"]
        # Projected (views read along, each holding every channel): the same reads.
        deployment.drain()
        requests.calls.clear()
        assert saver.get_delta_channel_history(config=configs[-1], channels=["ch"]) == got
        assert requests.calls.count("Query") == 2


def test_a_graphs_history_is_one_query_for_its_writer_and_for_another_worker(
    deployment: LocalDeployment,
) -> None:
    """LangGraph's flow (get_tuple, then the history of the checkpoint it returned): the
    event says where the history starts, so the range is read exactly, once; the saver
    that wrote it lists the range's keys, sent by get_tuple alongside its own Query (from
    the saver's pool: one round trip for the pair), and takes the items from memory."""
    requests = Requests(deployment)
    t = _thread()
    config = {"configurable": {"thread_id": t}}
    reference = _turns(_graph(InMemorySaver()), t, range(7))[-1]
    with deployment.saver(boto3_session=requests.session) as writer:
        graph = _graph(writer)
        _turns(graph, t, range(7))
        deployment.drain()
        requests.calls.clear()
        assert graph.get_state(config).values == reference
        assert requests.calls == ["Query", "Query"]  # get_tuple, the history's keys
        # The pair as LangGraph calls it: the keys Query is get_tuple's, from the pool.
        requests.calls.clear()
        requests.threads.clear()
        latest = writer.get_tuple(config)
        assert latest is not None
        mine = writer.get_delta_channel_history(config=latest.config, channels=["messages"])
        assert requests.calls == ["Query", "Query"] and mine["messages"]["writes"]
        assert sorted(t.startswith("cj-io") for t in requests.threads) == [False, True]
    with deployment.saver(boto3_session=requests.session) as other:
        requests.calls.clear()
        requests.threads.clear()
        assert _graph(other).get_state(config).values == reference
        assert requests.calls == ["Query", "Query"]  # get_tuple, the history's range
        assert not any(t.startswith("cj-io") for t in requests.threads)  # nothing ahead
        assert other.get_delta_channel_history(
            config=latest.config, channels=["messages"]) == mine
    # At a snapshot step the channel's value is stored: LangGraph reads no history, and
    # the saver that wrote it lists nothing ahead.
    with deployment.saver(boto3_session=requests.session) as writer:
        graph = _graph(writer)
        for turn in range(7, 14):
            graph.invoke({"messages": [f"m{turn}"]}, config)
            head = writer.get_tuple(config)
            assert head is not None
            if "messages" in head.checkpoint["channel_values"]:
                break
        else:
            raise AssertionError("no snapshot step in 7 turns (snapshot_frequency=5)")
        requests.calls.clear()
        graph.get_state(config)
        assert requests.calls == ["Query"]


def _incompressible(step: int) -> str:
    return base64.b64encode(random.Random(step).randbytes(24_000)).decode()


def test_reading_stops_at_the_snapshot(deployment: LocalDeployment) -> None:
    """A history near the head of a long thread reads down to its snapshot, not the whole
    namespace: the events say where it starts (LangGraph names its DeltaChannels in the
    metadata), and another worker reads that range alone."""
    t = _thread()
    with deployment.saver() as saver:
        configs = chain(saver, t, snapshots=[0, 47], steps=50, value=_incompressible,
                        langgraph=True)
    requests = Requests(deployment)
    with deployment.saver(boto3_session=requests.session) as other:
        got = other.get_delta_channel_history(config=configs[-1], channels=["ch"])
    assert [len(w[2]) for w in got["ch"]["writes"]] == [32_000]
    # The target's items (its tombstone alongside) reach the snapshot already.
    assert sorted(requests.calls) == ["GetItem", "Query"]
    whole = sum(len(i["body"]["B"]) for i in partition(deployment, t) if "body" in i)
    # Three checkpoints of fifty (the snapshot and the two after it), base64 in JSON: well
    # under a quarter of the namespace's bytes.
    assert requests.bytes < whole / 4, (requests.bytes, whole)


# -- a real graph ------------------------------------------------------------------------


def _concat(state: list[str], writes: Sequence[list[str]]) -> list[str]:
    return state + [m for batch in writes for m in batch]


class Chat(TypedDict, total=False):
    messages: Annotated[list[str], DeltaChannel(_concat, snapshot_frequency=5)]
    log: Annotated[list[str], operator.add]


def _reply(state: Chat) -> dict[str, Any]:
    return {"messages": [f"echo:{state['messages'][-1]}"], "log": ["r"]}


def _count(state: Chat) -> dict[str, Any]:
    return {"messages": [f"n={len(state['messages'])}"]}


def _graph(cp: Any) -> Any:
    g = StateGraph(Chat)
    g.add_node("reply", _reply)
    g.add_node("count", _count)
    g.add_edge(START, "reply")
    g.add_edge("reply", "count")
    g.add_edge("count", END)
    return g.compile(checkpointer=cp)


def _turns(graph: Any, thread: str, turns: range) -> list[Any]:
    config = {"configurable": {"thread_id": thread}}
    out = [graph.invoke({"messages": [f"m{i}"]}, config) for i in turns]
    out.append(graph.get_state(config).values)
    return out


def test_a_graph_with_a_delta_channel_matches_in_memory_saver(saver: JournalSaver) -> None:
    t = _thread()
    ours = _turns(_graph(saver), t, range(5))
    reference = InMemorySaver()
    assert ours == _turns(_graph(reference), t, range(5))
    assert len(ours[-1]["messages"]) == 15
    # Every checkpoint of the history rebuilds to the reference's state.
    config = {"configurable": {"thread_id": t}}
    assert [s.values for s in _graph(saver).get_state_history(config)] == [
        s.values for s in _graph(reference).get_state_history(config)]


def test_prune_keep_latest_keeps_the_delta_chain(saver: JournalSaver) -> None:
    t = _thread()
    graph = _graph(saver)
    reference = _graph(InMemorySaver())
    _turns(graph, t, range(4))
    _turns(reference, t, range(4))
    config = {"configurable": {"thread_id": t}}
    before = graph.get_state(config).values
    total = len(list(saver.list(config)))
    saver.prune([t], strategy="keep_latest")
    kept = list(saver.list(config))
    assert 1 < len(kept) < total  # the latest, back to the latest snapshot, no further
    assert graph.get_state(config).values == before
    # And the thread goes on exactly as the unpruned reference does.
    assert _turns(graph, t, range(4, 6)) == _turns(reference, t, range(4, 6))


def test_prune_keep_latest_keeps_only_the_latest_without_delta_channels(
    saver: JournalSaver,
) -> None:
    t = _thread()
    configs = [_put(saver, t, None, {"x": 1}, {"x": 1}, 0)]
    for step in range(1, 4):
        configs.append(_put(saver, t, configs[-1], {"x": step + 1}, {"x": step + 1}, step))
    saver.prune([t], strategy="keep_latest")
    assert [c.config for c in saver.list(_cfg(t))] == [configs[-1]]


def test_delete_for_runs_spares_what_a_later_checkpoint_replays(saver: JournalSaver) -> None:
    t = _thread()
    graph = _graph(saver)
    config: dict[str, Any] = {"configurable": {"thread_id": t}}
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    # LangGraph records a run's id in the checkpoint metadata from config["metadata"].
    graph.invoke({"messages": ["a"]}, {**config, "metadata": {"run_id": first}})
    graph.invoke({"messages": ["b"]}, {**config, "metadata": {"run_id": second}})
    before = graph.get_state(config).values
    runs = [c.metadata.get("run_id") for c in saver.list(config)]
    assert runs.count(first) > 0 and runs.count(second) > 0
    saver.delete_for_runs([first])
    assert graph.get_state(config).values == before
    # The newest run's checkpoints go whole: nothing later replays them.
    saver.delete_for_runs([second])
    assert all(c.metadata.get("run_id") != second for c in saver.list(config))
    assert [c.metadata.get("run_id") for c in saver.list(config)] != runs


def test_copy_thread_copies_the_chain(saver: JournalSaver) -> None:
    t, copy = _thread(), _thread()
    configs = chain(saver, t, snapshots=[0], steps=5)
    saver.copy_thread(t, copy)
    target = _cfg(copy, configs[-1]["configurable"]["checkpoint_id"])
    assert saver.get_delta_channel_history(config=target, channels=["ch"]) == (
        saver.get_delta_channel_history(config=configs[-1], channels=["ch"]))


# -- never a shorter history -------------------------------------------------------------


def test_an_ancestor_deleted_outside_the_journal_is_damage(
    deployment: LocalDeployment, saver: JournalSaver,
) -> None:
    t = _thread()
    configs = chain(saver, t, snapshots=[0], steps=5)
    gone = configs[2]["configurable"]["checkpoint_id"]
    deployment.client("dynamodb").delete_item(
        TableName=deployment.table_name,
        Key={"PK": {"S": _keys.thread_pk(t)}, "SK": {"S": _keys.checkpoint_sk("", gone)}})
    with pytest.raises(errors.CorruptRecordError, match=gone):
        saver.get_delta_channel_history(config=configs[-1], channels=["ch"])


def test_an_ancestor_removed_by_prune_is_named_not_skipped(saver: JournalSaver) -> None:
    """Writes with no snapshot and no LangGraph counters do not say they are a
    DeltaChannel's, so prune keeps the latest checkpoint alone: its history then raises,
    naming the removal, rather than reading short."""
    t = _thread()
    configs = chain(saver, t, snapshots=[], steps=4)
    saver.prune([t], strategy="keep_latest")
    assert [c.config for c in saver.list(_cfg(t))] == [configs[-1]]
    parent = configs[-2]["configurable"]["checkpoint_id"]
    with pytest.raises(errors.JournalError, match=f"{parent} was removed by prune"):
        saver.get_delta_channel_history(config=configs[-1], channels=["ch"])
