"""One 100-record stream batch, delivered straight to the projector's real handler.

DESIGN §7 budgets "a 100-record batch in well under a second locally". The stream
runner's figures (``projector``, ``load``) mix batches of other sizes with the simulated
round trip, so this measures the budget itself:

1. **Data.** A fresh ``LocalDeployment(handlers=False)`` (moto, no stream runner), and
   an uncounted JournalSaver without simulated round trips. First the history:
   ``HISTORY_THREADS`` ongoing conversations of ``HISTORY_TURNS`` turns each (the
   knowledge base on ``HISTORY_WITH_KB`` of them), projected by the projector's logic as
   a caught-up projector leaves them (views, heads, index entries, offloaded values).
   Then one turn on each of the batch's threads, round-robin as concurrent users write:
   the next turn of every ongoing conversation and the first turn of ``NEW_THREADS``
   new ones (the knowledge base on ``NEW_WITH_KB`` of them: values to offload).
2. **Event.** The table's stream, every shard read from TRIM_HORIZON
   (``dynamodbstreams``), each record made Lambda-shaped by the local runner's own
   ``to_stream_record`` and kept if the template's FilterCriteria pass it (the runner's
   ``compile_criteria``). The event is the first ``BATCH_RECORDS`` such records written
   after the history, in shard order: the next batch an event source mapping of
   BatchSize 100 delivers. It is built by the runner's ``fresh_event`` and must fit in
   Lambda's 6 MB payload (``batch_length``), or the bench fails.
3. **A fresh copy.** The table is put back to the moment the 100th record was written:
   the items inserted after it (the rest of the last thread's turn) are deleted, so the
   handler has exactly the event's records to fold (it projects whole namespaces, and
   would otherwise also fold items the event does not name). That state of the table
   and the bucket is snapshotted; before each measured first delivery both are restored
   to it and compared item by item and object by object with the snapshot.
4. **Invocations** of the real handler, ``make_handler(env, make_projector(env))`` with
   the function's environment (template.yaml's variables: TABLE_NAME, BUCKET_NAME, ...,
   then ``dep.aws_env()``), in this process, with a Lambda context as the runner builds
   it; each timed from the call to its return (the event is built beforehand, as Lambda
   hands over a parsed event). A ``RequestCounter`` hooked on the projector's clients (as
   ``ProjectorProbe`` does) counts every request. Without a simulated round trip: the
   handler's first call, on the fresh copy; a repeat delivery of the same event (every
   view current: the "already projected" case); then ``WARM_RUNS`` first deliveries by
   the same, now warm, handler, each on a fresh copy. With the simulated round trip on
   every projector request: a second handler, warmed up by a repeat delivery, then a
   repeat delivery and a first delivery on a fresh copy. After every first delivery the
   bench checks that every checkpoint event in the table has its view item, and every
   invocation must report no failed record.

moto answers from threads of this same process (one GIL), so the server's own work is
in every figure too.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.counting import PhaseStats, RequestCounter
from bench.projector import FUNCTION, function_env
from bench.workload import SupportState, build_graph, turn_inputs
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.store import DynamoJournalStore
from checkpoint_journal.local import LocalDeployment, StreamEventSource
from checkpoint_journal.local._events import (
    MAX_PAYLOAD_BYTES,
    LambdaContext,
    StreamRecord,
    batch_length,
    fresh_event,
    function_arn,
    to_stream_record,
)
from checkpoint_journal.local._filters import compile_criteria
from checkpoint_journal.stream_handlers import projector as projector_module
from checkpoint_journal.stream_handlers._projector import Doorbell, Projector

__all__ = [
    "BATCH_RECORDS",
    "BatchResult",
    "Invocation",
    "kinds_text",
    "measure_batch",
]

#: Records in the event (DESIGN §7's batch; template.yaml's BatchSize is 100 too).
BATCH_RECORDS = 100
#: Ongoing conversations: turns written and projected before the batch.
HISTORY_THREADS = 6
HISTORY_TURNS = 2
HISTORY_WITH_KB = 3
#: Conversations whose first turn is in the batch.
NEW_THREADS = 6
NEW_WITH_KB = 3
#: Warm first deliveries without a simulated round trip (each on a fresh copy).
WARM_RUNS = 3


@dataclass
class Invocation:
    """One call of the handler on the event."""

    seconds: float
    """From the call to its return."""
    stats: PhaseStats
    """Requests and bytes of this call."""
    rtt_s: float
    """Simulated round trip added to each of its requests."""


@dataclass
class BatchResult:
    records: int
    """Records in the event (``BATCH_RECORDS``)."""
    event_bytes: int
    """The event's JSON size."""
    record_kinds: Counter[str]
    """The event's records by ``eventName`` and item kind (``INSERT C``, ...)."""
    namespaces: int
    """Namespaces the event names (each projected once by the handler)."""
    new_namespaces: int
    """Of those, the ones without any projected checkpoint before the batch."""
    checkpoints_to_project: int
    """Checkpoint events in the fresh copy without a view item."""
    history_threads: int
    history_turns: int
    history_with_kb: int
    new_threads: int
    new_with_kb: int
    kb_size: int
    written: int
    """Records the batch's turns wrote that the filter passes (>= ``records``)."""
    trimmed_items: int
    """Items inserted after the 100th record, deleted for the fresh copy."""
    table_items: int
    """Items in the fresh copy."""
    objects: int
    """Objects in the bucket in the fresh copy."""
    shards: int
    first_cold: Invocation
    """First delivery, the handler's first call, no round trip."""
    first_warm: list[Invocation]
    """First deliveries by the same handler, each on a fresh copy, no round trip."""
    first_rtt: Invocation
    """First delivery on a fresh copy, simulated round trip on every request."""
    repeat: Invocation
    """Repeat delivery (every view current), no round trip."""
    repeat_rtt: Invocation
    """Repeat delivery, simulated round trip (the handler's second call)."""
    warm_up_rtt: Invocation
    """The round-trip handler's first call (a repeat delivery, to warm it up)."""
    restore_s: list[float] = field(default_factory=list)
    """Seconds each restore of the fresh copy took (not part of any measurement)."""

    @property
    def no_rtt_first(self) -> list[Invocation]:
        """Every first delivery without a simulated round trip (cold, then warm)."""
        return [self.first_cold, *self.first_warm]

    @property
    def slowest_s(self) -> float:
        """The slowest first delivery without a simulated round trip."""
        return max(i.seconds for i in self.no_rtt_first)


# -- the table: snapshots and restores ------------------------------------------------


Key = tuple[str, str]


@dataclass
class Snapshot:
    items: dict[Key, dict[str, Any]]
    objects: dict[str, bytes]


def take_snapshot(dep: LocalDeployment) -> Snapshot:
    """Every item of the table (strongly consistent Scan) and every object of the bucket."""
    ddb, s3 = dep.client("dynamodb"), dep.client("s3")
    items: dict[Key, dict[str, Any]] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=dep.table_name, ConsistentRead=True):
        for item in page.get("Items", []):
            items[(item["PK"]["S"], item["SK"]["S"])] = item
    objects: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=dep.bucket):
        for obj in page.get("Contents", []):
            objects[obj["Key"]] = s3.get_object(Bucket=dep.bucket, Key=obj["Key"])["Body"].read()
    return Snapshot(items, objects)


def restore(dep: LocalDeployment, target: Snapshot) -> None:
    """Make the table and the bucket hold exactly ``target``, then check that they do."""
    now = take_snapshot(dep)
    store = DynamoJournalStore(dep.client("dynamodb"), dep.table_name)
    try:
        store.delete_keys([k for k in now.items if k not in target.items])
        store.put_many([i for k, i in target.items.items() if now.items.get(k) != i])
    finally:
        store.close()
    s3 = dep.client("s3")
    for key in now.objects.keys() - target.objects.keys():
        s3.delete_object(Bucket=dep.bucket, Key=key)
    for key, body in target.objects.items():
        if now.objects.get(key) != body:
            s3.put_object(Bucket=dep.bucket, Key=key, Body=body)
    check = take_snapshot(dep)
    if check.items != target.items or check.objects != target.objects:
        raise RuntimeError("the fresh copy of the batch's data could not be restored")


def missing_views(snapshot: Snapshot) -> list[Key]:
    """Checkpoint events without their view item."""
    missing = []
    for (pk, sk), item in snapshot.items.items():
        if item.get("kind", {}).get("S") != _keys.KIND_CHECKPOINT:
            continue
        key = _keys.parse_sk(sk)
        if (pk, _keys.view_sk(key.checkpoint_ns, key.checkpoint_id)) not in snapshot.items:
            missing.append((pk, sk))
    return missing


# -- the stream -----------------------------------------------------------------------


def read_stream(dep: LocalDeployment) -> list[tuple[str, list[StreamRecord]]]:
    """Every record of every shard of the table's stream, from TRIM_HORIZON, Lambda-shaped
    (the local runner's ``to_stream_record``), by shard in DescribeStream's order."""
    ddb, streams = dep.client("dynamodb"), dep.client("dynamodbstreams")
    arn = ddb.describe_table(TableName=dep.table_name)["Table"]["LatestStreamArn"]
    shard_ids: list[str] = []
    kwargs: dict[str, Any] = {"StreamArn": arn}
    while True:
        description = streams.describe_stream(**kwargs)["StreamDescription"]
        shard_ids += [s["ShardId"] for s in description.get("Shards", [])]
        last = description.get("LastEvaluatedShardId")
        if not last:
            break
        kwargs["ExclusiveStartShardId"] = last
    out: list[tuple[str, list[StreamRecord]]] = []
    for shard_id in shard_ids:
        iterator: str | None = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records: list[StreamRecord] = []
        while iterator:
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            raw = response.get("Records", [])
            records += [
                to_stream_record(r, region=dep.region_name, stream_arn=arn, shard_id=shard_id)
                for r in raw
            ]
            if not raw:  # an open shard always has a next iterator: stop at its end
                break
            iterator = response.get("NextShardIterator")
        out.append((shard_id, records))
    return out


def record_key(record: StreamRecord) -> Key:
    keys = record.record["dynamodb"]["Keys"]
    return keys["PK"]["S"], keys["SK"]["S"]


def record_kind(record: StreamRecord) -> str:
    body = record.record["dynamodb"]
    kind = body.get("NewImage", body.get("OldImage", {})).get("kind", {}).get("S", "?")
    return f"{record.record['eventName']} {kind}"


# -- the handler ----------------------------------------------------------------------


class CountedHandler:
    """Builds ``make_handler(env, projector)`` on a ``make_projector(env)`` with the
    function's environment, a ``RequestCounter`` hooked on the projector's clients (as
    ``ProjectorProbe`` does), and calls it as the runner would."""

    def __init__(self, dep: LocalDeployment, source: StreamEventSource) -> None:
        self._dep = dep
        self._source = source
        self._env = function_env(dep)
        self._projectors: list[Projector] = []

    def build(self, rtt_s: float) -> Callable[[Sequence[StreamRecord]], Invocation]:
        """A handler whose every request sleeps ``rtt_s``; call it with the records."""
        projector = projector_module.make_projector(self._env)
        self._projectors.append(projector)
        counter = RequestCounter(rtt_s)
        counter.attach_client(projector.ddb)
        if projector.s3 is not None:
            counter.attach_client(projector.s3)
        handler = projector_module.make_handler(self._env, projector)
        name = self._source.function_name or self._source.function
        arn = function_arn(self._dep.region_name, name)
        calls = 0

        def invoke(records: Sequence[StreamRecord]) -> Invocation:
            nonlocal calls
            calls += 1
            context = LambdaContext(
                function_name=name,
                invoked_function_arn=arn,
                memory_limit_in_mb=self._source.memory_size,
                aws_request_id=str(uuid.uuid4()),
                timeout_seconds=self._source.timeout,
            )
            event = fresh_event(records)  # Lambda hands over a parsed event: not timed
            with counter.phase(f"call {calls}") as stats:
                start = time.perf_counter()
                response = handler(event, context)
                seconds = time.perf_counter() - start
            failures = (response or {}).get("batchItemFailures") or []
            if failures:
                raise RuntimeError(
                    f"the projector reported {len(failures)} failed record(s) of the "
                    f"{len(records)}-record batch"
                )
            return Invocation(seconds, stats, rtt_s)

        return invoke

    def close(self) -> None:
        for projector in self._projectors:
            projector.close()


# -- the measurement ------------------------------------------------------------------


def _write(dep: LocalDeployment, plan: Sequence[tuple[str, SupportState]]) -> None:
    """The agent's turns, in order, each on its thread (uncounted, no round trip)."""
    saver = dep.saver()
    try:
        graph = build_graph().compile(checkpointer=saver)
        for thread_id, inp in plan:
            graph.invoke(inp, {"configurable": {"thread_id": thread_id}}, durability="sync")
    finally:
        saver.close()


@dataclass
class Prepared:
    """The event's records and the fresh copy of the data they describe."""

    source: StreamEventSource
    batch: list[StreamRecord]
    fresh_copy: Snapshot
    written: int
    trimmed: int
    shards: int
    namespaces: int
    new_namespaces: int
    to_project: int


def prepare(dep: LocalDeployment, kb: str) -> Prepared:
    """Write the history and the batch's turns on ``dep``, build the event's records and
    trim the table to the fresh copy (steps 1 to 3 of the module docstring)."""
    ongoing = [f"ongoing-{i}" for i in range(HISTORY_THREADS)]
    new = [f"new-{i}" for i in range(NEW_THREADS)]
    history_inputs = {
        t: turn_inputs(HISTORY_TURNS + 1, kb if i < HISTORY_WITH_KB else "")
        for i, t in enumerate(ongoing)
    }
    new_inputs = {t: turn_inputs(1, kb if i < NEW_WITH_KB else "") for i, t in enumerate(new)}
    source = next(s for s in dep.stream_sources if s.function == FUNCTION)
    matches = compile_criteria(source.filter_patterns)

    # History: the ongoing conversations, round-robin, then projected.
    _write(dep, [
        (t, history_inputs[t][turn]) for turn in range(HISTORY_TURNS) for t in ongoing
    ])
    projector = projector_module.make_projector(function_env(dep))
    try:
        for t in ongoing:
            projector.project(Doorbell(t, ""))
    finally:
        projector.close()
    seen = {shard: len(records) for shard, records in read_stream(dep)}

    # The batch: one turn per thread, new and ongoing alternating.
    order = [t for pair in zip(new, ongoing) for t in pair]
    order += new[len(ongoing):] + ongoing[len(new):]
    _write(dep, [
        (t, new_inputs[t][0] if t in new_inputs else history_inputs[t][HISTORY_TURNS])
        for t in order
    ])
    shards = read_stream(dep)
    written = 0
    chosen: tuple[list[StreamRecord], list[StreamRecord]] | None = None
    for shard, records in shards:
        fresh = records[seen.get(shard, 0):]
        passed = [r for r in fresh if matches(r.record)]
        written += len(passed)
        if chosen is None and len(passed) >= BATCH_RECORDS:
            batch = passed[:BATCH_RECORDS]
            chosen = batch, fresh[fresh.index(batch[-1]) + 1:]
    if chosen is None:
        raise RuntimeError(
            f"the batch's turns wrote {written} records that the filter passes, in "
            f"{len(shards)} shard(s); no shard has {BATCH_RECORDS}"
        )
    batch, after = chosen
    if batch_length(batch, BATCH_RECORDS) < BATCH_RECORDS:
        raise RuntimeError(
            f"the {BATCH_RECORDS} records exceed Lambda's {MAX_PAYLOAD_BYTES:,}-byte "
            "payload: an event source mapping would cut the batch"
        )
    if any(r.record["eventName"] != "INSERT" for r in after):
        raise RuntimeError("records after the batch change older items: cannot trim")
    trimmed = sorted({record_key(r) for r in after})
    store = DynamoJournalStore(dep.client("dynamodb"), dep.table_name)
    try:
        store.delete_keys(trimmed)
    finally:
        store.close()
    fresh_copy = take_snapshot(dep)
    projected_before = {
        (pk, _keys.parse_sk(sk).checkpoint_ns)
        for (pk, sk), item in fresh_copy.items.items()
        if item.get("kind", {}).get("S") == _keys.KIND_VIEW
    }
    namespaces = {(pk, _keys.namespace_of(sk) or "") for pk, sk in map(record_key, batch)}
    return Prepared(
        source=source, batch=batch, fresh_copy=fresh_copy, written=written,
        trimmed=len(trimmed), shards=len(shards), namespaces=len(namespaces),
        new_namespaces=len(namespaces - projected_before),
        to_project=len(missing_views(fresh_copy)),
    )


def measure_batch(*, kb: str, rtt_s: float) -> BatchResult:
    """Build the 100-record event and time the handler on it (the module docstring)."""
    with LocalDeployment(handlers=False) as dep:
        p = prepare(dep, kb)
        batch = p.batch
        handlers = CountedHandler(dep, p.source)
        restore_s: list[float] = []

        def fresh_data() -> None:
            start = time.perf_counter()
            restore(dep, p.fresh_copy)
            restore_s.append(time.perf_counter() - start)

        def check_projected() -> None:
            missing = missing_views(take_snapshot(dep))
            if missing:
                raise RuntimeError(
                    f"{len(missing)} checkpoint(s) still without a view after the batch"
                )

        try:
            # No simulated round trip: one handler, its first call on the fresh copy
            # (cold), a repeat delivery, then warm first deliveries on fresh copies.
            local = handlers.build(0.0)
            first_cold = local(batch)
            check_projected()
            repeat = local(batch)
            first_warm = []
            for _ in range(WARM_RUNS):
                fresh_data()
                first_warm.append(local(batch))
                check_projected()
            # The simulated round trip: a second handler, warmed up by a repeat delivery.
            remote = handlers.build(rtt_s)
            warm_up_rtt = remote(batch)
            repeat_rtt = remote(batch)
            fresh_data()
            first_rtt = remote(batch)
            check_projected()
        finally:
            handlers.close()

    return BatchResult(
        records=len(batch),
        event_bytes=len(json.dumps(fresh_event(batch), separators=(",", ":"))),
        record_kinds=Counter(record_kind(r) for r in batch),
        namespaces=p.namespaces,
        new_namespaces=p.new_namespaces,
        checkpoints_to_project=p.to_project,
        history_threads=HISTORY_THREADS,
        history_turns=HISTORY_TURNS,
        history_with_kb=HISTORY_WITH_KB,
        new_threads=NEW_THREADS,
        new_with_kb=NEW_WITH_KB,
        kb_size=len(kb),
        written=p.written,
        trimmed_items=p.trimmed,
        table_items=len(p.fresh_copy.items),
        objects=len(p.fresh_copy.objects),
        shards=p.shards,
        first_cold=first_cold,
        first_warm=first_warm,
        first_rtt=first_rtt,
        repeat=repeat,
        repeat_rtt=repeat_rtt,
        warm_up_rtt=warm_up_rtt,
        restore_s=restore_s,
    )


def kinds_text(kinds: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
