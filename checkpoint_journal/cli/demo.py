"""A customer-support agent on the embedded local deployment: no LLM, no network.

    checkpoint-journal demo                  # moto backend
    checkpoint-journal demo --backend dynamodb-local

The agent is a LangGraph graph of plain, deterministic Python nodes (keyword
classification, an in-code order table, a fake payment gateway). The demo walks through
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
check them rather than the wording.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, StateSnapshot, interrupt

from checkpoint_journal._core import blobs as _blobs
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.size import item_size
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

# The whole "order system": enough variety for a status question, a refund that needs
# approval (above the threshold) and one that does not.
ORDERS: dict[str, dict[str, Any]] = {
    "A1001": {"item": "espresso machine", "total": 189.00, "status": "shipped",
              "carrier": "UPS 1Z999AA10123456784", "eta": "Thursday"},
    "A1002": {"item": "blender", "total": 249.00, "status": "delivered on Monday",
              "carrier": "DHL 4052611", "eta": None},
    "A1003": {"item": "mug set", "total": 35.00, "status": "delivered on Tuesday",
              "carrier": "USPS 9400111899", "eta": None},
}
# Refunds above this many dollars need a human's approval.
APPROVAL_THRESHOLD = 100.00

_ORDER_ID = re.compile(r"\bA\d{4}\b")
_REFUND_WORDS = ("refund", "broken", "return", "money back")
_ETA_WORDS = ("when", "arrive")
_STATUS_WORDS = ("where", "status", "track")


# -- the agent ---------------------------------------------------------------------------


class SupportState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    turn: int
    intent: str
    order_id: str | None
    order: dict[str, Any] | None
    refund_amount: float
    needs_approval: bool
    approved: bool | None
    refund_id: str | None
    return_label: str | None
    reply: str


class NodeFn(Protocol):
    # A Protocol, not a Callable: LangGraph's add_node matches on the parameter name.
    def __call__(self, state: SupportState) -> dict[str, Any]: ...


class GatewayDown(RuntimeError):
    """The simulated payment gateway dropped the connection."""


@dataclass
class PaymentGateway:
    """A fake payment gateway; ``outages`` is how many next calls fail."""

    outages: int = 0
    refunds: list[tuple[str, float]] = field(default_factory=list)

    def refund(self, order_id: str, amount: float) -> str:
        if self.outages > 0:
            self.outages -= 1
            raise GatewayDown(f"payment gateway timed out refunding order {order_id}")
        self.refunds.append((order_id, amount))
        return f"RF-{order_id}-{len(self.refunds):03d}"


@dataclass
class NodeLog:
    """Counts node executions (started) and successful returns (finished), so the demo
    can prove which nodes ran again after a crash."""

    started: Counter[str] = field(default_factory=Counter)
    finished: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        return self.started.copy(), self.finished.copy()


def _last_human_text(state: SupportState) -> str:
    for msg in reversed(state.get("messages", [])):
        if isinstance(msg, HumanMessage):
            return str(msg.content)
    return ""


def classify(state: SupportState) -> dict[str, Any]:
    text = _last_human_text(state).lower()
    if any(w in text for w in _REFUND_WORDS):
        intent = "refund"
    elif any(w in text for w in _ETA_WORDS):
        intent = "eta"
    elif any(w in text for w in _STATUS_WORDS):
        intent = "status"
    else:
        intent = "other"
    found = _ORDER_ID.search(text.upper())
    # No order id in this message: the one from an earlier turn, read from the checkpoint.
    order_id = found.group(0) if found else state.get("order_id")
    # Per-turn fields are reset so a turn never sees the previous turn's refund.
    return {"turn": state.get("turn", 0) + 1, "intent": intent, "order_id": order_id,
            "refund_amount": 0.0, "needs_approval": False, "approved": None,
            "refund_id": None, "return_label": None}


def lookup_order(state: SupportState) -> dict[str, Any]:
    order_id = state.get("order_id")
    order = ORDERS.get(order_id) if order_id else None
    amount = float(order["total"]) if order and state.get("intent") == "refund" else 0.0
    return {"order": order, "refund_amount": amount}


def check_refund(state: SupportState) -> dict[str, Any]:
    return {"needs_approval": state.get("refund_amount", 0.0) > APPROVAL_THRESHOLD}


def human_approval(state: SupportState) -> dict[str, Any]:
    # interrupt() saves the question with the checkpoint and stops the run; on resume
    # LangGraph runs this node again and interrupt() returns the human's answer.
    decision = interrupt({
        "question": "Approve this refund?",
        "order_id": state.get("order_id"),
        "amount": state.get("refund_amount"),
        "threshold": APPROVAL_THRESHOLD,
    })
    return {"approved": bool(decision.get("approved"))}


def create_return_label(state: SupportState) -> dict[str, Any]:
    return {"return_label": f"RMA-{state.get('order_id')}-{state.get('turn', 0)}"}


def draft_reply(state: SupportState) -> dict[str, Any]:
    text = _reply_text(state)
    return {"reply": text, "messages": [AIMessage(content=text)]}


def _reply_text(state: SupportState) -> str:
    order, oid = state.get("order"), state.get("order_id")
    intent = state.get("intent")
    if intent == "other":
        return "I can help with where an order is, or with a refund. What do you need?"
    if order is None:
        return f"I could not find order {oid!r}; could you check the number?"
    if intent == "status":
        return f"Your {order['item']} (order {oid}) is {order['status']} with {order['carrier']}."
    if intent == "eta":
        if order["eta"]:
            return f"Order {oid} should arrive {order['eta']}."
        return f"Order {oid} was {order['status']}."
    amount = state.get("refund_amount", 0.0)
    if state.get("needs_approval") and not state.get("approved"):
        return f"A manager reviewed the ${amount:.2f} refund for order {oid} and declined it."
    approved = " A manager approved it." if state.get("needs_approval") else ""
    return (f"Refunded ${amount:.2f} for your {order['item']} ({state.get('refund_id')}); "
            f"return label {state.get('return_label')} is on its way.{approved}")


# Refunding and the return label are independent: they run in parallel, in one step.
_REFUND_STEPS = ["issue_refund", "create_return_label"]


def _after_lookup(state: SupportState) -> str:
    refund = state.get("intent") == "refund" and state.get("order")
    return "check_refund" if refund else "draft_reply"


def _after_check(state: SupportState) -> str | list[str]:
    return "human_approval" if state.get("needs_approval") else _REFUND_STEPS


def _after_approval(state: SupportState) -> str | list[str]:
    return _REFUND_STEPS if state.get("approved") else "draft_reply"


def _counted(name: str, fn: NodeFn, log: NodeLog) -> NodeFn:
    def node(state: SupportState) -> dict[str, Any]:
        log.started[name] += 1
        update = fn(state)
        log.finished[name] += 1
        return update

    return node


def build_graph(
    checkpointer: BaseCheckpointSaver[Any],
    *,
    gateway: PaymentGateway | None = None,
    log: NodeLog | None = None,
) -> Any:
    """The support agent, compiled on ``checkpointer``.

    ``gateway`` and ``log`` live outside the graph, like a real payment service and
    metrics would, so that they survive a "process" (graph and saver) being replaced.
    """
    gateway = gateway if gateway is not None else PaymentGateway()
    log = log if log is not None else NodeLog()

    def issue_refund(state: SupportState) -> dict[str, Any]:
        amount = state.get("refund_amount", 0.0)
        return {"refund_id": gateway.refund(str(state.get("order_id")), amount)}

    nodes: dict[str, NodeFn] = {
        "classify": classify, "lookup_order": lookup_order, "check_refund": check_refund,
        "human_approval": human_approval, "issue_refund": issue_refund,
        "create_return_label": create_return_label, "draft_reply": draft_reply,
    }
    g = StateGraph(SupportState)
    for name, fn in nodes.items():
        g.add_node(name, _counted(name, fn, log))
    g.add_edge(START, "classify")
    g.add_edge("classify", "lookup_order")
    g.add_conditional_edges("lookup_order", _after_lookup, ["check_refund", "draft_reply"])
    g.add_conditional_edges("check_refund", _after_check,
                            ["human_approval", "issue_refund", "create_return_label"])
    g.add_conditional_edges("human_approval", _after_approval,
                            ["issue_refund", "create_return_label", "draft_reply"])
    # draft_reply waits for both parallel branches.
    g.add_edge(["issue_refund", "create_return_label"], "draft_reply")
    g.add_edge("draft_reply", END)
    return g.compile(checkpointer=checkpointer)


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


@dataclass
class _Run:
    """Everything the demo steps share."""

    dep: LocalDeployment
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
        run = _Run(dep=dep, out=out, result=result)
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
    requests: list[str] = []

    def count(model: Any, **_: Any) -> None:
        requests.append(model.name)

    run.saver._ddb.meta.events.register("before-call.*.*", count)
    run.saver._s3.meta.events.register("before-call.*.*", count)
    run.graph.get_state(run.config)
    run.saver._ddb.meta.events.unregister("before-call.*.*", count)
    run.saver._s3.meta.events.unregister("before-call.*.*", count)
    run.result.get_state_requests = len(requests)
    run.out(f"  get_state with the projector caught up: {len(requests)} request(s) "
            f"({', '.join(requests)})")
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for item in _scan(run.dep):
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
    r.s3_objects, r.s3_bytes = _bucket_usage(run.dep)
    run.out(f"  S3 bucket {run.dep.bucket}: {r.s3_objects} objects, {r.s3_bytes:,} bytes"
            + ("" if r.s3_objects else " (no value was large enough to offload)"))


def _step_audit(run: _Run) -> None:
    """The audit trail: the archiver's Avro files, ``checkpoint-journal verify`` proving
    the thread intact in the table and the archive, and the thread's history as the
    ``checkpoint-journal history`` command prints it."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from checkpoint_journal._core.archive_read import iter_archive
    from checkpoint_journal.cli import browse
    from checkpoint_journal.cli import render as text

    _heading(run, "6. The audit trail")
    kinds: Counter[str] = Counter()
    files: set[str] = set()
    # The plain fields are enough to count: no table, so nothing is decrypted here.
    for ev in iter_archive(run.saver._s3, run.dep.bucket, thread_id=run.result.thread_id):
        files.add(ev.file)
        kinds[ev.kind] += 1
    run.result.archive_files = len(files)
    run.result.archived_events = sum(kinds.values())
    run.out(f"  s3://{run.dep.bucket}/archive/: {len(files)} Avro file(s) holding "
            f"{kinds.get('C', 0)} checkpoint events and {kinds.get('W', 0)} writes events "
            "of this thread (their contents encrypted with the thread's archive key)")
    from checkpoint_journal._core import chain as _chain
    from checkpoint_journal.cli import verify as _verify

    report = _verify.verify(
        run.saver._store.client, run.dep.table_name,
        hasher=_chain.Hasher(_chain.key_bytes(run.chain_key)),
        thread_id=run.result.thread_id, s3=run.saver._s3, bucket=run.dep.bucket,
    )
    run.result.verify_ok = report.ok
    run.result.verify_checkpoints = report.counts["checkpoints chained (table)"]
    run.result.verify_matched = report.counts["checkpoints matched table to archive"]
    run.out(f"  $ checkpoint-journal verify --thread {run.result.thread_id} "
            "--chain-key-file chain.key")
    for line in _verify.text(report, text.Style(), archive=True):
        run.out(f"  {line}")
    journal = browse.read_namespace(run.saver, run.result.thread_id, "")
    rows = browse.history(journal, JsonPlusSerializer(), limit=5)
    run.out(f"  $ checkpoint-journal history {run.result.thread_id} --limit 5")
    for line in text.history_text(run.result.thread_id, "", rows,
                                  len(journal.ns.checkpoints), text.Style()):
        run.out(f"  {line}")


def _scan(dep: LocalDeployment) -> list[dict[str, Any]]:
    ddb = dep.client("dynamodb")
    items: list[dict[str, Any]] = []
    for page in ddb.get_paginator("scan").paginate(TableName=dep.table_name, ConsistentRead=True):
        items.extend(page.get("Items", []))
    return items


def _bucket_usage(dep: LocalDeployment) -> tuple[int, int]:
    s3 = dep.client("s3")
    count = size = 0
    # Offloaded values only: the archiver's Avro files (archive/) repeat the journal.
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=dep.bucket,
                                                              Prefix=_blobs.PREFIX):
        for obj in page.get("Contents", []):
            count += 1
            size += int(obj.get("Size", 0))
    return count, size


if __name__ == "__main__":
    run_demo()
