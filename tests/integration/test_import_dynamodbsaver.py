"""``import-dynamodbsaver``: threads written by langgraph-checkpoint-aws 1.2.6's real
``DynamoDBSaver`` (gzip on, S3 offload) on the session deployment's endpoint are copied
into the journal; the history reads the same, the interrupted thread resumes the same,
re-runs copy nothing, a crashed import finishes on a re-run, a conflicting checkpoint is
an error, and the command line does all of it with its summary.
"""

from __future__ import annotations

import operator
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import boto3
import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, StateSnapshot, interrupt
from langgraph_checkpoint_aws import DynamoDBSaver

from checkpoint_journal._core.serde import StrictSerializer
from checkpoint_journal.errors import ConflictError
from checkpoint_journal.local import LocalDeployment
from checkpoint_journal.migrate import ImportSummary, import_dynamodbsaver
from checkpoint_journal.saver import JournalSaver
from tests.integration import tables
from tests.integration.cli_runner import run_cli

# DynamoDBSaver offloads a payload of more than 350 KB to S3; random bytes do not shrink
# under its gzip, so every checkpoint holding them goes to S3.
BLOB_BYTES = 360 * 1024


class State(TypedDict, total=False):
    messages: Annotated[list[str], operator.add]
    audit: Annotated[list[str], operator.add]
    blob: bytes
    notes: Annotated[list[str], operator.add]


class SubState(TypedDict, total=False):
    notes: Annotated[list[str], operator.add]


def _sub_step(state: SubState) -> dict[str, Any]:
    return {"notes": [f"sub:{len(state.get('notes', []))}"]}


def _sub_ask(state: SubState) -> dict[str, Any]:
    answer = interrupt({"question": "ship it?"})
    return {"notes": [f"answer:{answer}"]}


def _reply(state: State) -> dict[str, Any]:
    # Over 1 KB and repetitive: DynamoDBSaver gzips this write.
    return {"messages": ["echo:" + state["messages"][-1] * 300]}


def _audit(state: State) -> dict[str, Any]:
    return {"audit": [f"seen {len(state['messages'])}"]}


def build(checkpointer: Any) -> Any:
    """reply and audit in parallel (two tasks' writes on one checkpoint), then a subgraph
    whose second node interrupts."""
    sub = StateGraph(SubState)
    sub.add_node("step", _sub_step)
    sub.add_node("ask", _sub_ask)
    sub.add_edge(START, "step")
    sub.add_edge("step", "ask")
    sub.add_edge("ask", END)
    g = StateGraph(State)
    g.add_node("reply", _reply)
    g.add_node("audit", _audit)
    g.add_node("sub", sub.compile())
    g.add_edge(START, "reply")
    g.add_edge(START, "audit")
    g.add_edge(["reply", "audit"], "sub")
    g.add_edge("sub", END)
    return g.compile(checkpointer=checkpointer)


@dataclass
class Ticket:
    """A type of the user's own: the strict serde rebuilds it only with --allow."""

    number: int


class TicketState(TypedDict):
    ticket: Ticket


def build_ticket(checkpointer: Any) -> Any:
    g = StateGraph(TicketState)
    g.add_node("bump", lambda s: {"ticket": Ticket(s["ticket"].number + 1)})
    g.add_edge(START, "bump")
    g.add_edge("bump", END)
    return g.compile(checkpointer=checkpointer)


@dataclass
class Source:
    """A DynamoDBSaver table and offload bucket on the deployment's endpoints."""

    dep: LocalDeployment
    table: str
    bucket: str
    saver: DynamoDBSaver
    session: boto3.session.Session
    """One session for every client of the test: a new one re-reads botocore's models."""

    def target(self, **kw: Any) -> JournalSaver:
        """A JournalSaver on the deployment's journal (a new process, as far as it knows)."""
        return self.dep.saver(boto3_session=self.session, **kw)

    def run(self, thread: str) -> dict[str, Any]:
        """Two turns up to the subgraph's interrupt; the config of the thread."""
        config = {"configurable": {"thread_id": thread}}
        graph = build(self.saver)
        graph.invoke({"messages": ["hello"], "blob": os.urandom(BLOB_BYTES)}, config)
        return config

    def items(self) -> list[dict[str, Any]]:
        """Every item of the source table (all pages: a Scan page stops at 1 MB)."""
        pages = self.dep.client("dynamodb").get_paginator("scan").paginate(TableName=self.table)
        return [item for page in pages for item in page["Items"]]

    def counts(self, thread: str) -> tuple[int, int]:
        """The thread's checkpoint and pending-write items in the source table."""
        items = self.items()
        return (sum(1 for i in items if i["PK"]["S"] == f"CHECKPOINT_{thread}"),
                sum(1 for i in items if i["PK"]["S"].startswith(f"WRITES_{thread}#")))

    def import_into(self, target: JournalSaver, threads: list[str]) -> ImportSummary:
        return import_dynamodbsaver(
            target, self.table, threads=threads, source_bucket=self.bucket,
            boto3_session=self.session, endpoint_url=self.dep.endpoint_url,
            s3_endpoint_url=self.dep.s3_endpoint_url)


@pytest.fixture
def source(deployment: LocalDeployment) -> Iterator[Source]:
    name = f"dynamodbsaver-{uuid.uuid4().hex[:10]}"
    ddb, s3 = deployment.client("dynamodb"), deployment.client("s3")
    tables.create_pk_sk_table(ddb, name)
    s3.create_bucket(Bucket=name)
    session = deployment.session()
    saver = DynamoDBSaver(
        name, session=session, endpoint_url=deployment.endpoint_url,
        enable_checkpoint_compression=True,
        s3_offload_config={"bucket_name": name, "endpoint_url": deployment.s3_endpoint_url})
    yield Source(deployment, name, name, saver, session)
    ddb.delete_table(TableName=name)
    for obj in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=obj["Key"])
    s3.delete_bucket(Bucket=name)


def _interrupts(items: Any) -> list[tuple[Any, str]]:
    return [(i.value, i.id) for i in items]


def _snapshot(s: Any) -> dict[str, Any]:
    """Everything a StateSnapshot shows."""
    return {
        "values": s.values, "next": s.next, "config": s.config, "metadata": s.metadata,
        "created_at": s.created_at, "parent_config": s.parent_config,
        "interrupts": _interrupts(s.interrupts),
        "tasks": [(t.id, t.name, t.path, repr(t.error), _interrupts(t.interrupts), t.result,
                   _snapshot(t.state) if isinstance(t.state, StateSnapshot) else t.state)
                  for t in s.tasks],
    }


def history(graph: Any, config: dict[str, Any]) -> list[dict[str, Any]]:
    return [_snapshot(s) for s in graph.get_state_history(config)]


def observed(graph: Any, config: dict[str, Any]) -> dict[str, Any]:
    """The history, and the current state with the subgraph's (waiting) state."""
    return {"history": history(graph, config),
            "now": _snapshot(graph.get_state(config, subgraphs=True))}


def _stored(dep: LocalDeployment, thread: str) -> list[int]:
    """The bytes of each journal item of a thread (binary attributes: its record or
    chunk)."""
    return [sum(len(v["B"]) for v in item.values() if "B" in v)
            for item in tables.partition(dep, thread) if item["SK"]["S"].startswith("J#")]


def test_history_identical_interrupt_resumes_and_rerun_copies_nothing(
        deployment: LocalDeployment, source: Source) -> None:
    thread = f"switch-{uuid.uuid4().hex[:8]}"
    config = source.run(thread)
    items = source.items()
    # What the brief promises to handle is really in the source.
    assert any(i.get("ref_loc", {}).get("S") == "S3" for i in items)
    assert any(i.get("compression", {}).get("S") == "gzip" for i in items)
    assert any(i["SK"]["S"].startswith("sub:") for i in items)
    old = build(source.saver)
    before = observed(old, config)
    assert before["now"]["interrupts"]

    # deltas=False: an unchanged value the import wrongly lists in new_versions would be
    # stored whole again (a delta against itself would hide it).
    with source.target(deltas=False) as target:
        first = source.import_into(target, [thread])
        checkpoints, writes = source.counts(thread)
        assert (first.threads, first.checkpoints_copied, first.writes_copied) == (
            1, checkpoints, writes)
        assert first.s3_objects_read >= 2 and first.skipped == ()

        new = build(target)
        assert observed(new, config) == before
        # Stored as deltas, as a live run stores them: the large value once per channel
        # that holds it, not again in every later checkpoint.
        live = {"configurable": {"thread_id": f"live-{thread}"}}
        new.invoke({"messages": ["hello"], "blob": os.urandom(BLOB_BYTES)}, live)
        imported, ran = _stored(deployment, thread), _stored(deployment, f"live-{thread}")
        assert sum(n >= BLOB_BYTES for n in imported) == sum(n >= BLOB_BYTES for n in ran)
        assert abs(sum(imported) - sum(ran)) < 0.02 * sum(ran)

        again = source.import_into(target, [thread])
        assert (again.checkpoints_copied, again.writes_copied) == (0, 0)
        assert (again.checkpoints_present, again.writes_present) == (checkpoints, writes)

        resumed_old = old.invoke(Command(resume="yes"), config)
        resumed_new = new.invoke(Command(resume="yes"), config)
        assert resumed_new == resumed_old
        assert "answer:yes" in resumed_new["notes"]
        assert [s["values"] for s in history(new, config)] == [
            s["values"] for s in history(old, config)]


class Crash(Exception):
    pass


@pytest.mark.parametrize("at", ["put", "put_writes"])
def test_crash_mid_import_then_rerun_ends_identical(
        deployment: LocalDeployment, source: Source, monkeypatch: pytest.MonkeyPatch,
        at: str) -> None:
    thread = f"crash-{uuid.uuid4().hex[:8]}"
    config = source.run(thread)
    with source.target() as target:
        landed = {"put": 0, "put_writes": 0, "writes": 0}
        real_put, real_put_writes = target.put, target.put_writes

        def put(*a: Any, **kw: Any) -> Any:
            if at == "put" and landed["put"] == 3:  # three checkpoints land, not the fourth
                raise Crash()
            landed["put"] += 1
            return real_put(*a, **kw)

        per_checkpoint: dict[str, int] = {}

        def put_writes(cfg: Any, writes: Any, *a: Any, **kw: Any) -> None:
            cid = cfg["configurable"]["checkpoint_id"]
            per_checkpoint[cid] = per_checkpoint.get(cid, 0) + 1
            # The parallel step's checkpoint has reply's and audit's writes: one is lost.
            if at == "put_writes" and per_checkpoint[cid] == 2:
                raise Crash()
            real_put_writes(cfg, writes, *a, **kw)
            landed["writes"] += len(writes)

        monkeypatch.setattr(target, "put", put)
        monkeypatch.setattr(target, "put_writes", put_writes)
        with pytest.raises(Crash):
            source.import_into(target, [thread])
        monkeypatch.undo()

        with source.target() as fresh:  # the re-run is another process
            rerun = source.import_into(fresh, [thread])
            assert rerun.checkpoints_present == landed["put"]
            assert rerun.writes_present == landed["writes"]
            if at == "put_writes":  # a checkpoint whose writes were only partly copied
                assert any(n == 2 for n in per_checkpoint.values())
            checkpoints, writes = source.counts(thread)
            assert rerun.checkpoints_copied == checkpoints - landed["put"]
            assert rerun.writes_copied == writes - landed["writes"]
            assert observed(build(fresh), config) == observed(build(source.saver), config)
            done = source.import_into(fresh, [thread])
            assert (done.checkpoints_copied, done.writes_copied) == (0, 0)


def test_conflicting_checkpoint_is_an_error_not_an_overwrite(
        deployment: LocalDeployment, source: Source) -> None:
    thread = f"conflict-{uuid.uuid4().hex[:8]}"
    config = source.run(thread)
    first = list(source.saver.list(config))[-1]  # the input checkpoint, no parent
    forged = {**first.checkpoint, "channel_values": {"__start__": {"messages": ["forged"]}}}
    cid = first.checkpoint["id"]
    with source.target() as target:
        target.put({"configurable": {"thread_id": thread, "checkpoint_ns": ""}}, forged,
                   first.metadata, dict(forged["channel_versions"]))
        with pytest.raises(ConflictError) as info:
            source.import_into(target, [thread])
        assert thread in str(info.value) and cid in str(info.value)
        kept = target.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": "",
                                                  "checkpoint_id": cid}})
        assert kept is not None
        assert kept.checkpoint["channel_values"]["__start__"] == {"messages": ["forged"]}
        assert len(list(target.list(config))) == 1  # nothing copied past the conflict


def test_cli_imports_with_summary_skips_what_dynamodbsaver_skips_and_needs_allow(
        deployment: LocalDeployment, source: Source, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    thread = f"cli-{uuid.uuid4().hex[:8]}"
    config = source.run(thread)
    # A DynamoDBSaver put that crashed between its item and its payload: the newest
    # checkpoint's S3 object is missing, and DynamoDBSaver shows the one before.
    items = source.items()
    newest = max((i for i in items if i["PK"]["S"] == f"CHECKPOINT_{thread}"
                  and i["ns"]["S"] == ""), key=lambda i: i["id"]["S"])
    assert newest["ref_loc"]["S"] == "S3"
    source.dep.client("s3").delete_object(Bucket=source.bucket, Key=newest["ref_key"]["S"])
    lost = sorted(f"PK={i['PK']['S']!r} SK={i['SK']['S']!r}" for i in [newest, *(
        i for i in items if i["PK"]["S"] == f"WRITES_{thread}##{newest['id']['S']}")])
    checkpoints, writes = source.counts(thread)
    base = ["import-dynamodbsaver", "--source-table", source.table,
            "--source-bucket", source.bucket]

    done = run_cli(deployment, monkeypatch, capsys, [*base, "--thread", thread, "--json"])
    assert done.code == 0, done.err
    doc = done.json()
    assert doc["threads"] == 1 and doc["checkpoints"]["copied"] == checkpoints - 1
    assert doc["writes"]["copied"] == writes - (len(lost) - 1)
    assert doc["s3_objects_read"] >= 2 and doc["skipped"] == lost
    with source.target() as target:
        assert observed(build(target), config) == observed(build(source.saver), config)

    again = run_cli(deployment, monkeypatch, capsys, [*base, "--thread", thread])
    assert again.code == 0, again.err
    assert f"checkpoints       0 copied, {checkpoints - 1} already there" in again.out
    assert all(f"      {key}" in again.out for key in lost)

    missing = run_cli(deployment, monkeypatch, capsys, [*base, "--thread", "no-such-thread"])
    assert missing.code == 3 and "no-such-thread" in missing.err

    ticket = f"ticket-{uuid.uuid4().hex[:8]}"
    build_ticket(source.saver).invoke({"ticket": Ticket(1)},
                                      {"configurable": {"thread_id": ticket}})
    name = f"{__name__}.Ticket"
    blocked = run_cli(deployment, monkeypatch, capsys, [*base, "--thread", ticket])
    assert blocked.code == 1 and f"--allow {name}" in blocked.err
    # Every thread of the table (a Scan): the ticket's is new, the other one is there.
    allowed = run_cli(deployment, monkeypatch, capsys, [*base, "--all", "--allow", name, "--json"])
    assert allowed.code == 0, allowed.err
    doc = allowed.json()
    assert doc["threads"] == 2
    assert doc["checkpoints"] == {"copied": source.counts(ticket)[0],
                                  "already_there": checkpoints - 1}
    with source.dep.saver(boto3_session=source.session,
                          serde=StrictSerializer([(__name__, "Ticket")])) as target:
        state = build_ticket(target).get_state({"configurable": {"thread_id": ticket}})
        assert state.values == {"ticket": Ticket(2)}
