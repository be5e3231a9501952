"""One event source mapping's consumer: a thread that polls a DynamoDB stream.

Used by :class:`~checkpoint_journal.local._runner.StreamRunner` (its docstring says
what is emulated). This is the I/O shell: boto3 calls, threads and the drain barrier;
the rules themselves (event shapes, batch cuts, retries, bisection, record age) are
the pure functions of ``_events``.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import botocore.exceptions

from checkpoint_journal.local._esm import StreamEventSource
from checkpoint_journal.local._events import (
    MAX_PAYLOAD_BYTES,
    Condition,
    LambdaContext,
    Outcome,
    StreamRecord,
    batch_length,
    deliver,
    failure_message,
    fresh_event,
    function_arn,
    interpret_response,
    to_stream_record,
)
from checkpoint_journal.local._filters import compile_criteria

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "Consumer",
    "ConsumerStatus",
    "Function",
    "Handler",
    "HandlerWrapper",
    "RunnerHost",
]

log = logging.getLogger("checkpoint_journal.local.runner")

Handler = Callable[[dict[str, Any], Any], Any]
"""A Lambda handler: ``handler(event, context) -> response``."""
HandlerWrapper = Callable[[Handler], Handler]
"""Takes a function's real handler and returns the one to call (fault injection)."""

#: GetRecords' maximum Limit.
_GET_RECORDS_LIMIT: Final = 1000
#: How often an idle consumer polls each shard (Lambda polls a stream shard 4 times a
#: second). drain() wakes consumers at once, so this only bounds latency without drain.
DEFAULT_POLL_INTERVAL: Final = 0.25
#: How often the shard list is re-read when nothing asks for it sooner (a shard ended,
#: or a drain is waiting): DynamoDB rolls shards over every few hours, not seconds.
_SHARD_REFRESH_S: Final = 1.0
#: Back-off after a failed poll (endpoint down, table deleted): do not spin.
_ERROR_BACKOFF_S: Final = 0.2


class RunnerHost(Protocol):
    """What the runner needs from a deployment (``LocalDeployment`` is one)."""

    region_name: str

    def client(self, service: str) -> Any:
        """A boto3 client for ``dynamodb``, ``dynamodbstreams`` or ``sqs``, local."""
        ...

    def aws_env(self) -> dict[str, str]:
        """AWS SDK variables (credentials, region, endpoints) pointing at the deployment."""
        ...


@dataclass(frozen=True)
class ConsumerStatus:
    """A snapshot of one event source mapping's consumer."""

    mapping: str
    """``Function/Event``."""
    stream_arn: str
    shards: int
    records_read: int
    records_filtered: int
    """Read but matching no filter pattern: checkpointed, never delivered."""
    records_buffered: int
    """Read, waiting for a batch (BatchSize or the batching window)."""
    records_delivered: int
    """Acknowledged by the function (a success, or before a reported failure)."""
    records_dead_lettered: int
    invocations: int
    failed_invocations: int
    in_flight: int
    """Records in the invocation running now (0: none)."""
    in_flight_seconds: float
    caught_up: bool
    """Whether the last poll cycle read every shard to its end and left nothing to do."""
    last_error: str | None


# ---------------------------------------------------------------------------------------
# Functions


class Function:
    """One Lambda function: its handler, loaded once, and an optional test wrapper."""

    def __init__(self, source: StreamEventSource, host: RunnerHost) -> None:
        self.logical_id = source.function
        self.name = source.function_name or source.function
        self.arn = function_arn(host.region_name, self.name)
        self.handler_path = source.handler
        self._identity = (source.handler, dict(source.environment), source.function_name)
        self.memory_size = source.memory_size
        self.timeout = source.timeout
        # The deployment's endpoints win: a handler must never reach past it.
        self.env: dict[str, str] = {**source.environment, **host.aws_env()}
        self._lock = threading.Lock()
        self._base: Handler | None = None
        self._wrapper: HandlerWrapper | None = None
        self._current: Handler | None = None

    def same_as(self, source: StreamEventSource) -> bool:
        return self._identity == (source.handler, dict(source.environment), source.function_name)

    def load(self) -> None:
        """Import the handler's module; call its ``make_handler(env)`` once if it has one."""
        module_name, _, attribute = self.handler_path.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ImportError(
                f"{self.logical_id}: cannot import the module of Handler "
                f"{self.handler_path!r}: {e}"
            ) from e
        factory = getattr(module, "make_handler", None)
        if callable(factory):
            handler = factory(dict(self.env))
        else:
            handler = getattr(module, attribute, None)
        if not callable(handler):
            raise TypeError(
                f"{self.logical_id}: Handler {self.handler_path!r} is not callable (and "
                f"{module_name} has no make_handler(env))"
            )
        with self._lock:
            self._base = handler
            self._current = self._wrapper(handler) if self._wrapper else handler

    def set_wrapper(self, wrapper: HandlerWrapper | None) -> None:
        with self._lock:
            self._wrapper = wrapper
            if self._base is not None:
                self._current = wrapper(self._base) if wrapper else self._base

    def handler(self) -> Handler:
        with self._lock:
            if self._current is None:
                raise RuntimeError(f"{self.logical_id}: handler not loaded (runner not started)")
            return self._current


# ---------------------------------------------------------------------------------------
# Consumers


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    initial_position: str
    """Iterator type for the first read: TRIM_HORIZON, or LATEST for the shards open
    when a LATEST mapping started."""
    iterator: str | None = None
    last_sequence: str | None = None
    """The last record read (not necessarily delivered): where to resume reading."""
    ended: bool = False
    """GetRecords returned no next iterator: the shard is closed and read to its end."""
    done: bool = False
    """Ended and nothing buffered: children may start."""
    buffer: list[StreamRecord] = field(default_factory=list)
    buffer_bytes: int = 0
    window_start: float | None = None


class Consumer:
    """The poller of one event source mapping, on its own thread."""

    def __init__(
        self,
        source: StreamEventSource,
        function: Function,
        host: RunnerHost,
        *,
        table_name: str,
        queue_url: str | None,
        batching_window: float,
        clock: Callable[[], float],
        poll_interval: float,
        stop: threading.Event,
    ) -> None:
        self.source = source
        self.function = function
        self.region = host.region_name
        self.queue_url = queue_url
        self._window = batching_window
        self._clock = clock
        self._poll_interval = poll_interval
        self._stop = stop
        self._matches = compile_criteria(source.filter_patterns)
        self._ddb = host.client("dynamodb")
        self._streams = host.client("dynamodbstreams")
        self._sqs = host.client("sqs") if queue_url else None
        description = self._ddb.describe_table(TableName=table_name)["Table"]
        arn = description.get("LatestStreamArn")
        if not arn or not description.get("StreamSpecification", {}).get("StreamEnabled", True):
            raise ValueError(
                f"{source.name}: table {table_name!r} has no stream; enable its "
                "StreamSpecification (the template's table has one)"
            )
        self.stream_arn: str = arn
        self._shards: dict[str, _Shard] = {}
        self._last_refresh = 0.0
        self._refresh_soon = True
        self._thread: threading.Thread | None = None
        # Drain barrier: a drain asks for cycle number `_requested`; a caught-up cycle that
        # began after the request satisfies it.
        self._cond = threading.Condition()
        self._requested = 0
        self._satisfied = 0
        # Status, under _cond.
        self._read = self._filtered = self._delivered = self._dead = 0
        self._invocations = self._failed = 0
        self._in_flight = 0
        self._in_flight_since = 0.0
        self._caught_up = False
        self._last_error: str | None = None

    # -- lifecycle -------------------------------------------------------------------

    def discover(self) -> None:
        """Read the shard list; a LATEST mapping takes its position now, at start."""
        self._refresh_shards(initial=True)
        for shard in self._shards.values():
            if shard.initial_position == "LATEST" and not shard.done:
                self._acquire_iterator(shard)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"stream-runner:{self.source.name}", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- drain -----------------------------------------------------------------------

    def request_barrier(self) -> int:
        with self._cond:
            self._requested += 1
            self._cond.notify_all()
            return self._requested

    def wait_barrier(self, target: int, deadline: float) -> bool:
        with self._cond:
            while self._satisfied < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def status(self) -> ConsumerStatus:
        with self._cond:
            buffered = sum(len(s.buffer) for s in self._shards.values())
            return ConsumerStatus(
                mapping=self.source.name,
                stream_arn=self.stream_arn,
                shards=len(self._shards),
                records_read=self._read,
                records_filtered=self._filtered,
                records_buffered=buffered,
                records_delivered=self._delivered,
                records_dead_lettered=self._dead,
                invocations=self._invocations,
                failed_invocations=self._failed,
                in_flight=self._in_flight,
                in_flight_seconds=(
                    time.monotonic() - self._in_flight_since if self._in_flight else 0.0
                ),
                caught_up=self._caught_up,
                last_error=self._last_error,
            )

    def describe_lag(self) -> str:
        s = self.status()
        parts = []
        if s.in_flight:
            parts.append(
                f"its handler has been running for {s.in_flight_seconds:.1f} s on a batch "
                f"of {s.in_flight} records"
            )
        if s.records_buffered:
            parts.append(f"{s.records_buffered} records read and waiting for a batch")
        if not parts:
            parts.append("it has not finished a poll cycle that reached the end of every shard")
        parts.append(
            f"so far {s.records_read} read, {s.records_delivered} delivered, "
            f"{s.records_filtered} filtered out, {s.records_dead_lettered} sent to the "
            f"on-failure destination, {s.invocations} invocations ({s.failed_invocations} failed)"
        )
        if s.last_error:
            parts.append(f"last error: {s.last_error}")
        alive = self._thread is not None and self._thread.is_alive()
        if not alive:
            parts.append("its thread is not running")
        return f"{s.mapping}: " + "; ".join(parts)

    # -- the poll loop ---------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                target = self._requested
                flush = target > self._satisfied
            failed = False
            try:
                caught_up = self._cycle(flush)
            except Exception as e:  # the endpoint went away, the table was deleted, ...
                caught_up, failed = False, True
                with self._cond:
                    self._last_error = f"{type(e).__name__}: {e}"
                log.warning("%s: poll failed (%s)", self.source.name, type(e).__name__)
            with self._cond:
                self._caught_up = caught_up
                if caught_up:
                    self._satisfied = max(self._satisfied, target)
                    self._cond.notify_all()
                if self._stop.is_set():
                    break
                if failed:
                    self._cond.wait(_ERROR_BACKOFF_S)
                elif self._requested <= self._satisfied:
                    self._cond.wait(self._idle_wait())

    def _idle_wait(self) -> float:
        wait = self._poll_interval
        for shard in self._shards.values():
            if shard.window_start is not None:
                remaining = self._window - (self._clock() - shard.window_start)
                wait = min(wait, max(remaining, 0.0))
        return wait

    def _cycle(self, flush: bool) -> bool:
        """One pass over the shards; True if every shard was read to its end and emptied."""
        if flush or self._refresh_soon or time.monotonic() - self._last_refresh >= _SHARD_REFRESH_S:
            self._refresh_shards(initial=False)
        caught_up = True
        for shard in self._ordered_shards():
            if self._stop.is_set():
                return False
            if shard.done:
                continue
            parent = self._shards.get(shard.parent_id or "")
            if parent is not None and not parent.done:
                caught_up = False  # the parent is read to its end first
                continue
            if not self._pump(shard, flush):
                caught_up = False
        return caught_up

    def _ordered_shards(self) -> list[_Shard]:
        def depth(shard: _Shard) -> int:
            n, seen = 0, {shard.shard_id}
            while shard.parent_id in self._shards and shard.parent_id not in seen:
                shard = self._shards[shard.parent_id]
                seen.add(shard.shard_id)
                n += 1
            return n

        return sorted(self._shards.values(), key=depth)

    def _refresh_shards(self, *, initial: bool) -> None:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self._streams.describe_stream(**kwargs)["StreamDescription"]
            for item in description.get("Shards", []):
                shard_id = item["ShardId"]
                if shard_id in self._shards:
                    continue
                closed = "EndingSequenceNumber" in item.get("SequenceNumberRange", {})
                latest = initial and self.source.starting_position == "LATEST"
                with self._cond:
                    self._shards[shard_id] = _Shard(
                        shard_id=shard_id,
                        parent_id=item.get("ParentShardId"),
                        initial_position="LATEST" if latest else "TRIM_HORIZON",
                        # LATEST skips what was written before the start, closed shards included.
                        ended=latest and closed,
                        done=latest and closed,
                    )
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            kwargs["ExclusiveStartShardId"] = last
        self._last_refresh = time.monotonic()
        self._refresh_soon = False

    def _acquire_iterator(self, shard: _Shard) -> None:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
        if shard.last_sequence is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.last_sequence)
        else:
            kwargs["ShardIteratorType"] = shard.initial_position
        shard.iterator = self._streams.get_shard_iterator(**kwargs)["ShardIterator"]

    def _full(self, shard: _Shard) -> bool:
        return len(shard.buffer) >= self.source.batch_size or shard.buffer_bytes >= MAX_PAYLOAD_BYTES

    def _pump(self, shard: _Shard, flush: bool) -> bool:
        """Read and deliver one shard; True once it is read to its end with nothing left."""
        while not self._stop.is_set():
            while not shard.ended and not self._full(shard):
                if self._fetch(shard) == 0:
                    break
            if not shard.buffer:
                if shard.ended:
                    shard.done = True
                    self._refresh_soon = True  # its children may be listed now
                return True
            window_over = (
                shard.window_start is not None
                and self._clock() - shard.window_start >= self._window
            )
            if not (self._full(shard) or shard.ended or flush or window_over):
                return False  # gathering: the batching window is still open
            batch = self._take_batch(shard)
            if not deliver(
                batch,
                source=self.source,
                invoke=self._invoke,
                dead_letter=self._dead_letter,
                clock=self._clock,
                pause=self._pause,
            ):
                return False
        return False

    def _fetch(self, shard: _Shard) -> int:
        """One GetRecords; returns how many records it read (before filtering)."""
        if shard.iterator is None:
            self._acquire_iterator(shard)
        try:
            response = self._streams.get_records(ShardIterator=shard.iterator, Limit=_GET_RECORDS_LIMIT)
        except botocore.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            if code == "ExpiredIteratorException":
                # Iterators expire after 15 minutes (a long-blocked handler): resume
                # after the last record read.
                self._acquire_iterator(shard)
            elif code == "TrimmedDataAccessException" and shard.last_sequence is None:
                # DynamoDB Local numbers records across all tables, and an iterator taken
                # on an empty shard points at sequence number 1: once the shard's first
                # record comes (numbered higher), that position counts as trimmed. Nothing
                # was read yet, so the shard's oldest record is the right place to start.
                shard.initial_position = "TRIM_HORIZON"
                self._acquire_iterator(shard)
            else:
                raise
            response = self._streams.get_records(ShardIterator=shard.iterator, Limit=_GET_RECORDS_LIMIT)
        shard.iterator = response.get("NextShardIterator")
        if shard.iterator is None:
            shard.ended = True
        raw_records = response.get("Records", [])
        read = filtered = 0
        with self._cond:
            for raw in raw_records:
                record = to_stream_record(
                    raw, region=self.region, stream_arn=self.stream_arn, shard_id=shard.shard_id
                )
                shard.last_sequence = record.sequence_number
                read += 1
                if not self._matches(record.record):
                    filtered += 1
                    continue
                if not shard.buffer:
                    shard.window_start = self._clock()
                shard.buffer.append(record)
                shard.buffer_bytes += record.size
            self._read += read
            self._filtered += filtered
        return len(raw_records)

    def _take_batch(self, shard: _Shard) -> list[StreamRecord]:
        with self._cond:
            count = batch_length(shard.buffer, self.source.batch_size)
            batch = shard.buffer[:count]
            del shard.buffer[:count]
            shard.buffer_bytes -= sum(r.size for r in batch)
            shard.window_start = self._clock() if shard.buffer else None
            return batch

    def _pause(self, seconds: float) -> bool:
        if seconds > 0:
            return self._stop.wait(seconds)
        return self._stop.is_set()

    def _invoke(self, records: Sequence[StreamRecord]) -> Outcome:
        request_id = str(uuid.uuid4())
        context = LambdaContext(
            function_name=self.function.name,
            invoked_function_arn=self.function.arn,
            memory_limit_in_mb=self.function.memory_size,
            aws_request_id=request_id,
            timeout_seconds=self.function.timeout,
        )
        event = fresh_event(records)
        handler = self.function.handler()
        with self._cond:
            self._in_flight, self._in_flight_since = len(records), time.monotonic()
        try:
            # Lambda's runtime sends the answer as JSON: what cannot be serialized fails.
            response = json.loads(json.dumps(handler(event, context)))
        except (Exception, SystemExit) as e:  # the function's error, as Lambda sees it
            log.debug("%s: invocation failed (%s)", self.source.name, type(e).__name__)
            outcome = Outcome.error(request_id)
        else:
            outcome = interpret_response(
                response,
                [r.sequence_number for r in records],
                report_failures=self.source.reports_batch_item_failures,
                request_id=request_id,
            )
        with self._cond:
            self._in_flight = 0
            self._invocations += 1
            if outcome.ok:
                self._delivered += len(records)
            else:
                self._failed += 1
                self._delivered += outcome.first_failed
        return outcome

    def _dead_letter(
        self,
        records: Sequence[StreamRecord],
        condition: Condition,
        invoke_count: int,
        last: Outcome | None,
    ) -> None:
        message = failure_message(
            records,
            condition=condition,
            invoke_count=invoke_count,
            last=last,
            request_id=str(uuid.uuid4()),
            function_arn=self.function.arn,
            stream_arn=self.stream_arn,
            now=self._clock(),
        )
        with self._cond:
            self._dead += len(records)
        first, final = records[0].sequence_number, records[-1].sequence_number
        if self._sqs is None or self.queue_url is None:
            log.warning(
                "%s: %s; %d records of %s (%s..%s) dropped (no on-failure destination)",
                self.source.name, condition, len(records), records[0].shard_id, first, final,
            )
            return
        log.warning(
            "%s: %s; %d records of %s (%s..%s) sent to the on-failure destination",
            self.source.name, condition, len(records), records[0].shard_id, first, final,
        )
        try:
            self._sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(message))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            with self._cond:
                self._last_error = f"on-failure destination: {type(e).__name__}: {e}"
            log.error("%s: could not send to the on-failure destination (%s)", self.source.name, type(e).__name__)
