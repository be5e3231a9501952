"""The long-conversation workload (issue 12): bytes written per turn as a thread grows.

    python -m bench.long [--turns 200] [--rtt-ms 10]
                         [--savers journal,dynamodb,memory,memory-rtt,postgres]
                         [--variants plain,delta] [--budget-s 900] [--no-docs]

A tool-calling chat agent (``bench.long_workload``: per turn a user message, an AI tool
call, a ~1.5 KB tool result and a ~1 KB answer; four super-steps) runs ``--turns`` turns
on one thread, once per state variant (``plain``: ``add_messages``; ``delta``:
``DeltaChannel``), with each saver:

- JournalSaver on a ``LocalDeployment()``, its stream handlers running and counted (the
  projector through ``bench.projector.ProjectorProbe``, the archiver through
  :class:`ArchiverProbe`); the bench drains the stream after each turn (not timed), and
  the handlers' writes of a turn are counted in that turn;
- langgraph-checkpoint-aws's DynamoDBSaver (gzip on, S3 offload), own table and bucket on
  the same endpoint, as in ``python -m bench``;
- InMemorySaver, and InMemorySaver with the simulated round trip added to each call
  (``RoundTripMemorySaver``: the floor of a saver that makes one request per call);
- PostgresSaver on a throwaway local PostgreSQL cluster, if the binaries and the
  packages are there (``bench.long_pg``), else skipped with a note.

Each saver has its own RequestCounter (or SQL counter) that adds the simulated round
trip to each request. The counters are read after every turn, so the report gives the
bytes written per turn by tenth of the run, and the totals at 40 turns from the same
run. Then ``graph.get_state`` is measured. A saver's run stops early, with a note in the
report, once its run time exceeds ``--budget-s``. Every saver's final messages must
equal the workload's expected messages (and so each other's), or the bench fails.
The report is printed; by default it is also written into docs/benchmark.md between
``<!-- long:start -->`` and ``<!-- long:end -->``, with a plot in docs/long-conversation.png.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from bench.__main__ import make_dynamodb_saver
from bench.counting import RequestCounter
from bench.long_pg import (
    SqlCounter,
    create_database,
    local_postgres,
    postgres_missing,
    relation_bytes,
)
from bench.long_report import (
    DYNAMODB,
    JOURNAL,
    MEMORY,
    MEMORY_RTT,
    POSTGRES,
    LongResults,
    SaverRun,
    Totals,
    TurnStat,
    print_report,
    write_outputs,
)
from bench.long_workload import (
    MESSAGES_PER_TURN,
    THREAD_ID,
    VARIANTS,
    Variant,
    build_graph,
    expected_messages,
    turn_input,
)
from bench.projector import ProjectorProbe, function_env
from checkpoint_journal.local import Handler, LocalDeployment
from checkpoint_journal.stream_handlers import archiver as archiver_module

DRAIN_TIMEOUT_S = 300.0
CONFIG: RunnableConfig = {"configurable": {"thread_id": THREAD_ID}}
SAVER_KEYS = {"journal": JOURNAL, "dynamodb": DYNAMODB, "memory": MEMORY,
              "memory-rtt": MEMORY_RTT, "postgres": POSTGRES}
ARCHIVER = "ArchiverFunction"

Meter = Callable[[], Totals]


# -- the archiver, counted ------------------------------------------------------------------


class ArchiverProbe:
    """The real archiver handler, with its requests counted (as ProjectorProbe does for
    the projector): built from the function's environment, its S3 and DynamoDB clients
    hooked, then handed to ``make_handler``."""

    def __init__(self, rtt_s: float) -> None:
        self.counter = RequestCounter(rtt_s)

    def install(self, dep: LocalDeployment) -> None:
        sources = [s for s in dep.stream_sources if s.function == ARCHIVER]
        if not sources:
            return
        env = {**sources[0].environment, **dep.aws_env()}

        def wrap(_runner_copy: Handler) -> Handler:
            archiver = archiver_module.make_archiver(env)
            self.counter.attach_client(archiver.s3)
            keys_client = getattr(archiver.keys, "client", None)
            if keys_client is not None:
                self.counter.attach_client(keys_client)
            return archiver_module.make_handler(env, archiver)

        dep.runner.set_handler_wrapper(ARCHIVER, wrap)


# -- meters -----------------------------------------------------------------------------------


def counter_totals(
    saver: Sequence[RequestCounter], handlers: Sequence[RequestCounter] = (),
    projector: RequestCounter | None = None,
) -> Totals:
    """Everything the counters saw, over all their phases."""
    out = Totals()
    for c in [*saver, *handlers]:
        for st in list(c.phases.values()):
            out.requests += st.total_requests
            out.bytes_written += st.bytes_written
            out.bytes_read += st.bytes_read
            out.s3_gets += st.requests.get("s3.GetObject", 0)
            if c in handlers:
                out.handler_requests += st.total_requests
                if c is projector:
                    out.projector_bytes += st.bytes_written
                else:
                    out.archiver_bytes += st.bytes_written
    return out


@dataclass
class Setup:
    """A saver ready to run, and how to read its counters."""

    saver: BaseCheckpointSaver[Any]
    meter: Meter
    after_turn: Callable[[], None] = lambda: None
    """Called after each turn, outside the timed invoke (the stream drain)."""
    close: Callable[[], None] = lambda: None
    size_note: Callable[[], str] = lambda: ""


def journal_setup(dep: LocalDeployment, rtt_s: float) -> Setup:
    projector, archiver = ProjectorProbe(rtt_s), ArchiverProbe(rtt_s)
    projector.install(dep)
    archiver.install(dep)
    counter = RequestCounter(rtt_s)
    session = dep.session()
    counter.attach(session)
    saver = dep.saver(boto3_session=session)
    handlers = [projector.counter, archiver.counter]
    return Setup(
        saver,
        lambda: counter_totals([counter], handlers, projector.counter),
        after_turn=lambda: dep.drain(timeout=DRAIN_TIMEOUT_S),
        close=saver.close,
    )


def dynamodb_setup(dep: LocalDeployment, rtt_s: float) -> Setup:
    counter = RequestCounter(rtt_s)
    saver = make_dynamodb_saver(dep, counter)
    return Setup(saver, lambda: counter_totals([counter]))


def memory_setup() -> Setup:
    return Setup(InMemorySaver(), Totals)


class RoundTripMemorySaver(InMemorySaver):
    """InMemorySaver with the simulated round trip added to each checkpointer call, as
    if every call were one request to a store that costs nothing else: the floor of any
    saver that makes one request per call. Its delta / plain run time shows what the
    graph runtime's own ordering costs under latency (LangGraph saves a checkpoint
    only after the ``put_writes`` of the DeltaChannel writes that produced it)."""

    def __init__(self, rtt_s: float) -> None:
        super().__init__()
        self.rtt_s = rtt_s
        self.calls = 0
        self._lock = threading.Lock()

    def _trip(self) -> None:
        with self._lock:
            self.calls += 1
        time.sleep(self.rtt_s)

    def get_tuple(self, config: RunnableConfig) -> Any:
        self._trip()
        return super().get_tuple(config)

    def list(self, *args: Any, **kwargs: Any) -> Any:
        self._trip()
        return super().list(*args, **kwargs)

    def put(self, *args: Any, **kwargs: Any) -> Any:
        self._trip()
        return super().put(*args, **kwargs)

    def put_writes(self, *args: Any, **kwargs: Any) -> None:
        self._trip()
        super().put_writes(*args, **kwargs)

    def get_delta_channel_history(self, *args: Any, **kwargs: Any) -> Any:
        self._trip()
        return super().get_delta_channel_history(*args, **kwargs)


def memory_rtt_setup(rtt_s: float) -> Setup:
    saver = RoundTripMemorySaver(rtt_s)
    return Setup(saver, lambda: Totals(requests=saver.calls))


def postgres_setup(conninfo: str, variant: Variant, rtt_s: float) -> Setup:
    from langgraph.checkpoint.postgres import PostgresSaver

    db = create_database(conninfo, f"long_{variant}")
    counter = SqlCounter(rtt_s)
    conn = counter.connect(db)
    saver = PostgresSaver(conn)
    saver.setup()
    base = counter.stats.total_statements, counter.stats.bytes_written  # not the run's

    def meter() -> Totals:
        st = counter.stats
        return Totals(requests=st.total_statements - base[0],
                      bytes_written=st.bytes_written - base[1])

    def size_note() -> str:
        return f"{relation_bytes(db):,} bytes of tables and indexes (pg_total_relation_size)"

    return Setup(saver, meter, close=conn.close, size_note=size_note)


# -- one run ------------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_saver(name: str, variant: Variant, setup: Setup, *, turns: int,
              budget_s: float) -> SaverRun:
    """``turns`` turns (fewer if the run time exceeds ``budget_s``), then get_state."""
    graph = build_graph(variant).compile(checkpointer=setup.saver)
    run = SaverRun(name=name, variant=variant, planned_turns=turns)
    try:
        for t in range(turns):
            before = setup.meter()
            start = time.perf_counter()
            # sync: every step is stored before the next, as in python -m bench.
            graph.invoke(turn_input(t), CONFIG, durability="sync")
            seconds = time.perf_counter() - start
            setup.after_turn()
            run.turns.append(TurnStat(setup.meter() - before, seconds))
            if (t + 1) % 20 == 0 or t + 1 == turns:
                progress(f"  {name} ({variant}): turn {t + 1}/{turns}, "
                         f"{run.run_s:.1f} s of run time")
            if run.run_s > budget_s and t + 1 < turns:
                run.stopped = (f"stopped after {t + 1} of {turns} turns: its run time "
                               f"({run.run_s:.0f} s) exceeded the budget ({budget_s:g} s)")
                progress(f"  {name} ({variant}): {run.stopped}")
                break
        before = setup.meter()
        start = time.perf_counter()
        state = graph.get_state(CONFIG)
        run.get_state_s = time.perf_counter() - start
        run.get_state = setup.meter() - before
        run.messages = list(state.values.get("messages", []))
        run.size_note = setup.size_note()
    finally:
        setup.close()
    return run


def verify(runs: Sequence[SaverRun]) -> None:
    """Each saver's final messages are the expected ones for the turns it ran (so all
    savers that ran every turn end in the same state), or AssertionError."""
    for run in runs:
        want = expected_messages(len(run.turns))
        if run.messages != want:
            got = run.messages
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                         min(len(got), len(want)))
            raise AssertionError(
                f"{run.name} ({run.variant}): final state differs from the expected one after "
                f"{len(run.turns)} turns: {len(got)} messages, {len(want)} expected; first "
                f"difference at message {first}"
            )
    for variant in {r.variant for r in runs}:
        full = [r for r in runs if r.variant == variant and r.stopped is None]
        for other in full[1:]:
            if other.messages != full[0].messages:
                raise AssertionError(
                    f"{variant}: final state differs between {full[0].name} and {other.name}")


# -- entry point ----------------------------------------------------------------------------


def _csv(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"choose from {', '.join(allowed)} (comma-separated), not {text!r}")
        return items
    return parse


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.long",
                                description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--turns", type=int, default=200, help="turns on the thread (default 200)")
    p.add_argument("--rtt-ms", type=float, default=10.0,
                   help="simulated round trip added to every request (default 10)")
    p.add_argument("--savers", type=_csv(list(SAVER_KEYS)), default=list(SAVER_KEYS),
                   help="comma-separated: journal,dynamodb,memory,memory-rtt,postgres "
                        "(default all)")
    p.add_argument("--variants", type=_csv(list(VARIANTS)), default=list(VARIANTS),
                   help="comma-separated: plain,delta (default both)")
    p.add_argument("--backend", choices=["moto", "dynamodb-local"], default="moto",
                   help="the local endpoint every saver runs on (default moto)")
    p.add_argument("--budget-s", type=float, default=900.0,
                   help="stop a saver's run once its run time exceeds this (default 900)")
    out = p.add_mutually_exclusive_group()
    # --write-readme / --no-readme: the flags' names before the report moved to docs/.
    out.add_argument("--write-docs", "--write-readme", dest="write_readme",
                     action="store_true", default=True,
                     help="write the report into docs/benchmark.md and the plot (the default)")
    out.add_argument("--no-docs", "--no-readme", dest="write_readme", action="store_false",
                     help="print only; leave docs/ alone")
    args = p.parse_args(argv)
    if args.turns < 1 or args.rtt_ms < 0 or args.budget_s <= 0:
        p.error("--turns must be at least 1, --rtt-ms not negative, --budget-s positive")
    return args


@contextmanager
def maybe_postgres(wanted: bool, notes: list[str]) -> Iterator[str | None]:
    """A throwaway cluster's connection string, or None (with a note) if unavailable."""
    if not wanted:
        yield None
        return
    missing = postgres_missing()
    if missing is not None:
        notes.append(f"{POSTGRES} skipped: {missing}.")
        progress(f"{POSTGRES} skipped: {missing}")
        yield None
        return
    with local_postgres() as conninfo:
        yield conninfo


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    # SIGTERM as an exception, so the PostgreSQL cluster and the deployments are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rtt_s = args.rtt_ms / 1000
    runs: list[SaverRun] = []
    notes: list[str] = []
    with ExitStack() as stack:
        conninfo = stack.enter_context(maybe_postgres("postgres" in args.savers, notes))
        for variant in args.variants:
            with LocalDeployment(backend=args.backend) as dep:
                factories: dict[str, Callable[[], Setup]] = {
                    "journal": lambda: journal_setup(dep, rtt_s),
                    "dynamodb": lambda: dynamodb_setup(dep, rtt_s),
                    "memory": memory_setup,
                    "memory-rtt": lambda: memory_rtt_setup(rtt_s),
                }
                if conninfo is not None:
                    pg = conninfo
                    factories["postgres"] = lambda: postgres_setup(pg, variant, rtt_s)
                for key in SAVER_KEYS:
                    if key not in args.savers or key not in factories:
                        continue
                    name = SAVER_KEYS[key]
                    progress(f"running {name} ({variant}, {args.turns} turns) ...")
                    runs.append(run_saver(name, variant, factories[key](),
                                          turns=args.turns, budget_s=args.budget_s))
    verify(runs)
    res = LongResults(args=args, argv=argv, runs=runs, notes=notes)
    print_report(res)
    print(
        f"Verified: every saver's final state has the expected "
        f"{MESSAGES_PER_TURN} messages per turn it ran, identical across savers.\n"
    )
    if args.write_readme:
        write_outputs(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
