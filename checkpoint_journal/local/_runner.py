"""The local stream runner: Lambda's DynamoDB event source mappings, emulated.

moto cannot run Lambda event source mappings without Docker, and DynamoDB Local has
none, so the local deployment polls the table's stream itself (DESIGN §6). One
background thread per mapping reads every shard of the stream (a closed parent to its
end before its children), turns records into the events a Lambda function receives
(``_events.to_stream_record``), applies the mapping's FilterCriteria, gathers batches
(BatchSize, MaximumBatchingWindowInSeconds, Lambda's 6 MB payload), calls the function's
real handler in-process, and follows Lambda's rules for partial batch responses,
bisection, retries, record age and the SQS on-failure destination
(``_events.deliver``). Records of a shard are delivered in order, one batch at a time.

:meth:`StreamRunner.drain` is condition-based: each consumer must finish a poll cycle,
begun after the call, in which every shard read to its end, nothing is buffered and no
batch is in flight or waiting for a retry.

Not emulated: the function's Timeout (a thread cannot be killed; the context reports
the remaining time only), concurrency across shards and ParallelizationFactor > 1 (one
batch at a time per mapping, which keeps every ordering guarantee Lambda gives), and
Lambda's exact retry back-off (local retries are immediate at first, see
``_events.retry_delay``). Logs carry counts, shard ids and sequence numbers, never
record contents.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from checkpoint_journal.local._consumer import (
    DEFAULT_POLL_INTERVAL,
    Consumer,
    ConsumerStatus,
    Function,
    Handler,
    HandlerWrapper,
    RunnerHost,
    log,
)
from checkpoint_journal.local._esm import StreamEventSource

__all__ = ["ConsumerStatus", "Handler", "HandlerWrapper", "RunnerHost", "StreamRunner", "read_queue"]


# ---------------------------------------------------------------------------------------
# The runner


def read_queue(sqs: Any, queue_url: str, *, consume: bool = True) -> list[dict[str, Any]]:
    """Every message on an SQS queue, as parsed JSON bodies, oldest first as SQS returns them.

    ``consume`` deletes them; otherwise they are made visible again at once.
    """
    bodies: list[dict[str, Any]] = []
    handles: list[str] = []
    while True:
        received = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=60
        ).get("Messages", [])
        if not received:
            break
        for message in received:
            bodies.append(json.loads(message["Body"]))
            handles.append(message["ReceiptHandle"])
    for start in range(0, len(handles), 10):  # the batch calls take 10 entries at most
        entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles[start : start + 10])]
        if consume:
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        else:
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url, Entries=[{**e, "VisibilityTimeout": 0} for e in entries]
            )
    return bodies


class StreamRunner:
    """Runs event source mappings against a local deployment's DynamoDB stream(s).

    Args:
        host: the deployment (endpoints, credentials, region).
        sources: the mappings, from :func:`stream_event_sources` or written by hand.
        tables: logical id -> local table name, for each ``source.table``.
        queues: logical id -> local queue URL, for each ``source.on_failure``.
        batching_window: seconds, replacing every mapping's
            MaximumBatchingWindowInSeconds (e.g. ``0`` in tests); None keeps the
            template's values.
        handler_wrappers: function logical id -> a wrapper around its real handler
            (see :meth:`set_handler_wrapper`).
        clock: epoch seconds, for record ages, batching windows and failure timestamps;
            tests pass a clock they can move forward instead of sleeping.
        poll_interval: seconds between polls of an idle stream.
    """

    def __init__(
        self,
        host: RunnerHost,
        sources: Sequence[StreamEventSource],
        *,
        tables: Mapping[str, str],
        queues: Mapping[str, str] | None = None,
        batching_window: float | None = None,
        handler_wrappers: Mapping[str, HandlerWrapper] | None = None,
        clock: Callable[[], float] = time.time,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        queues = queues or {}
        if batching_window is not None and not 0 <= batching_window <= 300:
            raise ValueError(f"batching_window={batching_window!r}: Lambda allows 0 to 300 seconds")
        self.host = host
        self.sources = tuple(sources)
        self._tables = dict(tables)
        self._queues = dict(queues)
        self._batching_window = batching_window
        self._clock = clock
        self._poll_interval = poll_interval
        self._functions: dict[str, Function] = {}
        for source in self.sources:
            if source.table not in self._tables:
                raise ValueError(f"{source.name}: no local table for {source.table!r} in tables=")
            if source.on_failure is not None and source.on_failure not in self._queues:
                raise ValueError(f"{source.name}: no local queue for {source.on_failure!r} in queues=")
            function = self._functions.get(source.function)
            if function is None:
                self._functions[source.function] = Function(source, host)
            elif not function.same_as(source):
                raise ValueError(
                    f"{source.name}: the events of function {source.function!r} disagree "
                    "on its Handler, environment or name"
                )
        for name, wrapper in (handler_wrappers or {}).items():
            self.set_handler_wrapper(name, wrapper)
        self._stop = threading.Event()
        self._consumers: list[Consumer] = []
        self._started = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> StreamRunner:
        """Load every handler (``make_handler(env)`` once per function), take each
        mapping's starting position, and start polling. Idempotent."""
        if self._started:
            return self
        for function in self._functions.values():
            function.load()
        self._stop.clear()
        consumers = []
        for source in self.sources:
            window = (
                source.maximum_batching_window_in_seconds
                if self._batching_window is None
                else self._batching_window
            )
            consumer = Consumer(
                source,
                self._functions[source.function],
                self.host,
                table_name=self._tables[source.table],
                queue_url=self._queues.get(source.on_failure) if source.on_failure else None,
                batching_window=float(window),
                clock=self._clock,
                poll_interval=self._poll_interval,
                stop=self._stop,
            )
            consumer.discover()
            consumers.append(consumer)
        self._consumers = consumers
        for consumer in consumers:
            consumer.start()
        self._started = True
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and join the threads (a handler that never returns is left behind
        after ``timeout`` seconds: its thread is a daemon)."""
        self._stop.set()
        for consumer in self._consumers:
            consumer.wake()
        deadline = time.monotonic() + timeout
        for consumer in self._consumers:
            if not consumer.join(max(0.0, deadline - time.monotonic())):
                log.warning("%s: its handler did not return; thread left running", consumer.source.name)
        self._started = False

    def __enter__(self) -> StreamRunner:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests use --------------------------------------------------------------

    def drain(self, timeout: float = 30.0) -> None:
        """Return once every mapping has processed (or sent to its on-failure
        destination) every stream record written before the call.

        Condition-based: each consumer must complete a poll cycle, begun after the call,
        that read every shard to its end with nothing buffered, in flight or waiting for
        a retry. While a drain waits, batching windows close early (a batch may be
        smaller than it would otherwise be; no record is delivered differently).

        Raises:
            TimeoutError: some consumer did not catch up; the message says what it is
                doing (e.g. a handler that has not returned).
            RuntimeError: the runner is not running.
        """
        if not self._started:
            raise RuntimeError("the stream runner is not running: start() it first")
        deadline = time.monotonic() + timeout
        targets = [(c, c.request_barrier()) for c in self._consumers]
        behind = [c for c, target in targets if not c.wait_barrier(target, deadline)]
        if behind:
            raise TimeoutError(
                f"stream consumers not caught up after {timeout:g} s: "
                + " | ".join(c.describe_lag() for c in behind)
            )

    def status(self) -> list[ConsumerStatus]:
        """A snapshot of every consumer (empty before start)."""
        return [c.status() for c in self._consumers]

    def set_handler_wrapper(self, function: str, wrapper: HandlerWrapper | None) -> None:
        """Call ``wrapper(real_handler)`` instead of the function's real handler from the
        next invocation on (None restores the real one). For fault injection::

            def fail_on_poison(real):
                def handler(event, context):
                    if any(is_poison(r) for r in event["Records"]):
                        raise RuntimeError("injected")
                    return real(event, context)
                return handler

            runner.set_handler_wrapper("ProjectorFunction", fail_on_poison)
        """
        if function not in self._functions:
            raise KeyError(f"no stream function {function!r} (have {sorted(self._functions)})")
        self._functions[function].set_wrapper(wrapper)

    def failure_messages(self, function: str, *, consume: bool = True) -> list[dict[str, Any]]:
        """The on-failure records Lambda would have sent for ``function``'s mappings, as
        parsed JSON, read from their SQS queue(s); ``consume`` removes them from it.

        Raises:
            KeyError: no mapping of that function has an on-failure destination.
        """
        urls = sorted(
            {
                self._queues[s.on_failure]
                for s in self.sources
                if s.function == function and s.on_failure is not None
            }
        )
        if not urls:
            raise KeyError(f"no mapping of function {function!r} has an on-failure destination")
        sqs = self.host.client("sqs")
        return [m for url in urls for m in read_queue(sqs, url, consume=consume)]
