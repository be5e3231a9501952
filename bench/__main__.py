"""Run the support-agent workload with each checkpointer; report requests, bytes, time.

    python -m bench [--rtt-ms 10] [--turns 12] [--kb-size 200000]
                    [--writers 8] [--load-seconds 10] [--load-turns 4] [--no-load]
                    [--no-docs]

Savers, each with its own table, bucket and boto3 session (a RequestCounter hooked on
each session counts every HTTP attempt and sleeps the simulated round trip):

- JournalSaver on a ``LocalDeployment()`` whose stream runner feeds the real projector
  handler, counted by a ``ProjectorProbe``; the bench drains the stream after each turn,
  so the reads find the projector caught up;
- JournalSaver on a ``LocalDeployment(handlers=False)`` (no projector), then the same
  table projected once and read again;
- langgraph-checkpoint-aws's DynamoDBSaver and InMemorySaver, on the second deployment.

They run the same turns, then their final state and history are compared (any
difference fails the run). Then one 100-record stream event, built from a fresh
``LocalDeployment(handlers=False)``'s stream, is handed to the real projector handler
directly and timed (``batch``: DESIGN §7's "a 100-record batch in well under a second
locally"). Last, a sustained-load phase on a fresh deployment measures the projector's
throughput and lag (``load``). By default the report is written into
docs/benchmark.md between ``<!-- bench:start -->`` and ``<!-- bench:end -->``.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_checkpoint_aws import DynamoDBSaver
from langgraph_checkpoint_aws.checkpoint.dynamodb.storage_strategy import (
    S3_OFFLOAD_THRESHOLD,
)

from bench.batch import BATCH_RECORDS, measure_batch
from bench.counting import RequestCounter
from bench.docpage import BENCH_DOC
from bench.load import sustained_load
from bench.projector import FUNCTION, PHASE, ProjectorProbe
from bench.readme import (
    END_MARK,
    START_MARK,
    command_line,
    readme_block,
    settings_text,
    write_readme,
)
from bench.report import (
    DYNAMODB,
    JOURNAL_AFTER,
    JOURNAL_BARE,
    JOURNAL_LIVE,
    MEMORY,
    PHASES,
    ProjectorRun,
    Results,
    SaverResult,
    agent_table,
    batch_table,
    breakdown_table,
    bytes_read_table,
    load_table,
    projector_table,
    reads_table,
    targets_table,
)
from bench.workload import (
    THREAD_ID,
    build_graph,
    knowledge_base,
    snapshot_key,
    turn_inputs,
)
from checkpoint_journal.local import LocalDeployment
from checkpoint_journal.stream_handlers._projector import Doorbell

# Generous: a turn's records are one batch of well under a second; a timeout means the
# runner or the projector is stuck, and the bench should say so rather than hang.
DRAIN_TIMEOUT_S = 120.0

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


CONFIG: RunnableConfig = {"configurable": {"thread_id": THREAD_ID}}


def read_back(graph: Any, result: SaverResult) -> None:
    """``get_state`` and the full ``get_state_history``, counted, into ``result``."""
    with result.counter.phase(result.prefix + "get_state"):
        state = graph.get_state(CONFIG)
    with result.counter.phase(result.prefix + "history"):
        history = list(graph.get_state_history(CONFIG))
    result.final = snapshot_key(state)
    result.history = [snapshot_key(s) for s in history]


def run_saver(
    name: str,
    factory: SaverFactory,
    dep: LocalDeployment,
    *,
    rtt_s: float,
    inputs: Sequence[Any],
    drain_between_turns: bool = False,
    after: Callable[[Any, SaverResult], None] | None = None,
) -> SaverResult:
    """The turns, then the reads. ``drain_between_turns``: wait for the stream
    consumers after each turn (not timed: the user's pause). ``after(graph, result)``
    runs once the reads are done, before the saver closes."""
    counter = RequestCounter(rtt_s)
    result = SaverResult(name, counter)
    with counter.phase("setup"):
        saver = factory(dep, counter)
        graph = build_graph().compile(checkpointer=saver)
    try:
        for inp in inputs:
            with counter.phase("run"):
                # sync: each step's checkpoint and writes are stored before the next
                # step starts, so every request of a turn is done when invoke returns.
                graph.invoke(inp, CONFIG, durability="sync")
            if drain_between_turns:
                dep.drain(timeout=DRAIN_TIMEOUT_S)
        read_back(graph, result)
        if after is not None:
            after(graph, result)
    finally:
        close = getattr(saver, "close", None)
        if callable(close):
            close()
    return result


def count_objects(dep: LocalDeployment) -> int:
    """Offloaded values in the deployment's bucket (``blobs/``; the archiver's files under
    ``archive/`` are not values), with an uncounted client."""
    s3 = dep.client("s3")
    return sum(
        page.get("KeyCount", 0)
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=dep.bucket, Prefix="blobs/")
    )


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


def dynamodb_s3_note(results: Sequence[SaverResult]) -> str:
    dyn = next(r for r in results if r.name == DYNAMODB)
    s3_ops = sum(
        n for p in PHASES for op, n in dyn.phase(p).requests.items() if op.startswith("s3.")
    )
    if s3_ops:
        return f"its S3 offload sent {s3_ops} S3 requests"
    return (
        f"no payload reached its S3 offload threshold ({S3_OFFLOAD_THRESHOLD // 1024} KiB), "
        "so it made no S3 requests"
    )


# -- entry point ----------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--rtt-ms", type=float, default=10.0,
                   help="simulated round trip added to every HTTP request (default 10)")
    p.add_argument("--turns", type=int, default=12, help="invokes on the thread (default 12)")
    p.add_argument("--kb-size", type=int, default=200_000,
                   help="characters in the knowledge_base channel (default 200000)")
    p.add_argument("--writers", type=int, default=8,
                   help="sustained load: concurrent agent threads (default 8)")
    p.add_argument("--load-seconds", type=float, default=10.0,
                   help="sustained load: how long the writers run (default 10)")
    p.add_argument("--load-turns", type=int, default=4,
                   help="sustained load: turns per conversation (default 4)")
    p.add_argument("--no-load", dest="load", action="store_false",
                   help="skip the sustained-load phase")
    out = p.add_mutually_exclusive_group()
    # --write-readme / --no-readme: the flags' names before the report moved to docs/.
    out.add_argument("--write-docs", "--write-readme", dest="write_readme",
                     action="store_true", default=True,
                     help="write the report into docs/benchmark.md (the default)")
    out.add_argument("--no-docs", "--no-readme", dest="write_readme", action="store_false",
                     help="print only; leave docs/benchmark.md alone")
    args = p.parse_args(argv)
    if args.turns < 1 or args.load_turns < 1 or args.writers < 1:
        p.error("--turns, --load-turns and --writers must be at least 1")
    if args.kb_size < 0 or args.rtt_ms < 0 or args.load_seconds <= 0:
        p.error("--kb-size and --rtt-ms must not be negative, --load-seconds must be positive")
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    kb = knowledge_base(args.kb_size)
    inputs = turn_inputs(args.turns, kb)
    rtt_s = args.rtt_ms / 1000
    results: list[SaverResult] = []

    live_probe = ProjectorProbe(rtt_s)
    with LocalDeployment() as dep:
        live_probe.install(dep)
        source = next(s for s in dep.stream_sources if s.function == FUNCTION)
        window = (
            dep.batching_window
            if dep.batching_window is not None
            else source.maximum_batching_window_in_seconds
        )
        progress(f"running {JOURNAL_LIVE} ...")
        results.append(run_saver(
            JOURNAL_LIVE, make_journal_saver, dep, rtt_s=rtt_s, inputs=inputs,
            drain_between_turns=True,
        ))
        offloaded = count_objects(dep)

    one_pass_probe = ProjectorProbe(rtt_s)
    with LocalDeployment(handlers=False) as dep:
        after: list[SaverResult] = []

        def project_then_read(graph: Any, before: SaverResult) -> None:
            """Project the journal once, then read again with the same saver."""
            projector = one_pass_probe.projector(dep)
            try:
                with one_pass_probe.counter.phase(PHASE):
                    projector.project(Doorbell(THREAD_ID, ""))
            finally:
                projector.close()
            result = SaverResult(JOURNAL_AFTER, before.counter, prefix="after projection: ")
            read_back(graph, result)
            after.append(result)

        progress(f"running {JOURNAL_BARE} ...")
        results.append(run_saver(
            JOURNAL_BARE, make_journal_saver, dep, rtt_s=rtt_s, inputs=inputs,
            after=project_then_read,
        ))
        results.extend(after)
        for name, factory in ((DYNAMODB, make_dynamodb_saver), (MEMORY, make_memory_saver)):
            progress(f"running {name} ...")
            results.append(run_saver(name, factory, dep, rtt_s=rtt_s, inputs=inputs))

    # InMemorySaver is the reference; every other saver, and JournalSaver before and
    # after projection, must read back exactly what it does.
    verify([results[-1], *results[:-1]], turns=args.turns, kb=kb)

    progress(f"one {BATCH_RECORDS}-record stream event, handed to the projector's handler ...")
    batch = measure_batch(kb=kb, rtt_s=rtt_s)

    load = None
    if args.load:
        progress(f"sustained load: {args.writers} writers for {args.load_seconds:g} s, then drain ...")
        load = sustained_load(
            writers=args.writers, duration_s=args.load_seconds,
            turns_per_thread=args.load_turns, kb=kb, rtt_s=rtt_s,
        )

    res = Results(
        args=args, argv=argv, savers=results,
        live=ProjectorRun(live_probe.stats, live_probe.invocations, live_probe.records),
        one_pass=ProjectorRun(one_pass_probe.stats, 0, 0),
        offloaded_objects=offloaded, batching_window_s=float(window),
        batch_size=source.batch_size, batch=batch, load=load,
    )
    note = dynamodb_s3_note(results)
    print(f"\n$ {command_line(argv)}\n")
    for para in settings_text(res, dynamodb_s3_note=note):
        print(para + "\n")
    for table in (
        agent_table(res), reads_table(res), bytes_read_table(res), projector_table(res),
        batch_table(res),
        targets_table(res),
    ):
        print(table + "\n")
    if load is not None:
        print(load_table(load) + "\n")
    print(
        f"Verified: final state and all {len(results[0].history)} history entries identical "
        f"across {', '.join(r.name for r in results)}.\n"
    )
    print("Per-operation breakdown (HTTP attempts, retries included):\n")
    print(breakdown_table(res))
    if args.write_readme:
        write_readme(readme_block(res, dynamodb_s3_note=note))
        print(f"\ndocs/{BENCH_DOC.name}: results written between {START_MARK} and {END_MARK}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
