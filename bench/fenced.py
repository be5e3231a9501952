"""What write ownership costs: the 12-turn run through a fenced writer, next to the same
run through the saver itself.

    python -m bench.fenced [--rtt-ms 10] [--turns 12] [--kb-size 200000]
                           [--backend dynamodb-local]

Both runs use one ``LocalDeployment(handlers=False)`` (no projector: only the agent's
requests are counted), the support-agent workload of ``bench.workload``, and two thread
ids of the same length, so that every key costs the same bytes. DynamoDB Local by
default: moto's TransactWriteItems deep-copies the table and fails (HTTP 500, retried)
when another write lands meanwhile, which LangGraph's concurrent writes of a step do;
the retries it adds are shown, never hidden. The fenced run claims
the thread once (``claim_write_ownership``), then runs the graph through the writer.
Every HTTP attempt is counted by ``bench.counting.RequestCounter``; write requests are
also tallied by the item kind they store (checkpoint event: ``put``; writes event:
``put_writes``), and their write capacity is estimated with DynamoDB's rules: a
standard write costs one WCU per started KB of the item, a transactional one twice
that for each item it names, the ConditionCheck on the (sub-1 KB) owner item included.
The final states of both runs must be identical. Prints only; never touches
docs/benchmark.md (its "What write ownership costs" table is copied from this output).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from langchain_core.runnables import RunnableConfig

from bench.counting import KIND_NAMES, PhaseStats, RequestCounter
from bench.report import fmt_bytes, fmt_s, ops
from bench.workload import THREAD_ID, build_graph, knowledge_base, snapshot_key, turn_inputs
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.size import item_size
from checkpoint_journal.local import LocalDeployment

PLAIN = "JournalSaver (unfenced)"
FENCED = "JournalSaver writer (claim_write_ownership)"
# Write capacity: one unit per started KB of the item (DynamoDB's "write request
# unit"); a transaction spends two per item per KB (prepare and commit).
WCU_BYTES = 1024
TRANSACTION_WCU_FACTOR = 2
OPERATIONS = {_keys.KIND_CHECKPOINT: "put", _keys.KIND_WRITES: "put_writes"}


@dataclass
class Tally:
    """Write requests by (operation, what they store): count, body bytes, WCU."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    """HTTP attempts, retries included."""
    operations: dict[str, set[str]] = field(default_factory=dict)
    """Operation -> the sort keys of the items it stored: one per put / put_writes."""
    body_bytes: Counter[tuple[str, str]] = field(default_factory=Counter)
    wcu: Counter[tuple[str, str]] = field(default_factory=Counter)
    on: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, session: boto3.session.Session) -> None:
        session.events.register("before-send.dynamodb.PutItem", self._on_send)
        session.events.register("before-send.dynamodb.TransactWriteItems", self._on_send)

    def _on_send(self, request: Any, event_name: str, **_: Any) -> None:
        if not self.on:
            return
        op = event_name.rsplit(".", 1)[-1]
        body = request.body
        doc = json.loads(body)
        size = len(body) if isinstance(body, (bytes, bytearray)) else len(str(body).encode())
        if op == "PutItem":
            items, checks = [doc["Item"]], 0
        else:
            actions = doc["TransactItems"]
            items = [a["Put"]["Item"] for a in actions if "Put" in a]
            checks = sum(1 for a in actions if "ConditionCheck" in a)
        kind = items[0].get("kind", {}).get("S", "") if items else ""
        name = OPERATIONS.get(kind, KIND_NAMES.get(kind, "other"))
        units = sum(math.ceil(item_size(_wire_item(i)) / WCU_BYTES) for i in items) + checks
        if op == "TransactWriteItems":
            units *= TRANSACTION_WCU_FACTOR
        with self.lock:
            self.requests[(op, name)] += 1
            self.operations.setdefault(name, set()).update(i["SK"]["S"] for i in items)
            self.body_bytes[(op, name)] += size
            self.wcu[(op, name)] += units


def _wire_item(item: dict[str, Any]) -> dict[str, Any]:
    """A JSON wire item with its binary values decoded, for DynamoDB's size formula."""
    def value(v: dict[str, Any]) -> dict[str, Any]:
        ((tag, x),) = v.items()
        if tag == "B":
            return {"B": base64.b64decode(x)}
        if tag == "M":
            return {"M": {k: value(e) for k, e in x.items()}}
        if tag == "L":
            return {"L": [value(e) for e in x]}
        return v
    return {k: value(v) for k, v in item.items()}


@dataclass
class Run:
    name: str
    run: PhaseStats
    claim: PhaseStats
    tally: Tally
    final: tuple[Any, ...]


def run(dep: LocalDeployment, name: str, thread_id: str, *, fenced: bool, rtt_s: float,
        inputs: Sequence[Any]) -> Run:
    counter, tally = RequestCounter(rtt_s), Tally()
    session = dep.session()
    counter.attach(session)  # before the saver makes its clients
    tally.attach(session)
    saver = dep.saver(boto3_session=session)
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    try:
        with counter.phase("claim"):
            checkpointer = saver.claim_write_ownership(thread_id) if fenced else saver
        graph = build_graph().compile(checkpointer=checkpointer)
        tally.on = True
        for inp in inputs:
            with counter.phase("run"):
                graph.invoke(inp, config, durability="sync")
        tally.on = False
        final = snapshot_key(graph.get_state(config))
    finally:
        saver.close()
    return Run(name, counter.stats("run"), counter.stats("claim"), tally, final)


def per_operation_table(plain: Run, fenced: Run) -> str:
    """Per put / put_writes, the two runs side by side."""
    lines = [
        "| operation | calls | requests per call (unfenced / fenced) "
        "| bytes sent per call (unfenced / fenced, difference) "
        "| est. WCU per call (unfenced / fenced, ratio) |",
        "|---|---:|---|---|---|",
    ]
    for name in OPERATIONS.values():
        cols = []
        for r in (plain, fenced):
            calls = len(r.tally.operations.get(name, ()))
            keys = [k for k in r.tally.requests if k[1] == name]
            cols.append((calls, sum(r.tally.requests[k] for k in keys),
                         sum(r.tally.body_bytes[k] for k in keys),
                         sum(r.tally.wcu[k] for k in keys),
                         "/".join(sorted({k[0] for k in keys}))))
        (n0, q0, b0, w0, op0), (n1, q1, b1, w1, op1) = cols
        if not n0 or not n1:
            continue
        n_calls = f"{n0:,}" if n0 == n1 else f"{n0:,} / {n1:,}"
        lines.append(
            f"| {name} | {n_calls} | {q0 / n0:.2f} {op0} / {q1 / n1:.2f} {op1} "
            f"| {b0 / n0:,.0f} / {b1 / n1:,.0f} ({b1 / n1 - b0 / n0:+,.0f}, "
            f"{(b1 / n1) / (b0 / n0) - 1:+.1%}) "
            f"| {w0 / n0:.1f} / {w1 / n1:.1f} ({(w1 / n1) / (w0 / n0):.2f}x) |")
    return "\n".join(lines)


def totals_table(runs: Sequence[Run], turns: int) -> str:
    lines = [
        f"| saver | requests ({turns}-turn run) | by operation | HTTP retries "
        "| bytes written | bytes sent (all) | est. WCU | wall time | claim |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        claim = (f"{ops(r.claim)}, {fmt_bytes(r.claim.total_bytes)} sent"
                 if r.claim.total_requests else "none")
        lines.append(
            f"| {r.name} | {r.run.total_requests:,} | {ops(r.run)} "
            f"| {sum(r.run.retries.values()):,} | {fmt_bytes(r.run.bytes_written)} | {fmt_bytes(r.run.total_bytes)} "
            f"| {sum(r.tally.wcu.values()):,} | {fmt_s(r.run.wall_s)} | {claim} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fenced",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--rtt-ms", type=float, default=10.0,
                   help="simulated round trip added to every HTTP request (default 10)")
    p.add_argument("--turns", type=int, default=12, help="invokes on the thread (default 12)")
    p.add_argument("--kb-size", type=int, default=200_000,
                   help="characters in the knowledge_base channel (default 200000)")
    p.add_argument("--backend", choices=("moto", "dynamodb-local"), default="dynamodb-local",
                   help="the local deployment's DynamoDB (default dynamodb-local)")
    args = p.parse_args(argv)
    if args.turns < 1 or args.kb_size < 0 or args.rtt_ms < 0:
        p.error("--turns must be at least 1; --kb-size and --rtt-ms must not be negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    inputs = turn_inputs(args.turns, knowledge_base(args.kb_size))
    rtt_s = args.rtt_ms / 1000
    with LocalDeployment(backend=args.backend, handlers=False) as dep:
        runs = [
            # Same-length thread ids: the keys cost the same bytes in both runs.
            run(dep, PLAIN, f"{THREAD_ID}-plain", fenced=False, rtt_s=rtt_s, inputs=inputs),
            run(dep, FENCED, f"{THREAD_ID}-fence", fenced=True, rtt_s=rtt_s, inputs=inputs),
        ]
    if runs[0].final != runs[1].final:
        raise AssertionError("the fenced run's final state differs from the unfenced one")
    print(f"\nWrite ownership, {args.turns} turns, {args.backend}, "
          f"{args.rtt_ms:g} ms simulated round trip; final states identical.\n")
    print(totals_table(runs, args.turns) + "\n")
    print(per_operation_table(*runs) + "\n")
    print("WCU are estimated from the items' sizes (DynamoDB's formula): a standard write "
          "costs ceil(item size / 1 KB) units; a TransactWriteItems costs twice that for "
          "each item it names, so a fenced write costs 2 x (its item's units + 1 for the "
          "ConditionCheck on the owner item). Local emulators do not meter capacity.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
