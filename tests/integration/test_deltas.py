"""Saver-side deltas (issue 12): a growing channel costs what changed per step, and every
read returns exactly the state InMemorySaver holds, whoever reads it (the writer, or a
worker that never saw the thread), with the projector lagging, caught up or absent."""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from checkpoint_journal import errors, schemas
from checkpoint_journal._core import delta as _delta
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import JournalRef, decode_view, fold_partition
from checkpoint_journal._core.seal import sealed
from checkpoint_journal.local import LocalDeployment
from tests.integration.cli_runner import run_cli
from tests.integration.tables import partition

TURNS = 14


def _append(a: list[str], b: list[str]) -> list[str]:
    return a + b


class Chat(TypedDict, total=False):
    log: Annotated[list[str], _append]
    turn: int


def _words(n: int, seed: int) -> str:
    rnd = random.Random(seed)
    return " ".join(f"w{rnd.randrange(50_000)}" for _ in range(n))


def _tool(state: Chat) -> dict[str, Any]:
    t = state.get("turn", 0)
    return {"log": [f"tool {t}: " + _words(250, t)]}  # ~1.7 KB per turn


def _answer(state: Chat) -> dict[str, Any]:
    t = state.get("turn", 0)
    return {"log": [f"answer {t}: " + _words(150, 10_000 + t)], "turn": t + 1}


def _graph(saver: Any) -> Any:
    g = StateGraph(Chat)
    g.add_node("tool", _tool)
    g.add_node("answer", _answer)
    g.add_edge(START, "tool")
    g.add_edge("tool", "answer")
    g.add_edge("answer", END)
    return g.compile(checkpointer=saver)


def _run(saver: Any, thread: str, turns: int, after_turn: Callable[[], None] = lambda: None,
         ) -> Any:
    graph = _graph(saver)
    cfg = {"configurable": {"thread_id": thread}}
    for i in range(turns):
        graph.invoke({"log": [f"user {i}: " + _words(30, 20_000 + i)]}, cfg)
        after_turn()
    return graph


def _observed(graph: Any, thread: str) -> tuple[Any, list[Any]]:
    cfg = {"configurable": {"thread_id": thread}}
    history = [(s.values, s.next, s.metadata.get("step")) for s in graph.get_state_history(cfg)]
    return graph.get_state(cfg).values, history


def _event_bytes(dep: LocalDeployment, thread: str) -> tuple[int, int]:
    """(bytes of the checkpoint events' records, how many channel values are deltas)."""
    items = partition(dep, thread)
    size = sum(len(i["body"]["B"]) for i in items
               if i.get("kind", {}).get("S") == _keys.KIND_CHECKPOINT and "body" in i)
    size += sum(len(i["body"]["B"]) for i in items
                if i.get("kind", {}).get("S") == _keys.KIND_CHUNK)
    fold = fold_partition(items, now_s=0)
    deltas = sum(1 for ns in fold.namespaces.values() for v in ns.journal.values()
                 if v is not None and _delta.is_delta(v))
    return size, deltas


@pytest.fixture(scope="module")
def expected() -> tuple[Any, list[Any]]:
    return _observed(_run(InMemorySaver(), "t", TURNS), "t")


def test_a_long_chat_stores_what_changed_and_reads_back_exactly(
    deployment: LocalDeployment, expected: tuple[Any, list[Any]]
) -> None:
    plain, chained = f"plain-{uuid.uuid4()}", f"deltas-{uuid.uuid4()}"
    with deployment.saver(deltas=False) as saver:
        _run(saver, plain, TURNS)
    with deployment.saver() as saver:
        graph = _run(saver, chained, TURNS)
        # The writer itself, the projector lagging behind (not drained yet).
        assert _observed(graph, chained) == expected
    whole, none = _event_bytes(deployment, plain)
    stored, deltas = _event_bytes(deployment, chained)
    assert none == 0 and deltas > TURNS
    # Stored whole, the log costs the conversation so far at every step (quadratic);
    # as deltas, about what each step added.
    assert stored < whole / 3, (stored, whole)
    deployment.drain(timeout=60)
    for reader in (deployment.saver(), deployment.saver(value_cache_bytes=0)):
        with reader:  # workers that never saw the thread: views point into the journal
            assert _observed(_graph(reader), chained) == expected


def test_without_the_projector_reads_replay_the_journal(
    expected: tuple[Any, list[Any]],
) -> None:
    with LocalDeployment(backend="dynamodb-local", handlers=False) as dep:
        with dep.saver() as saver:
            assert _observed(_run(saver, "t", TURNS), "t") == expected
        with dep.saver() as other:
            assert _observed(_graph(other), "t") == expected
            # One more turn by a worker that only read the thread: it continues the
            # chain from what it read, and a third worker reads the same.
            _graph(other).invoke({"log": ["more"]}, {"configurable": {"thread_id": "t"}})
            after = _graph(other).get_state({"configurable": {"thread_id": "t"}}).values
        with dep.saver() as third:
            assert _graph(third).get_state({"configurable": {"thread_id": "t"}}).values == after
        assert after["log"][-1] == "answer 14: " + _words(150, 10_014)


def test_prune_and_delete_for_runs_keep_every_remaining_value_exact(
    ddb_local_deployment: LocalDeployment, expected: tuple[Any, list[Any]]
) -> None:
    dep = ddb_local_deployment
    thread, runs = f"prune-{uuid.uuid4()}", f"runs-{uuid.uuid4()}"
    with dep.saver() as saver:
        _run(saver, thread, TURNS)
        graph = _graph(saver)
        cfg = {"configurable": {"thread_id": runs}}
        run_ids = []
        for i in range(6):
            run_id = str(uuid.uuid4())
            run_ids.append(run_id)
            graph.invoke({"log": [f"user {i}: " + _words(30, 20_000 + i)]},
                         {**cfg, "metadata": {"run_id": run_id}})
        before = {s.config["configurable"]["checkpoint_id"]: s.values
                  for s in graph.get_state_history(cfg)}
        saver.prune([thread])
        dep.drain(timeout=60)  # delete_for_runs finds runs through the projector's index
        saver.delete_for_runs(run_ids[1:3])  # the middle of every chain
    dep.drain(timeout=60)
    with dep.saver() as fresh:
        assert _graph(fresh).get_state({"configurable": {"thread_id": thread}}).values == (
            expected[0])
        after = {s.config["configurable"]["checkpoint_id"]: s.values
                 for s in _graph(fresh).get_state_history(cfg)}
    assert after and set(after) < set(before)
    assert all(after[c] == before[c] for c in after)


def test_a_delta_whose_base_is_gone_is_an_error_not_other_data(
    ddb_local_deployment: LocalDeployment,
) -> None:
    dep = ddb_local_deployment
    thread = f"torn-{uuid.uuid4()}"
    with dep.saver() as saver:
        _run(saver, thread, 6)
    dep.drain(timeout=60)
    items = partition(dep, thread)
    fold = fold_partition(items, now_s=0)
    ns = fold.namespaces[""]
    latest = ns.checkpoints[max(ns.checkpoints)]
    version = latest.channel_versions["log"]
    source = ns.resolve(latest, {"log": version}, raw=True)["log"].source
    links = []  # the latest value's chain, newest first
    while _delta.is_delta(stored := ns.journal[("log", version, source)] or ("", b"")):
        d = _delta.parse(stored, "test")
        links.append(source)
        version, source = d.base_version, d.base_source
    assert len(links) >= 3, links
    victim = links[len(links) // 2]  # a link in the middle of the chain, every item of it
    ddb = dep.client("dynamodb")
    for i in items:
        if _keys.owner(i["SK"]["S"]) == ("", victim):
            ddb.delete_item(TableName=dep.table_name, Key={"PK": i["PK"], "SK": i["SK"]})
    with dep.saver() as fresh, pytest.raises(errors.CorruptRecordError, match="outside"):
        _graph(fresh).get_state({"configurable": {"thread_id": thread}})


def test_a_saver_with_deltas_off_reads_a_thread_written_with_them(
    moto_deployment: LocalDeployment, expected: tuple[Any, list[Any]],
) -> None:
    thread = f"mixed-{uuid.uuid4()}"
    with moto_deployment.saver() as saver:
        _run(saver, thread, TURNS)
    with moto_deployment.saver(deltas=False) as plain:
        assert _observed(_graph(plain), thread) == expected


def test_verify_checks_a_thread_of_deltas_and_names_a_damaged_one(
    ddb_local_deployment: LocalDeployment, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dep = ddb_local_deployment
    thread = f"verify-{uuid.uuid4()}"
    with dep.saver() as saver:
        _run(saver, thread, 6)
    dep.drain(timeout=60)
    ok = run_cli(dep, monkeypatch, capsys, ["verify", "--thread", thread, "--json"])
    assert ok.code == 0, ok.out + ok.err
    doc = ok.json()
    assert doc["ok"] and doc["checked"]["views (table)"] == doc["checked"][
        "checkpoint events (table)"]
    # A delta's frame altered, its item's seal recomputed (a forger who knows the
    # format): the digest the delta carries no longer matches what it rebuilds.
    items = partition(dep, thread)
    fold = fold_partition(items, now_s=0)
    key = next(k for k, v in sorted(fold.namespaces[""].journal.items())
               if v is not None and _delta.is_delta(v))
    victim = next(i for i in items if i["SK"]["S"] == _keys.checkpoint_sk("", key[2]))
    rec = schemas.decode(schemas.RECORD_CHECKPOINT, victim["body"]["B"], victim["fp"]["S"],
                         victim["codec"]["S"])
    for blob in rec["blobs"]:
        if blob["channel"] == key[0]:
            data = blob["value"]["data"]
            blob["value"]["data"] = data[:-8] + bytes(b ^ 0xFF for b in data[-8:])
    enc = schemas.encode(schemas.RECORD_CHECKPOINT, rec, compress=False)
    forged = sealed({**{k: v for k, v in victim.items() if k != "seal"},
                     "body": {"B": enc.body}, "fp": {"S": enc.fingerprint},
                     "codec": {"S": enc.codec}})
    dep.client("dynamodb").put_item(TableName=dep.table_name, Item=forged)
    bad = run_cli(dep, monkeypatch, capsys, ["verify", "--thread", thread, "--json"])
    assert bad.code != 0
    assert key[2] in bad.out
    with dep.saver() as fresh, pytest.raises(errors.CorruptRecordError):
        list(fresh.list({"configurable": {"thread_id": thread, "checkpoint_ns": ""}}))


def test_a_put_retried_by_a_new_process_makes_the_same_delta(
    ddb_local_deployment: LocalDeployment,
) -> None:
    """The first attempt landed, stored as a delta, but its caller never learned it: the
    same put from a process that holds none of the thread's values is accepted and
    changes nothing (it reads the parent, as the first attempt's process had it)."""
    dep = ddb_local_deployment
    thread = f"retry-{uuid.uuid4()}"
    calls: list[Any] = []
    with dep.saver() as saver:
        put = saver.put

        def spy(*args: Any) -> Any:
            calls.append(copy.deepcopy(args))
            return put(*args)

        saver.put = spy  # type: ignore[method-assign]
        _run(saver, thread, 4)
        stored = put(*calls[-1])  # the same saver again: the same items
    # The projector writes views and the head on its own time: compare once it is done.
    dep.drain(timeout=60)
    before = partition(dep, thread)
    last = fold_partition(before, now_s=0).namespaces[""]
    assert any(v is not None and _delta.is_delta(v) and k[2] == stored["configurable"][
        "checkpoint_id"] for k, v in last.journal.items())
    with dep.saver() as restarted:
        assert restarted.put(*calls[-1]) == stored
    dep.drain(timeout=60)
    assert partition(dep, thread) == before


def _writes(tup: Any) -> list[tuple[str, Any]]:
    return sorted((w[1], w[2]) for w in tup.pending_writes)


def test_a_view_that_points_into_the_journal_holds_no_copy_of_the_pending_writes(
    deployment: LocalDeployment,
) -> None:
    """Such a view is never read alone (its delta needs the journal items beside it,
    which hold the writes too), so the projector leaves the writes out; every read of
    those checkpoints still returns their pending writes exactly: by thread, by id and
    across threads (the metadata index), by a worker that holds no value."""
    thread, tag = f"writes-{uuid.uuid4()}", str(uuid.uuid4())
    memory = InMemorySaver()
    with deployment.saver() as writer:
        for saver, t in ((memory, "m"), (writer, thread)):
            graph = _graph(saver)
            for i in range(5):
                graph.invoke({"log": [f"user {i}: " + _words(30, 20_000 + i)]},
                             {"configurable": {"thread_id": t}, "metadata": {"tag": tag}})
    deployment.drain(timeout=60)
    views = [decode_view(i) for i in partition(deployment, thread)
             if i.get("kind", {}).get("S") == _keys.KIND_VIEW]
    bound = [v for v in views if any(isinstance(x, JournalRef) for _, x, _ in v.channels.values())]
    assert bound and all(v.writes == [] for v in bound)
    assert sum(1 for v in bound if v.writes_folded) >= len(bound) // 2  # most have writes
    want = [_writes(t) for t in memory.list({"configurable": {"thread_id": "m"}})]
    assert sum(1 for w in want if w) >= len(want) // 2
    for reader in (deployment.saver(), deployment.saver(value_cache_bytes=0)):
        with reader:
            listed = list(reader.list({"configurable": {"thread_id": thread}}))
            assert [_writes(t) for t in listed] == want
            assert [_writes(reader.get_tuple(t.config)) for t in listed] == want
            across = list(reader.list(None, filter={"tag": tag}))
            assert [_writes(t) for t in across] == want
