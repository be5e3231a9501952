"""A customer-support agent on the embedded local deployment: no LLM, no network.

    checkpoint-journal demo                  # moto backend
    checkpoint-journal demo --backend dynamodb-local

The agent (``demo_agent``) is a LangGraph graph of plain, deterministic Python nodes
(keyword classification, an in-code order table, a fake payment gateway). The demo walks through
what a checkpointer is for, on one thread, and prints a short narrative:

1. a conversation of several turns that remembers the order it is about;
2. a refund above a threshold that pauses for a manager's approval (``interrupt``) and
   resumes with ``Command(resume=...)``;
3. a crash: the payment gateway fails mid-run, the "process" is thrown away, and a fresh
   saver and graph resume the thread without re-running the nodes that had finished;
4. time travel: an earlier checkpoint from the history is read and forked with
   ``update_state`` to a different outcome;
5. what the journal stored, by item kind, in DynamoDB and S3;
6. the audit trail: the archiver's Avro files and the thread's history.

``run_demo`` returns a ``DemoResult`` with the facts the narrative claims, so tests can
check them rather than the wording. The agent's savers come from the deployment
(``dep.saver``); what the demo reads of storage it reads through a ``Connection``, as the
``checkpoint-journal`` commands do.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, StateSnapshot

from checkpoint_journal._core import aws
from checkpoint_journal._core import blobs as _blobs
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.items import Item
from checkpoint_journal._core.size import item_size
from checkpoint_journal.cli.connect import Connection
from checkpoint_journal.cli.demo_agent import (
    APPROVAL_THRESHOLD,
    ORDERS,
    GatewayDown,
    NodeLog,
    PaymentGateway,
    build_graph,
)
from checkpoint_journal.local import Backend, LocalDeployment

__all__ = [
    "APPROVAL_THRESHOLD",
    "ORDERS",
    "DemoResult",
    "GatewayDown",
    "NodeLog",
    "PaymentGateway",
    "build_graph",
    "run_demo",
]

Out = Callable[[str], None]

# -- the demo ----------------------------------------------------------------------------


@dataclass
class DemoResult:
    """What the demo showed, as facts a test can assert."""

    backend: str = ""
    thread_id: str = ""
    turns: int = 0
    """User turns completed on the thread's main timeline."""
    replies: list[str] = field(default_factory=list)
    interrupt_seen: bool = False
    interrupt_value: dict[str, Any] | None = None
    interrupt_resumed: bool = False
    """The run resumed after approval and issued the refund."""
    crash_error: str | None = None
    checkpoints_before_resume: int = 0
    crash_resumed: bool = False
    finished_before_crash: list[str] = field(default_factory=list)
    """Nodes of the crashed turn that had returned before the crash."""
    crash_turn_runs: dict[str, int] = field(default_factory=dict)
    """Executions of each node during the crashed turn, both "processes" together."""
    rerun_after_crash: list[str] = field(default_factory=list)
    """Nodes that had finished before the crash yet ran again (should be none)."""
    history_length: int = 0
    fork_from_checkpoint: str = ""
    fork_before: dict[str, Any] = field(default_factory=dict)
    fork_after: dict[str, Any] = field(default_factory=dict)
    original_branch_intact: bool = False
    get_state_requests: int = 0
    archive_files: int = 0
    archived_events: int = 0
    verify_ok: bool = False
    verify_checkpoints: int = 0
    """Checkpoints whose chain verify checked in the table."""
    verify_matched: int = 0
    """Checkpoints verify found identical in the table and the archive."""
    items_by_kind: dict[str, int] = field(default_factory=dict)
    bytes_by_kind: dict[str, int] = field(default_factory=dict)
    total_items: int = 0
    total_bytes: int = 0
    s3_objects: int = 0
    s3_bytes: int = 0
    elapsed_seconds: float = 0.0

    @property
    def crash_resumed_without_rerun(self) -> bool:
        finished = bool(self.finished_before_crash)
        return self.crash_resumed and finished and not self.rerun_after_crash

    @property
    def fork_changed_outcome(self) -> bool:
        return bool(self.fork_after) and self.fork_after != self.fork_before

    def shortfalls(self) -> list[str]:
        """What the demo should have shown and did not (empty when all went well)."""
        checks = {
            "no interrupt was seen and resumed": self.interrupt_seen and self.interrupt_resumed,
            "the crash was not resumed without re-running finished nodes":
                self.crash_resumed_without_rerun,
            "the fork did not change the outcome": self.fork_changed_outcome,
            "verify did not prove the thread intact in the table and the archive":
                self.verify_ok and self.verify_matched == self.verify_checkpoints > 0,
        }
        return [msg for msg, ok in checks.items() if not ok]


@dataclass
class _Run:
    """Everything the demo steps share."""

    dep: LocalDeployment
    conn: Connection
    """What the demo reads of storage, it reads through this (as the commands do)."""
    out: Out
    result: DemoResult
    gateway: PaymentGateway = field(default_factory=PaymentGateway)
    log: NodeLog = field(default_factory=NodeLog)
    graph: Any = None
    saver: Any = None
    config: RunnableConfig = field(default_factory=RunnableConfig)
    chain_key: str = field(default_factory=lambda: os.urandom(32).hex())
    """The deployment's chain key: every saver hashes with it, verify checks with it."""

    def new_process(self) -> None:
        """A fresh saver and a freshly compiled graph: what a restarted worker has."""
        if self.saver is not None:
            self.saver.close()
        self.saver = self.dep.saver(chain_key=self.chain_key)
        self.graph = build_graph(self.saver, gateway=self.gateway, log=self.log)

    def say(self, text: str) -> dict[str, Any]:
        self.out(f"  customer: {text}")
        values: dict[str, Any] = self.graph.invoke({"messages": [HumanMessage(content=text)]},
                                                   self.config)
        return values


def run_demo(backend: Backend = "moto", out: Out = print) -> DemoResult:
    """Run the whole demo on a fresh embedded deployment and return what it showed."""
    started = time.perf_counter()
    result = DemoResult(backend=backend, thread_id=f"customer-42-{uuid.uuid4().hex[:6]}")
    out(f"Starting the embedded local deployment ({backend}) ...")
    with LocalDeployment(backend=backend) as dep:
        out(f"  table {dep.table_name} at {dep.endpoint_url}, bucket {dep.bucket}")
        conn = Connection.of(
            aws.clients(boto3_session=dep.session(), endpoint_url=dep.endpoint_url,
                        s3_endpoint_url=dep.s3_endpoint_url),
            dep.table_name, dep.bucket)
        run = _Run(dep=dep, conn=conn, out=out, result=result)
        run.config = {"configurable": {"thread_id": result.thread_id}}
        run.new_process()
        try:
            _step_conversation(run)
            _step_interrupt(run)
            _step_crash(run)
            _step_time_travel(run)
            _step_storage(run)
            _step_audit(run)
        finally:
            run.saver.close()
            conn.close()
    result.elapsed_seconds = time.perf_counter() - started
    out("")
    out(f"Demo finished in {result.elapsed_seconds:.2f} s.")
    return result


def _heading(run: _Run, text: str) -> None:
    run.out("")
    run.out(f"== {text}")


def _agent(run: _Run, values: dict[str, Any]) -> None:
    run.out(f"  agent:    {values['reply']}")
    run.result.replies.append(values["reply"])
    run.result.turns = values["turn"]


def _step_conversation(run: _Run) -> None:
    _heading(run, f"1. A conversation on thread {run.result.thread_id!r}")
    _agent(run, run.say("Hi! Where is my order A1001?"))
    # No order number this time: the agent reads it from the thread's checkpoint.
    _agent(run, run.say("Thanks. When will it arrive?"))
    n = len(list(run.graph.get_state_history(run.config)))
    run.out(f"  ({n} checkpoints on the thread so far)")


def _step_interrupt(run: _Run) -> None:
    _heading(run, f"2. A refund above ${APPROVAL_THRESHOLD:.0f} waits for a manager")
    values = run.say("The blender from order A1002 arrived broken. I want a refund.")
    state: StateSnapshot = run.graph.get_state(run.config)
    if state.interrupts and "__interrupt__" in values:
        run.result.interrupt_seen = True
        run.result.interrupt_value = dict(state.interrupts[0].value)
        v = run.result.interrupt_value
        run.out(f"  run paused at {list(state.next)}; pending interrupt: "
                f"{v['question']} order {v['order_id']}, ${v['amount']:.2f}")
    else:
        run.out("  (the run did not pause for approval?)")
    run.out("  manager: approved")
    values = run.graph.invoke(Command(resume={"approved": True}), run.config)
    run.result.interrupt_resumed = bool(values.get("approved") and values.get("refund_id"))
    _agent(run, values)


def _step_crash(run: _Run) -> None:
    _heading(run, "3. A crash mid-run, resumed by a fresh process")
    run.gateway.outages = 1  # the gateway will drop the next refund call
    started0, finished0 = run.log.snapshot()
    try:
        run.say("Please also refund the mug set from order A1003.")
        run.out("  (no crash happened?)")
    except GatewayDown as e:
        run.result.crash_error = str(e)
        run.out(f"  process died: {type(e).__name__}: {e}")
    started1, finished1 = run.log.snapshot()
    finished = finished1 - finished0
    run.result.finished_before_crash = sorted(finished)
    run.out(f"  nodes finished before the crash: {', '.join(sorted(finished))}")
    # The old saver and graph are gone; only the table remembers the run.
    run.new_process()
    state: StateSnapshot = run.graph.get_state(run.config)
    run.result.checkpoints_before_resume = len(list(run.graph.get_state_history(run.config)))
    saved = [t.name for t in state.tasks if t.result is not None]
    run.out(f"  fresh saver sees {run.result.checkpoints_before_resume} checkpoints; "
            f"next: {list(state.next)}; results already saved for: {saved or 'none'}")
    values = run.graph.invoke(None, run.config)
    run.result.crash_resumed = bool(values.get("refund_id")) and values.get("order_id") == "A1003"
    _agent(run, values)
    runs = run.log.started - started0
    run.result.crash_turn_runs = dict(sorted(runs.items()))
    run.result.rerun_after_crash = sorted(n for n in finished if runs[n] > finished[n])
    run.out("  node executions this turn: "
            + ", ".join(f"{n}={c}" for n, c in run.result.crash_turn_runs.items()))
    failed = sorted((started1 - started0) - finished)
    run.out(f"  finished nodes re-run after the crash: {run.result.rerun_after_crash or 'none'}; "
            f"re-run because they had failed: {', '.join(failed) or 'none'}")


def _step_time_travel(run: _Run) -> None:
    _heading(run, "4. Back in time: fork the blender refund")
    history: list[StateSnapshot] = list(run.graph.get_state_history(run.config))
    run.result.history_length = len(history)
    head = history[0]
    # The checkpoint taken right after the blender order was looked up.
    old = next(s for s in history
               if s.next == ("check_refund",) and s.values.get("order_id") == "A1002")
    cid = old.config["configurable"]["checkpoint_id"]
    run.result.fork_from_checkpoint = cid
    run.out(f"  {len(history)} checkpoints in the history; picking step "
            f"{old.metadata.get('step') if old.metadata else '?'} ({cid[:18]}...): "
            f"order {old.values['order_id']}, refund ${old.values['refund_amount']:.2f}, "
            f"next {list(old.next)}")
    # The same turn's last checkpoint on the original branch: its outcome.
    turn = old.values["turn"]
    original = next(s for s in history if s.next == () and s.values.get("turn") == turn)
    run.result.fork_before = _outcome(original.values)
    run.out("  what if the customer had asked for a partial refund of $80?")
    fork_config = run.graph.update_state(old.config, {"refund_amount": 80.0})
    values = run.graph.invoke(None, fork_config)
    run.result.fork_after = _outcome(values)
    run.out(f"  original: {run.result.fork_before}")
    run.out(f"  fork:     {run.result.fork_after}")
    run.out(f"  agent (fork): {values['reply']}")
    # The fork is a new branch: the original checkpoints are untouched.
    again = run.graph.get_state(head.config)
    run.result.original_branch_intact = again.values.get("reply") == head.values.get("reply")
    run.out("  original branch still readable at its checkpoint: "
            f"{run.result.original_branch_intact}")


def _outcome(values: dict[str, Any]) -> dict[str, Any]:
    return {"refund": values.get("refund_amount"), "needs_approval": values.get("needs_approval")}


_KIND_NAMES = {
    _keys.KIND_CHECKPOINT: "checkpoint events",
    _keys.KIND_WRITES: "pending writes",
    _keys.KIND_CHUNK: "chunks",
    _keys.KIND_TOMBSTONE: "tombstones",
    _keys.KIND_VIEW: "views",
    _keys.KIND_INDEX: "index entries",
    _keys.KIND_HEAD: "heads",
}


def _step_storage(run: _Run) -> None:
    _heading(run, "5. What is stored where")
    # The projector folds the journal in the background (the local stream runner plays
    # Lambda's part); wait until it has seen everything, then look.
    run.dep.drain(timeout=60)
    run.result.get_state_requests, names = _requests_of_get_state(run)
    run.out(f"  get_state with the projector caught up: {len(names)} request(s) "
            f"({', '.join(names)})")
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for item in _scan(run.conn):
        if item["PK"]["S"].startswith("K#"):
            kind = "archive keys"  # one per thread: delete_thread destroys it (privacy)
        else:
            kind = _KIND_NAMES.get(item.get("kind", {}).get("S", ""), "other")
        counts[kind] += 1
        sizes[kind] += item_size(item)  # as DynamoDB counts it (names included)
    r = run.result
    r.items_by_kind, r.bytes_by_kind = dict(counts), dict(sizes)
    r.total_items, r.total_bytes = sum(counts.values()), sum(sizes.values())
    run.out(f"  DynamoDB table {run.dep.table_name}:")
    for kind in [*_KIND_NAMES.values(), "archive keys", "other"]:
        if counts[kind] or kind in ("checkpoint events", "pending writes", "views"):
            run.out(f"    {kind:<18} {counts[kind]:>4} items {sizes[kind]:>9,} bytes")
    run.out(f"    {'total':<18} {r.total_items:>4} items {r.total_bytes:>9,} bytes")
    r.s3_objects, r.s3_bytes = _bucket_usage(run.conn)
    run.out(f"  S3 bucket {run.dep.bucket}: {r.s3_objects} objects, {r.s3_bytes:,} bytes"
            + ("" if r.s3_objects else " (no value was large enough to offload)"))


def _requests_of_get_state(run: _Run) -> tuple[int, list[str]]:
    """The AWS requests of one ``get_state`` by a fresh worker: its saver's clients come
    from a session whose event hook sees every request they send."""
    requests: list[str] = []

    def count(model: Any, **_: Any) -> None:
        requests.append(model.name)

    session = run.dep.session()
    # Registered before the saver makes its clients: each client copies the hooks.
    session.events.register("before-call.*.*", count)
    with run.dep.saver(chain_key=run.chain_key, boto3_session=session) as saver:
        build_graph(saver, gateway=run.gateway, log=run.log).get_state(run.config)
    return len(requests), requests


def _step_audit(run: _Run) -> None:
    """The audit trail: the archiver's Avro files, ``checkpoint-journal verify`` proving
    the thread intact in the table and the archive, and the thread's history as the
    ``checkpoint-journal history`` command prints it."""
    from checkpoint_journal._core import chain as _chain
    from checkpoint_journal._core.archive_read import iter_archive
    from checkpoint_journal.cli import browse, detail
    from checkpoint_journal.cli import render as text
    from checkpoint_journal.cli import verify as _verify

    conn, thread_id = run.conn, run.result.thread_id
    assert conn.bucket is not None
    _heading(run, "6. The audit trail")
    kinds: Counter[str] = Counter()
    files: set[str] = set()
    # The plain fields are enough to count: no table, so nothing is decrypted here.
    for ev in iter_archive(conn.s3, conn.bucket, thread_id=thread_id):
        files.add(ev.file)
        kinds[ev.kind] += 1
    run.result.archive_files = len(files)
    run.result.archived_events = sum(kinds.values())
    run.out(f"  s3://{conn.bucket}/archive/: {len(files)} Avro file(s) holding "
            f"{kinds.get('C', 0)} checkpoint events and {kinds.get('W', 0)} writes events "
            "of this thread (their contents encrypted with the thread's archive key)")
    report = _verify.verify(
        conn.dynamodb, conn.table, hasher=_chain.Hasher(_chain.key_bytes(run.chain_key)),
        thread_id=thread_id, s3=conn.s3, bucket=conn.bucket,
    )
    run.result.verify_ok = report.ok
    run.result.verify_checkpoints = report.counts["checkpoints chained (table)"]
    run.result.verify_matched = report.counts["checkpoints matched table to archive"]
    run.out(f"  $ checkpoint-journal verify --thread {thread_id} --chain-key-file chain.key")
    for line in _verify.text(report, text.Style(), archive=True):
        run.out(f"  {line}")
    journal = browse.read_namespace(conn.store, thread_id, "", bucket=conn.bucket)
    rows = detail.history(journal, browse.default_serde(), limit=5)
    run.out(f"  $ checkpoint-journal history {thread_id} --limit 5")
    for line in text.history_text(thread_id, "", rows, len(journal.ns.checkpoints),
                                  text.Style()):
        run.out(f"  {line}")


def _scan(conn: Connection) -> list[Item]:
    """Every item of the table (a demo's table is small)."""
    scan = conn.dynamodb.get_paginator("scan").paginate(TableName=conn.table,
                                                        ConsistentRead=True)
    return [item for page in aws.paginate(scan, service=aws.DYNAMODB, resource=conn.table,
                                          what="count the table's items")
            for item in page.get("Items", [])]


def _bucket_usage(conn: Connection) -> tuple[int, int]:
    """Objects and bytes of the offloaded values (the archiver's Avro files, archive/,
    repeat the journal and are left out)."""
    assert conn.bucket is not None
    listing = conn.s3.get_paginator("list_objects_v2").paginate(Bucket=conn.bucket,
                                                                Prefix=_blobs.PREFIX)
    sizes = [int(obj.get("Size", 0))
             for page in aws.paginate(listing, service=aws.S3, resource=conn.bucket,
                                      what="list the offloaded values")
             for obj in page.get("Contents", [])]
    return len(sizes), sum(sizes)


if __name__ == "__main__":
    run_demo()
