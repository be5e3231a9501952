"""Projector throughput and lag under sustained load.

On a fresh LocalDeployment (moto, the stream runner with template.yaml's event source
mapping, the real projector handler counted by a ``ProjectorProbe``), ``writers`` agent
threads each run the support-agent workload (``workload``) for ``duration_s`` seconds,
one conversation of ``turns_per_thread`` turns after another, each on a new thread id.
Every acknowledged ``put`` is a lag sample: a poller reads the view key of each pending
checkpoint (``_keys.view_sk`` in ``_keys.thread_pk(thread)``) with strongly consistent
BatchGetItem calls (the batched form of GetItem: up to 100 keys a call, so polling
keeps up with hundreds of pending checkpoints) and notes when the view item (``kind``
"V") first exists. Lag is that moment minus the put's return. After ``duration_s`` the
writers finish the turn they are in, then ``drain`` waits for the projector to catch up.

The poller's client is not counted and adds no round trip; the writers' and the
projector's requests each sleep the simulated round trip.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata

from bench.counting import PhaseStats, RequestCounter
from bench.projector import FUNCTION, ProjectorProbe
from bench.workload import build_graph, turn_inputs
from checkpoint_journal._core import keys as _keys
from checkpoint_journal.local import ConsumerStatus, LocalDeployment
from checkpoint_journal.saver import JournalSaver

__all__ = ["LoadResult", "quantile", "sustained_load"]

PHASE = "load"
# Between two poll passes that found nothing new: short against the lags measured
# (hundreds of milliseconds), long enough not to starve the writers of the GIL.
_POLL_PAUSE_S = 0.01
# BatchGetItem's maximum number of keys per call.
_BATCH_GET_KEYS = 100


class AckedJournalSaver(JournalSaver):
    """A JournalSaver that reports each checkpoint it has durably written."""

    def __init__(self, table_name: str, *, acks: AckLog, **kw: Any) -> None:
        super().__init__(table_name, **kw)
        self._acks = acks

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        stored = super().put(config, checkpoint, metadata, new_versions)
        conf = stored["configurable"]
        self._acks.add(conf["thread_id"], conf.get("checkpoint_ns", ""), conf["checkpoint_id"])
        return stored


@dataclass
class AckLog:
    """Acknowledged puts waiting for their view, and the lags measured (thread-safe)."""

    start: float = field(default_factory=time.monotonic)
    pending: dict[tuple[str, str], float] = field(default_factory=dict)
    """(PK, view SK) -> when the put returned (monotonic)."""
    lags: list[tuple[float, float]] = field(default_factory=list)
    """(seconds from the start to the put's return, lag in seconds)."""
    acked: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, thread_id: str, ns: str, checkpoint_id: str) -> None:
        key = (_keys.thread_pk(thread_id), _keys.view_sk(ns, checkpoint_id))
        now = time.monotonic()
        with self._lock:
            self.pending[key] = now
            self.acked += 1

    def waiting(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.pending)

    def seen(self, keys: Sequence[tuple[str, str]], at: float) -> None:
        with self._lock:
            for key in keys:
                acked = self.pending.pop(key, None)
                if acked is not None:
                    self.lags.append((acked - self.start, at - acked))


class LagPoller:
    """Polls the view keys of acknowledged puts until stopped (its own thread)."""

    def __init__(self, ddb: Any, table_name: str, acks: AckLog) -> None:
        self._ddb = ddb
        self._table = table_name
        self._acks = acks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-lag-poller", daemon=True)
        self.passes = 0
        self.busy_s = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.poll_once()  # the views written after the last pass (drain returned before)

    @property
    def mean_pass_s(self) -> float:
        """Mean time of one pass over every pending key (the lag's resolution)."""
        return self.busy_s / self.passes if self.passes else 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.poll_once():
                self._stop.wait(_POLL_PAUSE_S)

    def poll_once(self) -> int:
        """One pass; returns how many views it found."""
        waiting = self._acks.waiting()
        if not waiting:
            return 0
        started = time.monotonic()
        found = 0
        for i in range(0, len(waiting), _BATCH_GET_KEYS):
            keys = waiting[i : i + _BATCH_GET_KEYS]
            response = self._ddb.batch_get_item(
                RequestItems={
                    self._table: {
                        "Keys": [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in keys],
                        "ConsistentRead": True,
                        "ProjectionExpression": "#pk, #sk, #kind",
                        "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK", "#kind": "kind"},
                    }
                }
            )
            at = time.monotonic()
            views = [
                (item["PK"]["S"], item["SK"]["S"])
                for item in response.get("Responses", {}).get(self._table, [])
                if item.get("kind", {}).get("S") == _keys.KIND_VIEW
            ]
            self._acks.seen(views, at)
            found += len(views)
        self.busy_s += time.monotonic() - started
        self.passes += 1
        return found


@dataclass
class LoadResult:
    writers: int
    duration_s: float
    """Seconds the writers ran (from the start until the last one finished its turn)."""
    turns_per_thread: int
    kb_size: int
    batching_window_s: float
    batch_size: int
    parallelization_factor: int
    conversations: int
    turns: int
    checkpoints: int
    """Acknowledged puts (each one a lag sample)."""
    writer_stats: PhaseStats
    probe: ProjectorProbe
    drain_s: float
    """How long ``drain`` took after the writers stopped (the backlog left), or the
    timeout when it gave up."""
    drained: bool
    """False: the projector had not caught up ``drain_timeout_s`` after the writers
    stopped (the puts still without a view are ``unseen``)."""
    lags: list[tuple[float, float]]
    unseen: int
    """Acknowledged puts whose view never appeared (should be 0)."""
    poll_pass_s: float
    status: ConsumerStatus

    def lag_values(self, lo: float = 0.0, hi: float = 1.0) -> list[float]:
        """Sorted lags of the puts acknowledged in [lo, hi) of the span from the first
        acknowledgement to the last (fractions of it; ``hi`` 1 includes the last)."""
        if not self.lags:
            return []
        first, last = self.lags[0][0], self.lags[-1][0]
        a, b = first + lo * (last - first), first + hi * (last - first)
        return sorted(lag for at, lag in self.lags if a <= at and (at < b or hi >= 1.0))


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank) of sorted ``values``; NaN when there are none."""
    if not values:
        return float("nan")
    rank = math.ceil(q * len(values))  # nearest rank: the smallest value with >= q below
    return values[max(0, min(len(values), rank) - 1)]


def _writer(
    dep: LocalDeployment,
    counter: RequestCounter,
    acks: AckLog,
    *,
    index: int,
    inputs: Sequence[Any],
    deadline: float,
    totals: dict[str, int],
    lock: threading.Lock,
    errors: list[BaseException],
) -> None:
    try:
        session = dep.session()
        counter.attach(session)
        # The keyword arguments LocalDeployment.saver() gives a JournalSaver on moto.
        saver = AckedJournalSaver(
            dep.table_name,
            acks=acks,
            boto3_session=session,
            endpoint_url=dep.endpoint_url,
            s3_endpoint_url=dep.s3_endpoint_url,
            bucket=dep.bucket,
        )
        graph = build_graph().compile(checkpointer=saver)
        conversation = 0
        try:
            while time.monotonic() < deadline:
                config: RunnableConfig = {
                    "configurable": {"thread_id": f"load-{index}-{conversation}"}
                }
                turns = 0
                for inp in inputs:
                    if time.monotonic() >= deadline:
                        break
                    graph.invoke(inp, config, durability="sync")
                    turns += 1
                conversation += 1
                with lock:
                    totals["conversations"] += 1
                    totals["turns"] += turns
        finally:
            saver.close()
    except BaseException as e:  # re-raised by the main thread
        errors.append(e)


def sustained_load(
    *,
    writers: int,
    duration_s: float,
    turns_per_thread: int,
    kb: str,
    rtt_s: float,
    drain_timeout_s: float = 120.0,
) -> LoadResult:
    """Run the load phase on a fresh deployment (see the module docstring)."""
    probe = ProjectorProbe(rtt_s)
    counter = RequestCounter(rtt_s)
    inputs = turn_inputs(turns_per_thread, kb)
    with LocalDeployment() as dep:
        probe.install(dep)
        source = next(s for s in dep.stream_sources if s.function == FUNCTION)
        window = (
            dep.batching_window
            if dep.batching_window is not None
            else source.maximum_batching_window_in_seconds
        )
        acks = AckLog()
        poller = LagPoller(dep.client("dynamodb"), dep.table_name, acks)
        totals = {"conversations": 0, "turns": 0}
        lock = threading.Lock()
        errors: list[BaseException] = []
        with counter.phase(PHASE):
            acks.start = time.monotonic()
            deadline = acks.start + duration_s
            poller.start()
            threads = [
                threading.Thread(
                    target=_writer,
                    name=f"bench-writer-{i}",
                    args=(dep, counter, acks),
                    kwargs={
                        "index": i, "inputs": inputs, "deadline": deadline,
                        "totals": totals, "lock": lock, "errors": errors,
                    },
                )
                for i in range(writers)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        ran = time.monotonic() - acks.start
        drain_start = time.monotonic()
        try:
            dep.drain(timeout=drain_timeout_s)
            drained = True
        except TimeoutError:
            drained = False  # reported: the backlog outlasted the timeout
        drain_s = time.monotonic() - drain_start
        poller.stop()
        if errors:
            raise errors[0]
        status = next(s for s in dep.runner.status() if s.mapping.startswith(FUNCTION + "/"))
    return LoadResult(
        writers=writers,
        duration_s=ran,
        turns_per_thread=turns_per_thread,
        kb_size=len(kb),
        batching_window_s=float(window),
        batch_size=source.batch_size,
        parallelization_factor=source.parallelization_factor,
        conversations=totals["conversations"],
        turns=totals["turns"],
        checkpoints=acks.acked,
        writer_stats=counter.stats(PHASE),
        probe=probe,
        drain_s=drain_s,
        drained=drained,
        lags=sorted(acks.lags),
        unseen=len(acks.pending),
        poll_pass_s=poller.mean_pass_s,
        status=status,
    )


def summarize(result: LoadResult) -> dict[str, float]:
    """The numbers the report prints (seconds unless named otherwise)."""
    every = result.lag_values()
    first = result.lag_values(0.0, 0.25)
    last = result.lag_values(0.75, 1.0)
    p = result.probe
    return {
        "busy_s": p.stats.wall_s,
        "records_per_busy_s": p.records / p.stats.wall_s if p.stats.wall_s else 0.0,
        "records_per_s_offered": p.records / result.duration_s if result.duration_s else 0.0,
        "utilisation": p.stats.wall_s / (result.duration_s + result.drain_s),
        "batch_mean": p.records / p.invocations if p.invocations else 0.0,
        "invocation_p50_s": quantile(sorted(p.durations), 0.5),
        "invocation_max_s": max(p.durations, default=0.0),
        "lag_p50": quantile(every, 0.5),
        "lag_p95": quantile(every, 0.95),
        "lag_max": every[-1] if every else float("nan"),
        "first_p50": quantile(first, 0.5),
        "first_p95": quantile(first, 0.95),
        "last_p50": quantile(last, 0.5),
        "last_p95": quantile(last, 0.95),
    }
