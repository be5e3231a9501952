"""JournalSaver: a LangGraph checkpointer on an immutable DynamoDB journal.

Writes append immutable items (one request per ``put`` and per ``put_writes`` below
DynamoDB's item limit); reads fold the journal of the namespace they need (``_core.fold``),
with strongly consistent reads, so a read always sees the caller's writes.

This module is the LangGraph contract only: each method is a thin shell over the plans
of ``_write`` (what a put writes), ``_maintenance`` (what deletes and copies write) and
``_read`` (which items answer which checkpoint); ``_values`` holds what the saver keeps
between calls. The async methods run the same code in a worker thread and never block
the event loop; ``alist`` advances the same iterator one tuple per step.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import boto3
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    get_checkpoint_id,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_journal import errors
from checkpoint_journal._core import aws
from checkpoint_journal._core import chain as _chain
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.blobs import BlobStore
from checkpoint_journal._core.fold import Fold, fold_partition, hidden_keys
from checkpoint_journal._core.items import MIN_ITEM_BYTES, Item, ItemPlan
from checkpoint_journal._core.serde import StrictSerializer
from checkpoint_journal._core.size import MAX_ITEM_BYTES
from checkpoint_journal._core.store import DynamoJournalStore
from checkpoint_journal.saver import (
    _across,
    _history,
    _maintenance,
    _prefetch,
    _read,
    _tuples,
    _write,
)
from checkpoint_journal.saver._values import (
    ByteCache,
    Items,
    Loader,
    NoBucketWarning,
    Origins,
    Values,
)

__all__ = ["Clock", "JournalSaver"]


# Sweeps of what lands hidden during a delete_thread: each finds only puts that were in
# flight during the previous one.
_SWEEPS = 5


class Clock(Protocol):
    def __call__(self) -> float:
        """Seconds since the epoch."""
        ...


class JournalSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer on an event-sourced DynamoDB journal.

    Args:
        table_name: the journal table (the ``TableName`` output of the stack).
        bucket: the blob bucket (``BucketName`` output); large values offloaded by the
            projector are read from it.
        ttl_seconds: if set, every item carries ``expires_at`` and is not returned once
            past it; the latest checkpoint of a thread stays readable for at least 90%
            of the TTL after it is written.
        compression: zstd-compress records above a few hundred bytes.
        serde: LangGraph serializer. The default is strict (``_core.serde``): only
            LangGraph's and langchain-core's own types, plus those of the compiled graph's
            state schema (LangGraph passes them through ``with_allowlist``) are rebuilt; a
            stored value naming any other type, or pickled, raises BlockedTypeError and
            runs no code. An ``EncryptedSerializer`` works.
        endpoint_url: DynamoDB's endpoint (DynamoDB Local, moto); ``None`` uses boto3's:
            ``AWS_ENDPOINT_URL_DYNAMODB``, else ``AWS_ENDPOINT_URL``, else the profile's.
        s3_endpoint_url: S3's endpoint; ``None`` uses ``AWS_ENDPOINT_URL_S3``, else
            ``endpoint_url`` (one emulator serving both), else boto3's.
        region_name: the region; ``None`` resolves it as the AWS CLI and SDKs do: the
            region ``boto3_session`` was built with, ``AWS_REGION``,
            ``AWS_DEFAULT_REGION``, then the profile's (``AWS_PROFILE``, or the session's).
            No region at all, or an ``AWS_PROFILE`` that does not exist, raises
            NotConfiguredError.
        boto3_session: every client the saver makes comes from this session (a profile:
            ``boto3.Session(profile_name=...)``).
        max_attempts: attempts per request, the first included, before throttling or a
            transient error is raised as TransientError (botocore's standard retry mode,
            with its exponential backoff).
        max_item_bytes: the item budget, as DynamoDB counts it, above which a record is
            chunked. 400 KB on AWS; lower it only for emulators that count differently.
        blob_cache_bytes: memory for the bytes of recently read offloaded values
            (immutable, named by their digest), so that a value unchanged between turns
            is fetched from S3 once per process. 0 turns it off.
        deltas: store a changed channel value (a growing message list, a dict gaining
            keys) as a zstd delta against its previous version when that saves at least
            half, with a whole value again once the deltas add up to its size, so a
            turn costs about what changed. False stores every changed value whole.
        value_cache_bytes: memory for the serialized values this saver last wrote or
            read, the bases of its next deltas (without one, a value is stored whole
            and starts a new chain). 0 turns deltas off in practice.
        chain_key: a secret (at least 16 bytes; a str is taken as UTF-8) under which the
            tamper-evident hashes of every event are HMAC-SHA-256 instead of SHA-256, so
            that only its holders can make events that ``checkpoint-journal verify``
            accepts. Give every saver of a deployment, and the auditor, the same key.
        clock: seconds since the epoch; injectable for tests.
    """

    def __init__(
        self,
        table_name: str,
        *,
        bucket: str | None = None,
        ttl_seconds: int | None = None,
        compression: bool = True,
        serde: SerializerProtocol | None = None,
        endpoint_url: str | None = None,
        s3_endpoint_url: str | None = None,
        region_name: str | None = None,
        boto3_session: boto3.session.Session | None = None,
        max_attempts: int = 8,
        max_item_bytes: int = MAX_ITEM_BYTES,
        blob_cache_bytes: int = 64 * 1024 * 1024,
        deltas: bool = True,
        value_cache_bytes: int = 64 * 1024 * 1024,
        chain_key: bytes | str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(serde=serde if serde is not None else StrictSerializer())
        if not isinstance(table_name, str) or not table_name:
            raise errors.NotConfiguredError("table_name must be a non-empty string")
        if ttl_seconds is not None and (
            isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0
        ):
            raise ValueError("ttl_seconds must be a positive whole number of seconds, or None")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not MIN_ITEM_BYTES <= max_item_bytes <= MAX_ITEM_BYTES:
            raise ValueError(
                f"max_item_bytes must be between {MIN_ITEM_BYTES} and {MAX_ITEM_BYTES}"
            )
        self.max_item_bytes = max_item_bytes
        self._hasher = _chain.Hasher(_chain.key_bytes(chain_key))
        self.table_name = table_name
        self.bucket = bucket
        self.ttl_seconds = ttl_seconds
        self.compression = compression
        self.endpoint_url = endpoint_url
        self.clock: Clock = clock or time.time
        clients = aws.clients(
            boto3_session=boto3_session,
            endpoint_url=endpoint_url,
            s3_endpoint_url=s3_endpoint_url,
            region_name=region_name,
            max_attempts=max_attempts,
        )
        self._ddb, self._s3 = clients.dynamodb, clients.s3
        self.region_name = clients.region
        self._store = DynamoJournalStore(self._ddb, table_name)
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="cj-io")
        self._origins = Origins()
        self._prefetch = _prefetch.Prefetch()
        self.blob_cache_bytes = blob_cache_bytes
        self._blob_bytes = ByteCache(blob_cache_bytes)
        self.deltas = deltas
        self._values = Values(value_cache_bytes)
        self._items = Items(value_cache_bytes)
        self._no_bucket = NoBucketWarning()

    # -- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        self._store.close()
        self._pool.shutdown(wait=False)

    def __enter__(self) -> JournalSaver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> JournalSaver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def check(self) -> dict[str, str]:
        """Check the table and bucket the saver is configured with; returns what was
        checked, each with what was found (table, keys, stream, ttl, bucket).

        Raises NotConfiguredError when the table's key schema is not the journal's, its
        TTL is on another attribute, or the saver has ``ttl_seconds`` and the table no
        TTL; TableNotFoundError, BucketNotFoundError, CredentialsError or
        AccessDeniedError otherwise, each with what to do.
        """
        found = self._store.check(ttl_seconds=self.ttl_seconds)
        if self.bucket:
            BlobStore(self._s3, self.bucket).check()
            found["bucket"] = f"{self.bucket}: reachable"
        else:
            found["bucket"] = "none given: values the projector offloads are read from " \
                              "the journal instead"
        return found

    # -- what every call is built from (read at each call: a with_allowlist clone shares
    # -- everything but its serde) --------------------------------------------------------

    def _now(self) -> float:
        return float(self.clock())

    def _policy(self) -> _write.Policy:
        return _write.Policy(self.serde, self._hasher, self.compression, self.max_item_bytes,
                             self.ttl_seconds, self.deltas)

    def _reader(self) -> _read.Reader:
        blobs = BlobStore(self._s3, self.bucket) if self.bucket else None
        loader = Loader(self.serde, blobs, self._blob_bytes, self._pool, self._no_bucket)
        return _read.Reader(self._store, loader, self._origins, self._pool, self._now(),
                            self._values, self._items)

    def _fold_thread(self, thread_id: str) -> Fold:
        """Every namespace of a thread, folded from its journal alone (maintenance)."""
        pk = _keys.thread_pk(thread_id)
        items: list[Item] = [i for page in self._store.pages(pk, prefix=_read.JOURNAL)
                             for i in page]
        return fold_partition(self._store.with_chunks(pk, items), now_s=self._now())

    # -- reads -----------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the latest of its thread and namespace.

        With the projector caught up this is one Query (latest: the newest items of the
        namespace, descending; by id: that checkpoint's items, with the namespace's
        tombstone read alongside), plus one S3 GET per offloaded value. Otherwise the
        namespace's journal is folded, with the views it has as a head start (I4).
        """
        thread_id, ns_name, _ = _keys.from_config(config)
        checkpoint_id = get_checkpoint_id(config)
        reader = self._reader()
        if checkpoint_id:
            return reader.by_id(thread_id, ns_name, checkpoint_id)
        return self._prefetch.latest(reader, thread_id, ns_name, reader.latest)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first, each yielded as soon as the pages read answer it;
        ``config=None`` lists every thread (from the projector's indexes: eventually
        consistent, see docs/design.md, "Reads: the view plus the tail")."""
        if limit is not None and limit <= 0:
            return
        before_id = get_checkpoint_id(before) if before else None
        reader = self._reader()
        if config is None:
            found = _across.every_thread(reader, filter, before_id, limit)
        else:
            found = _tuples.matching(reader.listing(config, before=before_id, limit=limit), filter)
        yield from itertools.islice(found, limit)

    # -- DeltaChannel history (saver/_history.py) ------------------------------------

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Per channel, the pending writes of the ancestors of the checkpoint ``config``
        names (the latest without an id), oldest first, down to and including the
        nearest one storing a value for it, and that value as ``seed`` (omitted when the
        walk reaches the root). One descending Query per 1 MB page of the namespace's
        journal, whatever the distance (plus the tombstone's GetItem alongside, with an
        id), and one S3 GET per offloaded seed. An ancestor that is gone raises
        (CorruptRecordError, or JournalError for one removed by prune or delete_for_runs),
        never a shorter history."""
        thread_id, ns_name, _ = _keys.from_config(config)
        return _history.history(self._reader(), thread_id, ns_name, get_checkpoint_id(config),
                                list(channels), self._prefetch.take)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await asyncio.to_thread(
            self.get_delta_channel_history, config=config, channels=channels)

    def get_delta_channel_keepset(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> set[str]:
        """The ids of the checkpoints the DeltaChannel state of ``channels`` at the
        checkpoint ``config`` names is rebuilt from: it, and its ancestors down to the
        nearest storing a value for each channel. Empty when it does not exist."""
        thread_id, ns_name, _ = _keys.from_config(config)
        return _history.keepset(self._reader(), thread_id, ns_name, get_checkpoint_id(config),
                                list(channels))

    async def aget_delta_channel_keepset(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> set[str]:
        return await asyncio.to_thread(
            self.get_delta_channel_keepset, config=config, channels=channels)

    # -- writes ----------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Append a checkpoint event holding only the channels in ``new_versions``.

        A retry of a put whose first attempt crashed or went unacknowledged, with the same
        arguments, is accepted: it is planned again at the first attempt's time, which
        makes the same items, so the existing ones stand (I1). Different content under
        the same checkpoint id raises ConflictError."""
        thread_id, ns_name, parent_id = _keys.from_config(config)
        parent = self._origins.recall((thread_id, ns_name, parent_id)) if parent_id else None
        if parent is not None:
            parent_origins, parent_chain = parent
        else:
            parent_origins = None
            parent_chain = (
                _tuples.chain_of(self._store, thread_id, ns_name, parent_id) if parent_id else None
            )

        def plan(now: float, *, deltas: bool = True) -> _write.CheckpointWrite:
            return _write.checkpoint_write(
                self._policy(), config, checkpoint, metadata, new_versions,
                parent_origins=parent_origins, parent_chain=parent_chain, now=now,
                bases=self._values if deltas else None,
            )

        written = plan(self._now())
        try:
            self._append_event(written.plan, thread_id)
        except errors.ConflictError as e:
            first = getattr(e, "written_at_ms", None)
            if first is None:
                raise
            if parent is None and parent_id:
                # What the first attempt knew of its parent's values decides what a TTL
                # re-carries and what is a delta: read the parent, as that attempt's
                # process had.
                self.get_tuple(config)
                known = self._origins.recall((thread_id, ns_name, parent_id))
                if known is not None:
                    parent_origins, parent_chain = known
            at = (first + 0.5) / 1000  # the first attempt's time, to the ms
            written = plan(at)
            try:
                self._append_event(written.plan, thread_id)
            except errors.ConflictError:
                # That attempt did not hold a base this one holds: its values whole.
                written = plan(at, deltas=False)
                self._append_event(written.plan, thread_id)
        self._origins.remember(written.key, written.origins, written.chain_hash)
        self._items.keep([*written.plan.chunks, written.plan.commit])
        if (start := written.plan.commit.get("hfrom")) is not None:
            self._origins.note_history(written.key, start["S"])
        self._prefetch.wrote(written.key, checkpoint, metadata)
        for key, data, chain in written.values:
            self._values.keep(thread_id, ns_name, key, data, chain)
        return written.config

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Append one writes event; LangGraph's dedup rules are applied when folding."""
        if writes:
            plan = _write.writes_write(
                self._policy(), config, writes, task_id, task_path, now=self._now())
            self._append_event(plan, _keys.from_config(config)[0])
            self._items.keep([*plan.chunks, plan.commit])

    def _append_event(self, plan: ItemPlan, thread_id: str) -> None:
        """Store the items of one ``put`` or ``put_writes`` of ``thread_id``. A writer of
        ``claim_write_ownership`` fences this (``_ownership.FencedWriter``)."""
        self._store.append(plan)

    # -- deletes and copies ------------------------------------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        """Hide the thread at once (tombstones), then delete its items.

        Linearizable against concurrent writers (I6b): a put that lands before the
        tombstones is deleted; one in flight while they are written lands hidden, and the
        sweep below deletes it (the projector deletes any that land later still, and the
        tombstone outlives whatever it hides); one that starts after is a new history.
        Deleting a thread also supersedes its write owner (``claim_write_ownership``)."""
        pk = _keys.thread_pk(thread_id)
        keys = self._store.keys(pk, "")  # one partition walk: journal, views, chunks, index
        now = self._now()
        tombstones = [_maintenance.tombstone(self._hasher, pk, ns, now, self.ttl_seconds)
                      for ns in _keys.namespaces(sk for _, sk in keys)]
        for item in tombstones:
            self._store.put_plain(item)
        kept = {item["SK"]["S"] for item in tombstones}
        self._store.delete_keys([(p, s) for p, s in keys if s not in kept])
        hiding = {_keys.parse_sk(t["SK"]["S"]).checkpoint_ns: int(t["written_at"]["N"])
                  for t in tombstones}
        for _ in range(_SWEEPS):
            late = hidden_keys(self._store.summary(pk), hiding)
            if not late:
                break
            self._store.delete_keys(late)
        else:
            raise errors.TransientError(
                f"delete_thread({thread_id!r}): puts started before the delete kept landing "
                f"through {_SWEEPS} sweeps; the thread is hidden; run delete_thread again")
        # Crypto-shredding: the thread's archived events become unreadable. After the
        # journal items, never before (the archiver's race rule, see _core.shred).
        from checkpoint_journal._core.shred import DynamoKeyStore

        DynamoKeyStore(self._store.client, self._store.table).delete(thread_id)
        self._forget(thread_id)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) created by the given runs, except
        those a remaining checkpoint's DeltaChannel state is replayed through (between it
        and its channel's nearest stored value): deleting them would change what it reads."""
        doomed: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for run_id in run_ids:
            for pk, sk in self._store.run_keys(run_id):
                key = _keys.parse_sk(sk)
                doomed[pk].add((key.checkpoint_ns, key.checkpoint_id))
        for pk, cps in doomed.items():
            thread_id = _keys.thread_from_pk(pk)
            fold = self._fold_thread(thread_id)
            keep, gone = _maintenance.spare_delta_chains(
                self._policy(), fold, _maintenance.all_but(fold, cps), cps)
            self._remove(thread_id, fold, keep, remove=gone)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep the latest checkpoint of each namespace (and its writes),
        and the ancestors (with their writes) its DeltaChannel state is replayed from, down
        to each channel's nearest stored value; ``delete``: delete the threads."""
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
        for thread_id in thread_ids:
            if strategy == "delete":
                self.delete_thread(thread_id)
                continue
            fold = self._fold_thread(thread_id)
            self._remove(thread_id, fold, _maintenance.keep_latest(self._policy(), fold),
                         remove=None)

    def _remove(
        self, thread_id: str, fold: Fold, keep: set[tuple[str, str]],
        remove: set[tuple[str, str]] | None,
    ) -> None:
        """Delete every item of the thread whose checkpoint is not kept (or, with
        ``remove``, only those), after carrying forward what kept checkpoints need."""
        plans = _maintenance.removal(self._policy(), thread_id, fold, keep, remove,
                                     now=self._now())
        # Carried values and markers first, deletes after: a crash in between leaves
        # duplicates, never a checkpoint without its values.
        self._append_all(plans)
        pk = _keys.thread_pk(thread_id)
        self._store.delete_keys([(p, sk) for p, sk in self._store.keys(pk, "")
                                 if _maintenance.doomed(sk, keep, remove)])
        self._forget(thread_id)

    def _forget(self, thread_id: str) -> None:
        """What the saver remembers of a thread it deleted from or pruned."""
        self._origins.forget_thread(thread_id)
        self._prefetch.forget_thread(thread_id)
        self._items.forget_thread(_keys.thread_pk(thread_id))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every visible checkpoint and pending write to another thread."""
        self._append_all(_maintenance.copy(self._policy(), self._fold_thread(source_thread_id),
                                           target_thread_id, now=self._now()))

    def _append_all(self, plans: Sequence[ItemPlan]) -> None:
        for f in [self._pool.submit(self._store.append, p) for p in plans]:
            f.result()

    # -- write ownership: a superseded worker cannot fork a thread (saver/_ownership.py) --

    def claim_write_ownership(self, thread_id: str) -> JournalSaver:
        """Take write ownership of ``thread_id``, superseding its current owner (one
        PutItem), and return the writer to write it through.

        The writer is a complete checkpointer (a shallow copy of this saver, sync and
        async, for ``builder.compile(checkpointer=writer)``) whose ``put`` and
        ``put_writes`` on ``thread_id`` are accepted only while it is the thread's
        current owner: once another claim (or ``delete_thread``, which supersedes every
        owner) has happened, they raise ``errors.StaleWriteOwnerError`` and store
        nothing. ``writer.check_write_ownership()`` asks without writing. A fenced write
        is one TransactWriteItems instead of one PutItem (twice the write capacity).
        Reads need no ownership; the maintenance operations are not fenced; writing
        another thread through the writer raises JournalError. This saver stays
        unfenced.
        """
        from checkpoint_journal.saver import _ownership

        return _ownership.claim(self, thread_id)

    async def aclaim_write_ownership(self, thread_id: str) -> JournalSaver:
        return await asyncio.to_thread(self.claim_write_ownership, thread_id)

    # -- versions --------------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None) -> str:
        """``{counter:032}.{random:016}``: sorts correctly as text; the random part keeps
        two forks of one thread from reusing a version for different values."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(str(current).split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # -- async twins: the same code, in a worker thread ------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """``list``, one tuple per step in a worker thread: each is yielded as soon as
        the pages read answer it, and stopping early reads nothing more."""
        tuples = self.list(config, filter=filter, before=before, limit=limit)
        try:
            while (tup := await asyncio.to_thread(next, tuples, None)) is not None:
                yield tup
        finally:
            if isinstance(tuples, Generator):
                # Cancelled mid-step, the generator is still running in its worker
                # thread: it is then closed when collected.
                with contextlib.suppress(ValueError):
                    tuples.close()

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)
