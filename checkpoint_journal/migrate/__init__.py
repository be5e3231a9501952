"""Switching from ``langgraph-checkpoint-aws``'s ``DynamoDBSaver`` (1.x) without losing
a thread: :func:`import_dynamodbsaver` copies its threads into the journal.

    from checkpoint_journal import JournalSaver
    from checkpoint_journal.migrate import import_dynamodbsaver

    with JournalSaver("journal-table", bucket="journal-bucket") as saver:
        summary = import_dynamodbsaver(saver, "dynamodbsaver-table",
                                       source_bucket="dynamodbsaver-bucket", threads=None)
    print(summary.checkpoints_copied, summary.writes_copied)

Every checkpoint (every namespace: subgraphs too) keeps its id, parent, metadata and
values, and every pending write (interrupts, resume values, errors included) its task,
task path and index, so ``graph.get_state_history(config)`` on the journal is what it was
on DynamoDBSaver and an interrupted thread resumes there (``Command(resume=...)``).
What changes: channel versions take JournalSaver's form (``_plan.journal_version``).

The source is read directly (``_source``: its table, and its offload bucket for payloads
of 350 KB or more, gzip or not); the journal is written only through the saver's ``put``
and ``put_writes``, oldest first and parents before children, each ``put`` with the
channels whose version changed from the parent's, so the journal stores deltas as for a
live run. Re-running is safe: per thread, one ``list`` says which checkpoints and which
writes the journal holds; those are compared with the source (another content under the
same checkpoint id raises ConflictError, nothing is overwritten) and skipped, and a
checkpoint whose writes were only partly copied is completed. So an interrupted import
(a crash, Ctrl-C, a throttled table) finishes by running it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, get_checkpoint_metadata
from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_journal import errors
from checkpoint_journal._core import aws
from checkpoint_journal._core.serde import StrictSerializer
from checkpoint_journal.migrate import _plan
from checkpoint_journal.migrate._source import (
    CheckpointItem,
    Key,
    Payload,
    Source,
    WriteItem,
    decode,
    where,
)

if TYPE_CHECKING:
    import boto3

    from checkpoint_journal.saver import JournalSaver

__all__ = [
    "ImportProgress",
    "ImportSummary",
    "SourceThreadNotFoundError",
    "import_dynamodbsaver",
]

# Checkpoints of a thread read together: their writes Queries and S3 GETs in parallel,
# their payloads kept in the table in BatchGetItems of up to 100 keys; few enough that
# memory holds only this many checkpoints' values per thread at a time.
WINDOW = 16
# Parallel requests to the source (writes Queries, S3 GETs), shared by the threads
# being imported.
SOURCE_CONCURRENCY = 8
# Threads imported at once by default: each is a chain of dependent requests (a parent's
# put before its child's), so several in flight keep the import from being bound by one
# request's latency, while staying far from a table's throughput limits.
DEFAULT_CONCURRENCY = 4


class SourceThreadNotFoundError(errors.JournalError):
    """A thread asked for is not in the DynamoDBSaver table (nothing was imported)."""

    def __init__(self, message: str, thread_ids: Sequence[str]) -> None:
        super().__init__(message)
        self.thread_ids = list(thread_ids)


@dataclass(frozen=True)
class ImportProgress:
    """Where an import is, as a thread starts and after each checkpoint (for a progress
    bar)."""

    thread_id: str
    threads_done: int
    """Threads finished before this one."""
    threads_total: int
    checkpoints_done: int
    """Checkpoints of this thread handled so far."""
    checkpoints_total: int
    """Checkpoints of this thread."""
    checkpoints_copied: int
    """Checkpoints copied so far, every thread."""


@dataclass(frozen=True)
class ImportSummary:
    """What an import did."""

    source_table: str
    target_table: str
    threads: int
    """Threads imported (each complete in the journal now)."""
    checkpoints_copied: int
    checkpoints_present: int
    """Checkpoints the journal held already, with the same content."""
    writes_copied: int
    writes_present: int
    """Pending writes the journal held already, with the same values."""
    s3_objects_read: int
    """Payloads read from the DynamoDBSaver's offload bucket."""
    skipped: tuple[str, ...]
    """Source items DynamoDBSaver itself does not show, so neither does the journal: an
    item whose payload is missing (a DynamoDBSaver put that crashed between the two), and
    the writes of such a checkpoint. Each names its key."""
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (the command line's ``--json``)."""
        return {
            "source_table": self.source_table, "target_table": self.target_table,
            "threads": self.threads,
            "checkpoints": {"copied": self.checkpoints_copied,
                            "already_there": self.checkpoints_present},
            "writes": {"copied": self.writes_copied, "already_there": self.writes_present},
            "s3_objects_read": self.s3_objects_read,
            "skipped": list(self.skipped),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Tally:
    """The running counts, updated by every worker (``add``, under the lock)."""

    threads: int = 0
    copied: int = 0
    present: int = 0
    writes_copied: int = 0
    writes_present: int = 0
    skipped: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *, threads: int = 0, copied: int = 0, present: int = 0,
            writes_copied: int = 0, writes_present: int = 0,
            skipped: Iterable[str] = ()) -> None:
        with self.lock:
            self.threads += threads
            self.copied += copied
            self.present += present
            self.writes_copied += writes_copied
            self.writes_present += writes_present
            self.skipped.extend(skipped)


def import_dynamodbsaver(
    target: JournalSaver,
    source_table: str,
    *,
    threads: Iterable[str] | None = None,
    source_bucket: str | None = None,
    source_key_prefix: str | None = None,
    allow: Iterable[tuple[str, str] | type] = (),
    serde: SerializerProtocol | None = None,
    endpoint_url: str | None = None,
    s3_endpoint_url: str | None = None,
    region_name: str | None = None,
    boto3_session: boto3.session.Session | None = None,
    progress: Callable[[ImportProgress], None] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> ImportSummary:
    """Copy threads written by ``DynamoDBSaver`` 1.x into the journal ``target`` writes.

    Args:
        target: the saver the journal is written through (its table, serde and settings:
            its ``ttl_seconds`` applies to the copies, its serde stores the values).
        source_table: the DynamoDBSaver table.
        threads: the thread ids to import; None imports every thread of the table (a
            keys-only Scan of it: needs ``dynamodb:Scan``).
        source_bucket: the DynamoDBSaver's ``s3_offload_config["bucket_name"]``; needed
            when payloads of 350 KB or more were offloaded (a NotConfiguredError says so).
        source_key_prefix: its ``s3_offload_config["key_prefix"]``, if it had one.
        allow: types of yours stored in the threads (``("myapp.models", "Order")`` or
            the class) for the source's strict serde: only LangGraph's and
            langchain-core's own types are rebuilt otherwise; another raises
            BlockedTypeError naming the item and the type. Ignored with ``serde``.
        serde: the serializer the DynamoDBSaver used, if not LangGraph's default
            (an ``EncryptedSerializer``, say).
        endpoint_url, s3_endpoint_url, region_name, boto3_session: where the source is;
            by default the target's endpoint and region, boto3's credentials, and S3 on
            ``endpoint_url`` when that is given (one emulator serving both).
        progress: called as each thread starts and after each of its checkpoints, with an
            :class:`ImportProgress` (from the import's worker threads, one call at a time).
        concurrency: threads imported at once (each thread's own checkpoints always go
            in order, parents first).

    Returns the :class:`ImportSummary`. Raises SourceThreadNotFoundError (before
    anything is written) when a thread asked for is not in the source; ConflictError
    when the journal holds one of its checkpoint ids (or pending writes) with other
    content: the import stops there and overwrites nothing; CorruptRecordError for a
    source item in a layout DynamoDBSaver 1.x does not write (naming its key);
    BlockedTypeError, and the AWS errors of ``checkpoint_journal.errors``. After any of
    them, or a crash, running it again finishes the job without copying anything twice.
    ValueError when the source is the target's own table.
    """
    started = time.monotonic()
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if source_table == target.table_name and endpoint_url in (None, target.endpoint_url):
        raise ValueError(f"the DynamoDBSaver table and the journal are both {source_table!r}: "
                         "import from the DynamoDBSaver's table into the journal's own")
    clients = aws.clients(
        boto3_session=boto3_session, endpoint_url=endpoint_url or target.endpoint_url,
        s3_endpoint_url=s3_endpoint_url, region_name=region_name or target.region_name)
    source = Source(clients.dynamodb, clients.s3, source_table, source_bucket,
                    source_key_prefix,
                    ThreadPoolExecutor(SOURCE_CONCURRENCY, thread_name_prefix="cj-import"))
    tally = _Tally()
    try:
        chosen = _threads(source, threads)
        importer = _Importer(target, source, serde or StrictSerializer(allow), tally, progress)
        importer.run(chosen, concurrency)
    finally:
        source.close()
    return ImportSummary(
        source_table=source_table, target_table=target.table_name, threads=tally.threads,
        checkpoints_copied=tally.copied, checkpoints_present=tally.present,
        writes_copied=tally.writes_copied, writes_present=tally.writes_present,
        s3_objects_read=source.s3_objects_read, skipped=tuple(sorted(tally.skipped)),
        seconds=time.monotonic() - started)


def _threads(source: Source, threads: Iterable[str] | None) -> list[str]:
    if threads is None:
        return source.threads()
    chosen = list(dict.fromkeys(threads))  # once each, in the order given
    if not chosen:
        raise ValueError("threads=[] names no thread: give thread ids, or None for every thread")
    found = list(source.pool.map(source.exists, chosen))
    missing = [t for t, ok in zip(chosen, found, strict=True) if not ok]
    if missing:
        raise SourceThreadNotFoundError(
            f"no checkpoint of thread(s) {', '.join(map(repr, missing))} in DynamoDBSaver "
            f"table {source.table!r}: check the thread ids and the table (nothing was "
            "imported)", missing)
    return chosen


class _Stopped(Exception):
    """Another thread's import failed: this one stops between two checkpoints."""


class _Importer:
    """One import's state; ``run`` copies the threads, ``thread`` one of them."""

    def __init__(self, target: JournalSaver, source: Source, serde: SerializerProtocol,
                 tally: _Tally, progress: Callable[[ImportProgress], None] | None) -> None:
        self.target = target
        self.source = source
        self.serde = serde
        self.tally = tally
        self.progress = progress
        self.total = 0
        self.stopping = threading.Event()
        self._progress_lock = threading.Lock()

    def run(self, threads: Sequence[str], concurrency: int) -> None:
        """Import ``threads``, ``concurrency`` at a time. The first failure (or Ctrl-C)
        stops the others at their next checkpoint, and is raised once they have."""
        self.total = len(threads)
        with ThreadPoolExecutor(concurrency, thread_name_prefix="cj-import-thread") as pool:
            futures = [pool.submit(self.thread, t) for t in threads]
            try:
                for f in as_completed(futures):
                    f.result()
            except BaseException:
                self.stopping.set()
                for f in futures:
                    f.cancel()
                raise

    def _report(self, thread_id: str, done: int, total: int) -> None:
        if self.stopping.is_set():
            raise _Stopped()
        if self.progress is not None:
            with self._progress_lock:
                self.progress(ImportProgress(thread_id, self.tally.threads, self.total, done,
                                             total, self.tally.copied))

    def _same(self, a: Any, b: Any) -> bool:
        """Equal values; those whose ``==`` is not a plain answer (arrays) compare by
        their serialized bytes."""
        try:
            return bool(a == b)
        except Exception:
            return self.target.serde.dumps_typed(a) == self.target.serde.dumps_typed(b)

    def thread(self, thread_id: str) -> None:
        cps = _plan.order(self.source.checkpoints(thread_id))
        listing: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        have: dict[tuple[str, str], CheckpointTuple] = {
            (t.config["configurable"]["checkpoint_ns"], t.config["configurable"]["checkpoint_id"]): t
            for t in self.target.list(listing)
        }
        versions: dict[tuple[str, str], dict[str, Any]] = {}
        self._report(thread_id, 0, len(cps))
        for start in range(0, len(cps), WINDOW):
            window = cps[start:start + WINDOW]
            writes = self.source.writes_of(window)
            wanted: list[Payload] = [cp.payload for cp in window]
            wanted += [w.payload for cp in window for w in writes[cp.checkpoint_id]]
            data = self.source.payloads(wanted)
            for n, cp in enumerate(window):
                self._checkpoint(cp, writes[cp.checkpoint_id], data, have, versions)
                self._report(thread_id, start + n + 1, len(cps))
        self.tally.add(threads=1)

    def _checkpoint(
        self, cp: CheckpointItem, writes: list[WriteItem], data: dict[Key, bytes | None],
        have: dict[tuple[str, str], CheckpointTuple],
        versions: dict[tuple[str, str], dict[str, Any]],
    ) -> None:
        raw = data.get(cp.payload.key)
        if not raw:  # DynamoDBSaver's own reads skip a checkpoint without its payload
            self.tally.add(skipped=[where(cp.payload.key), *(where(w.payload.key)
                                                             for w in writes)])
            return
        checkpoint, metadata = _plan.journal_checkpoint(decode(self.serde, cp.payload, raw), cp)
        ns, cid, parent = cp.checkpoint_ns, cp.checkpoint_id, cp.parent_checkpoint_id
        versions[(ns, cid)] = checkpoint["channel_versions"]
        config: RunnableConfig = {"configurable": {
            "thread_id": cp.thread_id, "checkpoint_ns": ns, "checkpoint_id": parent}}
        # What the saver stores of it (LangGraph's own normalisation), to compare with.
        metadata = dict(get_checkpoint_metadata(config, metadata))  # type: ignore[arg-type]
        existing = have.pop((ns, cid), None)
        if existing is None:
            changed = _plan.new_versions(checkpoint["channel_versions"],
                                         versions.get((ns, parent)) if parent else None)
            self.target.put(config, checkpoint, metadata, changed)  # type: ignore[arg-type]
            self.tally.add(copied=1)
        else:
            what = _plan.checkpoint_difference(existing, checkpoint, metadata, parent, self._same)
            if what is not None:
                raise self._conflict(cp, what)
            self.tally.add(present=1)

        readable: list[_plan.SourceWrite] = []
        for w in writes:
            value = data.get(w.payload.key)
            if value is None:  # DynamoDBSaver skips a write without its payload, too
                self.tally.add(skipped=[where(w.payload.key)])
                continue
            readable.append((w, decode(self.serde, w.payload, value)))
        plan = _plan.write_calls(
            readable, existing.pending_writes if existing is not None else None, self._same,
            lambda task, what: self._conflict(cp, f"task {task}: {what}"))
        self.tally.add(writes_present=plan.present)
        at: RunnableConfig = {"configurable": {
            "thread_id": cp.thread_id, "checkpoint_ns": ns, "checkpoint_id": cid}}
        for task in plan.tasks:
            for call in task.calls:
                self.target.put_writes(at, call.writes, call.task_id, call.task_path)
            self.tally.add(writes_copied=task.missing)

    def _conflict(self, cp: CheckpointItem, what: str) -> errors.ConflictError:
        return errors.ConflictError(
            f"thread {cp.thread_id!r}: checkpoint {cp.checkpoint_id} (namespace "
            f"{cp.checkpoint_ns!r}) is already in journal table {self.target.table_name!r} "
            f"with other content ({what}); the import stopped there and overwrote nothing. "
            "If the journal's copy is not wanted, delete the thread there "
            "(saver.delete_thread) and import again; or import into another table.")
