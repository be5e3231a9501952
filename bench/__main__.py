"""Run the support-agent workload with three checkpointers and report requests, bytes, time.

    python -m bench [--rtt-ms 10] [--turns 12] [--kb-size 200000] [--no-readme]

One LocalDeployment (moto server on 127.0.0.1, DynamoDB + S3) serves both DynamoDB
savers, each with its own table, bucket and boto3 session; a RequestCounter hooked on
each session counts every HTTP attempt and sleeps the simulated round trip. The three
savers run the same turns one after the other, then their final state and history are
compared (any difference fails the run). By default the results table is written into
README.md between ``<!-- bench:start -->`` and ``<!-- bench:end -->``.
"""

from __future__ import annotations

import argparse
import datetime
import re
import shlex
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_checkpoint_aws import DynamoDBSaver
from langgraph_checkpoint_aws.checkpoint.dynamodb.storage_strategy import S3_OFFLOAD_THRESHOLD

from bench.counting import PhaseStats, RequestCounter
from bench.workload import THREAD_ID, build_graph, knowledge_base, snapshot_key, turn_inputs
from checkpoint_journal.local import LocalDeployment

README = Path(__file__).resolve().parent.parent / "README.md"
START_MARK = "<!-- bench:start -->"
END_MARK = "<!-- bench:end -->"

JOURNAL = "JournalSaver"
DYNAMODB = "DynamoDBSaver"
MEMORY = "InMemorySaver"

# The project's targets for the 12-turn run, JournalSaver / DynamoDBSaver.
TARGET_REQUESTS_RATIO = 0.4
TARGET_BYTES_RATIO = 0.1

PHASES = ("run", "get_state", "history")


@dataclass
class SaverResult:
    name: str
    counter: RequestCounter
    final: tuple[Any, ...] = ()
    history: list[tuple[Any, ...]] = field(default_factory=list)

    def phase(self, name: str) -> PhaseStats:
        return self.counter.stats(name)


# A factory builds a saver whose clients all come from a session the counter watches.
SaverFactory = Callable[[LocalDeployment, RequestCounter], BaseCheckpointSaver[Any]]


def make_journal_saver(dep: LocalDeployment, counter: RequestCounter) -> BaseCheckpointSaver[Any]:
    session = dep.session()
    counter.attach(session)  # before the saver creates its clients
    return dep.saver(boto3_session=session)


def make_dynamodb_saver(dep: LocalDeployment, counter: RequestCounter) -> BaseCheckpointSaver[Any]:
    """langgraph-checkpoint-aws 1.2.6's DynamoDBSaver, best configuration: gzip
    compression on, S3 offload on (payloads above 350 KB go to S3).

    Its table is the one of the package's sample CloudFormation template
    (samples/memory/cfn/langgraph-ddb-cfn-template.yaml in langchain-aws): PK (S) hash
    key, SK (S) range key, on-demand; TTL off, as for JournalSaver. Table and bucket are
    created with an unwatched client, so setup is not counted.
    """
    suffix = uuid.uuid4().hex[:10]
    table, bucket = f"lgaws-checkpoints-{suffix}", f"lgaws-offload-{suffix}"
    ddb = dep.client("dynamodb")
    ddb.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 0.1})
    dep.client("s3").create_bucket(Bucket=bucket)
    session = dep.session()
    counter.attach(session)
    # Annotated: the package ships no py.typed, so mypy sees DynamoDBSaver as Any.
    saver: BaseCheckpointSaver[Any] = DynamoDBSaver(
        table,
        session=session,
        region_name=dep.region_name,
        endpoint_url=dep.endpoint_url,
        enable_checkpoint_compression=True,
        s3_offload_config={"bucket_name": bucket, "endpoint_url": dep.s3_endpoint_url},
    )
    return saver


def make_memory_saver(dep: LocalDeployment, counter: RequestCounter) -> BaseCheckpointSaver[Any]:
    return InMemorySaver()  # no requests: the counter stays empty, no RTT is added


def run_saver(
    name: str,
    factory: SaverFactory,
    dep: LocalDeployment,
    *,
    rtt_s: float,
    inputs: Sequence[Any],
) -> SaverResult:
    counter = RequestCounter(rtt_s)
    result = SaverResult(name, counter)
    with counter.phase("setup"):
        saver = factory(dep, counter)
        graph = build_graph().compile(checkpointer=saver)
    config: RunnableConfig = {"configurable": {"thread_id": THREAD_ID}}
    try:
        with counter.phase("run"):
            for inp in inputs:
                # sync: each step's checkpoint and writes are stored before the next
                # step starts, so every request of a turn is done when invoke returns.
                graph.invoke(inp, config, durability="sync")
        with counter.phase("get_state"):
            state = graph.get_state(config)
        with counter.phase("history"):
            history = list(graph.get_state_history(config))
    finally:
        close = getattr(saver, "close", None)
        if callable(close):
            close()
    result.final = snapshot_key(state)
    result.history = [snapshot_key(s) for s in history]
    return result


# -- verification ---------------------------------------------------------------------


def verify(results: Sequence[SaverResult], *, turns: int, kb: str) -> None:
    """Identical final state and history across savers, or AssertionError.

    Raised explicitly (not ``assert``) so ``python -O`` cannot skip it.
    """
    ref = results[0]
    values = ref.final[0]
    if values.get("knowledge_base") != kb:
        raise AssertionError(f"{ref.name}: knowledge_base did not survive the run")
    if len(values.get("messages", [])) != 2 * turns:
        raise AssertionError(
            f"{ref.name}: expected {2 * turns} messages, got {len(values.get('messages', []))}"
        )
    for other in results[1:]:
        if other.final != ref.final:
            raise AssertionError(
                f"final state differs between {ref.name} and {other.name}: "
                + _first_difference(ref.final, other.final)
            )
        if len(other.history) != len(ref.history):
            raise AssertionError(
                f"history length differs: {ref.name} {len(ref.history)}, "
                f"{other.name} {len(other.history)}"
            )
        for i, (a, b) in enumerate(zip(ref.history, other.history)):
            if a != b:
                raise AssertionError(
                    f"history entry {i} (newest first) differs between {ref.name} and "
                    f"{other.name}: " + _first_difference(a, b)
                )


def _first_difference(a: tuple[Any, ...], b: tuple[Any, ...]) -> str:
    parts = ("values", "next", "step", "source", "tasks")
    for part, x, y in zip(parts, a, b):
        if x == y:
            continue
        if part == "values":
            keys = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
            return f"values differ in channel(s) {keys}"
        return f"{part}: {x!r} != {y!r}"
    return "no visible difference"


# -- report ---------------------------------------------------------------------------


def fmt_bytes(n: int) -> str:
    if n >= 1_000_000:
        return f"{n:,} ({n / 1e6:.2f} MB)"
    if n >= 1_000:
        return f"{n:,} ({n / 1e3:.1f} kB)"
    return f"{n:,}"


def fmt_s(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1000:.0f} ms"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def main_table(results: Sequence[SaverResult], turns: int) -> str:
    n_history = len(results[0].history)
    lines = [
        f"| saver | requests ({turns}-turn run) | requests (get_state) "
        f"| requests (history, {n_history} checkpoints) | bytes written ({turns}-turn run) "
        "| bytes sent (all phases) | bytes received (all phases) "
        "| wall time (run) | wall time (get_state + history) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        run, gs, hist = (r.phase(p) for p in PHASES)
        lines.append(
            f"| {r.name} | {run.total_requests:,} | {gs.total_requests:,} "
            f"| {hist.total_requests:,} | {fmt_bytes(run.bytes_written)} "
            f"| {fmt_bytes(sum(r.phase(p).total_bytes for p in PHASES))} "
            f"| {fmt_bytes(sum(r.phase(p).total_received for p in PHASES))} "
            f"| {fmt_s(run.wall_s)} | {fmt_s(gs.wall_s + hist.wall_s)} |"
        )
    return "\n".join(lines)


def ratio_lines(results: Sequence[SaverResult], turns: int) -> list[str]:
    by = {r.name: r for r in results}
    j, d = by[JOURNAL], by[DYNAMODB]
    jr, dr = j.phase("run"), d.phase("run")
    req = ratio(jr.total_requests, dr.total_requests)
    byt = ratio(jr.bytes_written, dr.bytes_written)

    def verdict(value: float, target: float) -> str:
        return "met" if value <= target else "**MISSED**"

    def reads(phase: str) -> str:
        a, b = j.phase(phase).total_requests, d.phase(phase).total_requests
        return f"{ratio(a, b):.3f}x ({a} / {b})"

    wall = ratio(jr.wall_s, dr.wall_s)
    return [
        f"{JOURNAL} / {DYNAMODB}, {turns}-turn run: requests **{req:.2f}x** "
        f"({jr.total_requests} / {dr.total_requests}; target ≤ {TARGET_REQUESTS_RATIO}x: "
        f"{verdict(req, TARGET_REQUESTS_RATIO)}), bytes written **{byt:.3f}x** "
        f"({jr.bytes_written:,} / {dr.bytes_written:,}; target ≤ {TARGET_BYTES_RATIO}x: "
        f"{verdict(byt, TARGET_BYTES_RATIO)}), wall time {wall:.2f}x.",
        f"Reads: get_state requests {reads('get_state')}, "
        f"full history requests {reads('history')}.",
    ]


def breakdown_table(results: Sequence[SaverResult]) -> str:
    lines = [
        "| saver | phase | operation | requests | retries | error responses "
        "| request bytes | response bytes |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for p in ("setup", *PHASES):
            st = r.phase(p)
            for op in sorted(st.requests):
                lines.append(
                    f"| {r.name} | {p} | {op} | {st.requests[op]:,} | {st.retries[op]:,} "
                    f"| {st.errors[op]:,} | {st.bytes_sent[op]:,} "
                    f"| {st.bytes_received[op]:,} |"
                )
        if not any(r.phase(p).total_requests for p in ("setup", *PHASES)):
            lines.append(f"| {r.name} | all | (no requests) | 0 | 0 | 0 | 0 | 0 |")
    return "\n".join(lines)


def settings_line(args: argparse.Namespace, results: Sequence[SaverResult]) -> str:
    by = {r.name: r for r in results}
    s3_ops = sum(
        n
        for p in PHASES
        for op, n in by[DYNAMODB].phase(p).requests.items()
        if op.startswith("s3.")
    )
    offload_note = (
        f"its S3 offload sent {s3_ops} S3 requests"
        if s3_ops
        else f"no payload reached its S3 offload threshold ({S3_OFFLOAD_THRESHOLD // 1024} KiB), "
        "so it made no S3 requests"
    )
    return (
        f"Workload: a 3-node support agent (triage → lookup → respond), {args.turns} turns on "
        f"one thread, then `get_state` and the full `get_state_history`; a "
        f"{args.kb_size:,}-character knowledge base (base64 of fixed-seed random bytes) "
        "is set on turn 1 and never written again. `durability=\"sync\"` (LangGraph's "
        "default is \"async\"; sync stores every step's writes before the next step, so "
        "the counts are deterministic). One moto server on 127.0.0.1 (DynamoDB + S3); "
        f"every HTTP request (retries included) is counted and delayed by a simulated "
        f"{args.rtt_ms:g} ms round trip; InMemorySaver makes none. {DYNAMODB}: "
        "langgraph-checkpoint-aws 1.2.6, `enable_checkpoint_compression=True`, "
        f"`s3_offload_config` set ({offload_note}). {JOURNAL}: defaults (zstd on), "
        "moto item budget. Bytes are HTTP body sizes: DynamoDB's JSON protocol sends "
        "binary attributes base64-encoded (4/3 of the stored size), S3 bodies are raw; "
        "they vary by a few hundred bytes between runs (random ids and version suffixes)."
    )


def command_line(argv: Sequence[str]) -> str:
    return "python -m bench" + (" " + shlex.join(argv) if argv else "")


def readme_block(
    args: argparse.Namespace, argv: Sequence[str], results: Sequence[SaverResult]
) -> str:
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    return "\n".join(
        [
            START_MARK,
            f"_Generated {today} by `{command_line(argv)}`"
            + (" (`make bench`)" if not argv else "")
            + "._",
            "",
            main_table(results, args.turns),
            "",
            *(f"{line}  " for line in ratio_lines(results, args.turns)),
            "",
            settings_line(args, results),
            END_MARK,
        ]
    )


def write_readme(block: str, path: Path = README) -> None:
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START_MARK) + r".*?" + re.escape(END_MARK), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n## Benchmark\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


# -- entry point ----------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--rtt-ms", type=float, default=10.0,
                   help="simulated round trip added to every HTTP request (default 10)")
    p.add_argument("--turns", type=int, default=12, help="invokes on the thread (default 12)")
    p.add_argument("--kb-size", type=int, default=200_000,
                   help="characters in the knowledge_base channel (default 200000)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--write-readme", dest="write_readme", action="store_true", default=True,
                     help="write the table into README.md (the default)")
    out.add_argument("--no-readme", dest="write_readme", action="store_false",
                     help="print only; leave README.md alone")
    args = p.parse_args(argv)
    if args.turns < 1:
        p.error("--turns must be at least 1")
    if args.kb_size < 0 or args.rtt_ms < 0:
        p.error("--kb-size and --rtt-ms must not be negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    kb = knowledge_base(args.kb_size)
    inputs = turn_inputs(args.turns, kb)
    rtt_s = args.rtt_ms / 1000
    factories: list[tuple[str, SaverFactory]] = [
        (JOURNAL, make_journal_saver),
        (DYNAMODB, make_dynamodb_saver),
        (MEMORY, make_memory_saver),
    ]
    results: list[SaverResult] = []
    with LocalDeployment() as dep:
        for name, factory in factories:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results.append(run_saver(name, factory, dep, rtt_s=rtt_s, inputs=inputs))

    verify(results, turns=args.turns, kb=kb)

    print(f"\n$ {command_line(argv)}\n")
    print(settings_line(args, results))
    print()
    print(main_table(results, args.turns))
    print()
    for line in ratio_lines(results, args.turns):
        print(line)
    print(
        f"\nVerified: final state and all {len(results[0].history)} history entries "
        "identical across the three savers.\n"
    )
    print("Per-operation breakdown (HTTP attempts, retries included):\n")
    print(breakdown_table(results))
    if args.write_readme:
        write_readme(readme_block(args, argv, results))
        print(f"\nREADME.md: results written between {START_MARK} and {END_MARK}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
