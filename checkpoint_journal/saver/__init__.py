"""JournalSaver: a LangGraph checkpointer on an immutable DynamoDB journal.

Writes append immutable items (one request per ``put`` and per ``put_writes`` below
DynamoDB's item limit); reads fold the journal of the namespace they need (see
``_fold``), with strongly consistent reads, so a read always sees the caller's writes.
The async methods run the same code in a worker thread and never block the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_journal import errors, schemas
from checkpoint_journal._core import aws
from checkpoint_journal._core import blobs as _blobs
from checkpoint_journal._core import chain as _chain
from checkpoint_journal._core import index as _index
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import (
    BlobRef,
    CheckpointEvent,
    Fold,
    Namespace,
    Value,
    ViewCheckpoint,
    decode_view,
    fold_partition,
    survey,
)
from checkpoint_journal._core.items import (
    MIN_ITEM_BYTES,
    Item,
    metadata_attrs,
    plan_items,
    uniq,
)
from checkpoint_journal._core.size import MAX_ITEM_BYTES
from checkpoint_journal._core.store import DynamoJournalStore, run_parallel
from checkpoint_journal.saver._maintenance import Maintenance

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["Clock", "JournalSaver"]

logger = logging.getLogger(__name__)


class _BlobUnavailable(Exception):
    """An offloaded value cannot be read; answer from the journal instead."""

# With a TTL, a channel value stored more than this fraction of the TTL ago is written
# again with the next checkpoint instead of referenced, so the latest checkpoint of an
# active thread stays readable for at least (1 - fraction) * ttl after it is written.
TTL_RECARRY_FRACTION = 0.1
# Per-saver memory of where each channel value of recent checkpoints is stored.
_ORIGIN_CACHE_SIZE = 4096


class Clock(Protocol):
    def __call__(self) -> float:
        """Seconds since the epoch."""
        ...


class JournalSaver(Maintenance, BaseCheckpointSaver[str]):
    """A LangGraph checkpointer on an event-sourced DynamoDB journal.

    Args:
        table_name: the journal table (the ``TableName`` output of the stack).
        bucket: the blob bucket (``BucketName`` output); large values offloaded by the
            projector are read from it.
        ttl_seconds: if set, every item carries ``expires_at`` and is not returned once
            past it; the latest checkpoint of a thread stays readable for at least 90%
            of the TTL after it is written.
        compression: zstd-compress records above a few hundred bytes.
        serde: LangGraph serializer (default ``JsonPlusSerializer``; an
            ``EncryptedSerializer`` works).
        endpoint_url, region_name: where AWS is (DynamoDB Local, moto, a region);
            ``None`` uses boto3's resolution (``AWS_ENDPOINT_URL_DYNAMODB`` etc.).
        s3_endpoint_url: S3's endpoint when it differs from ``endpoint_url``.
        boto3_session: every client the saver makes comes from this session.
        max_attempts: attempts per request, the first included, before throttling or a
            transient error is raised as TransientError (botocore's standard retry mode,
            with its exponential backoff).
        max_item_bytes: the item budget, as DynamoDB counts it, above which a record is
            chunked. 400 KB on AWS; lower it only for emulators that count differently.
        blob_cache_bytes: memory for the bytes of recently read offloaded values
            (immutable, named by their digest), so that a value unchanged between turns
            is fetched from S3 once per process. 0 turns it off.
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
        chain_key: bytes | str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(serde=serde)
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
        # Per recently seen checkpoint: where each channel's value is stored (so put
        # writes only what changed) and its chain hash (so put chains the next one).
        self._origins: OrderedDict[
            tuple[str, str, str], tuple[dict[str, tuple[Any, int]], str | None]
        ] = OrderedDict()
        self._origins_lock = threading.Lock()
        self._warned_no_bucket = False
        self.blob_cache_bytes = blob_cache_bytes
        self._blob_lru: OrderedDict[str, bytes] = OrderedDict()
        self._blob_lru_bytes = 0

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

    def check(self) -> None:
        """Verify the table (and bucket, if given) exist and are reachable.

        Raises TableNotFoundError, BucketNotFoundError, CredentialsError or
        AccessDeniedError with what to do.
        """
        self._store.describe()
        if self.bucket:
            s3: S3Client = self._s3
            bucket = self.bucket
            try:
                aws.call(lambda: s3.head_bucket(Bucket=bucket), service=aws.S3,
                         resource=bucket, what=f"check bucket {bucket!r}")
            except errors.ObjectNotFoundError as e:  # HeadBucket answers a bare 404
                raise errors.BucketNotFoundError(
                    f"S3 bucket {bucket!r} was not found. Deploy the stack (sam deploy) "
                    "or pass the BucketName output of your stack as bucket."
                ) from e

    # -- helpers -------------------------------------------------------------------

    def _now(self) -> float:
        return float(self.clock())

    def _expires_at(self, now: float) -> int | None:
        return None if self.ttl_seconds is None else int(now) + self.ttl_seconds

    def _dumps(self, value: Any, what: str) -> dict[str, Any]:
        try:
            type_, data = self.serde.dumps_typed(value)
        except Exception as e:  # serializers raise TypeError, ValueError, msgpack errors
            raise errors.SerializationError(
                f"cannot serialize {what} ({type(value).__name__}) with "
                f"{type(self.serde).__name__}: {e}. Nothing was written. Store only values "
                "the serializer supports, or pass a serde that handles this type."
            ) from e
        return {"type": type_, "data": data}

    def _loads(self, typed: tuple[str, bytes]) -> Any:
        return self.serde.loads_typed(typed)

    def _remember(
        self, key: tuple[str, str, str], origins: dict[str, tuple[Any, int]], chain: str | None
    ) -> None:
        with self._origins_lock:
            self._origins[key] = (origins, chain)
            self._origins.move_to_end(key)
            while len(self._origins) > _ORIGIN_CACHE_SIZE:
                self._origins.popitem(last=False)

    def _recall(
        self, key: tuple[str, str, str]
    ) -> tuple[dict[str, tuple[Any, int]], str | None] | None:
        with self._origins_lock:
            return self._origins.get(key)

    def _chain_of(self, thread_id: str, ns_name: str, cid: str) -> str | None:
        """The chain hash of a checkpoint this saver has not seen (another worker wrote
        it, or it left the cache): one consistent GetItem (plus chunks). None when it
        does not exist or predates the hashes; its child then chains from zero bytes and
        verify reports the missing parent."""
        pk = _keys.thread_pk(thread_id)
        item = self._store.get(pk, _keys.checkpoint_sk(ns_name, cid))
        if item is None:
            return None
        fold = fold_partition(self._with_chunks(pk, [item]), now_s=0, use_views=False)
        ns = fold.namespaces.get(ns_name)
        event = ns.checkpoints.get(cid) if ns is not None else None
        return event.chain_hash if event is not None else None

    def _forget_thread(self, thread_id: str) -> None:
        with self._origins_lock:
            for k in [k for k in self._origins if k[0] == thread_id]:
                del self._origins[k]

    def _with_chunks(self, pk: str, items: list[Item]) -> list[Item]:
        return self._store.with_chunks(pk, items)

    def _read_items(self, thread_id: str, checkpoint_ns: str | None) -> list[Item]:
        pk = _keys.thread_pk(thread_id)
        prefix = "J#" if checkpoint_ns is None else _keys.ns_prefix(checkpoint_ns)
        items: list[Item] = []
        for page in self._store.pages(pk, prefix=prefix):
            items.extend(page)
        return items

    def _read(
        self, thread_id: str, checkpoint_ns: str | None, *, use_views: bool = False,
        items: list[Item] | None = None,
    ) -> Fold:
        """Fold a thread's namespace (or all of them) from the journal; with
        ``use_views``, the projector's view items stand in for the values they hold."""
        pk = _keys.thread_pk(thread_id)
        if items is None:
            items = self._read_items(thread_id, checkpoint_ns)
        return fold_partition(
            self._with_chunks(pk, items), now_s=self._now(), use_views=use_views
        )

    # -- values from the blob bucket ------------------------------------------------------

    def _fetch(self, refs: list[BlobRef], cache: dict[str, Any]) -> None:
        """Load offloaded values into ``cache`` (by digest), in parallel.

        Raises _BlobUnavailable when the saver has no bucket or an object is missing:
        the caller then answers from the journal alone (slower, same result)."""
        todo = {r.digest: r for r in refs if r.digest not in cache}
        for digest in list(todo):
            data = self._blob_bytes_cached(digest)
            if data is not None:
                cache[digest] = self._loads((todo.pop(digest).type, data))
        if not todo:
            return
        if not self.bucket:
            if not self._warned_no_bucket:
                self._warned_no_bucket = True
                logger.warning(
                    "the view holds values in S3 but this saver has no bucket; reading the "
                    "journal instead (pass bucket= the stack's BucketName output)"
                )
            raise _BlobUnavailable()
        bucket = self.bucket
        s3 = self._s3

        def get(ref: BlobRef) -> tuple[str, bytes]:
            try:
                body: bytes = aws.call(
                    lambda: s3.get_object(Bucket=bucket, Key=ref.key)["Body"].read(),
                    service=aws.S3, resource=f"{bucket}/{ref.key}",
                    what=f"read offloaded value {ref.digest[:12]}")
            except (errors.ObjectNotFoundError, errors.BucketNotFoundError) as e:
                raise _BlobUnavailable() from e
            return ref.digest, _blobs.unpack(body, ref.codec, ref.digest, ref.type)

        for digest, data in run_parallel([lambda r=r: get(r) for r in todo.values()], self._pool):  # type: ignore[misc]
            self._blob_bytes_keep(digest, data)
            cache[digest] = self._loads((todo[digest].type, data))

    # Offloaded objects are immutable and named by their content: the bytes (not the
    # deserialized objects, which callers may mutate) are kept in a small LRU.
    def _blob_bytes_cached(self, digest: str) -> bytes | None:
        with self._origins_lock:
            data = self._blob_lru.get(digest)
            if data is not None:
                self._blob_lru.move_to_end(digest)
            return data

    def _blob_bytes_keep(self, digest: str, data: bytes) -> None:
        if len(data) > self.blob_cache_bytes // 4:
            return
        with self._origins_lock:
            if digest in self._blob_lru:
                return
            self._blob_lru[digest] = data
            self._blob_lru_bytes += len(data)
            while self._blob_lru_bytes > self.blob_cache_bytes:
                _, old = self._blob_lru.popitem(last=False)
                self._blob_lru_bytes -= len(old)

    def _value(self, v: Value, cache: dict[str, Any]) -> Any:
        if isinstance(v, BlobRef):
            return cache[v.digest]
        return self._loads(v)

    @staticmethod
    def _refs(values: list[Value | None]) -> list[BlobRef]:
        return [v for v in values if isinstance(v, BlobRef)]

    def _config(self, thread_id: str, ns_name: str, cid: str | None) -> RunnableConfig | None:
        if not cid:
            return None
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns_name,
                                 "checkpoint_id": cid}}

    def _view_tuple(
        self, thread_id: str, ns_name: str, view: ViewCheckpoint, cache: dict[str, Any]
    ) -> CheckpointTuple:
        """A checkpoint straight from its view item (and S3 for offloaded values)."""
        self._fetch(
            self._refs([v for _, v, _ in view.channels.values()] + [w.value for w in view.writes]),
            cache,
        )
        checkpoint: Checkpoint = self._loads(view.checkpoint)
        checkpoint["channel_values"] = {
            ch: self._value(v, cache) for ch, (_, v, _) in view.channels.items() if v is not None
        }
        self._remember(
            (thread_id, ns_name, view.checkpoint_id),
            {ch: (ver, at) for ch, (ver, _, at) in view.channels.items()},
            view.chain_hash,
        )
        return CheckpointTuple(
            config=self._config(thread_id, ns_name, view.checkpoint_id),  # type: ignore[arg-type]
            checkpoint=checkpoint,
            metadata=self._loads(view.metadata),
            parent_config=self._config(thread_id, ns_name, view.parent_checkpoint_id),
            pending_writes=[
                (w.task_id, w.channel, self._value(w.value, cache)) for w in view.writes
            ],
        )

    def _tuple(
        self, thread_id: str, ns_name: str, ns: Namespace, event: CheckpointEvent,
        cache: dict[str, Any] | None = None,
    ) -> CheckpointTuple:
        cache = {} if cache is None else cache
        view = ns.current_view(event.checkpoint_id)
        if view is not None:
            return self._view_tuple(thread_id, ns_name, view, cache)
        checkpoint: Checkpoint = self._loads(event.checkpoint)
        resolved = ns.resolve(event, checkpoint["channel_versions"])
        writes = ns.writes.get(event.checkpoint_id, [])
        self._fetch(self._refs([r.value for r in resolved.values()]), cache)
        checkpoint["channel_values"] = {
            ch: self._value(r.value, cache) for ch, r in resolved.items() if r.value is not None
        }
        self._remember(
            (thread_id, ns_name, event.checkpoint_id),
            {ch: (r.version, r.written_at_ms) for ch, r in resolved.items()},
            event.chain_hash,
        )
        return CheckpointTuple(
            config=self._config(thread_id, ns_name, event.checkpoint_id),  # type: ignore[arg-type]
            checkpoint=checkpoint,
            metadata=self._loads(event.metadata),
            parent_config=self._config(thread_id, ns_name, event.parent_checkpoint_id),
            pending_writes=[(w.task_id, w.channel, self._value(w.value, cache)) for w in writes],
        )

    # -- reads -----------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the latest of its thread and namespace.

        With the projector caught up this is one Query (latest: the newest items of the
        namespace, descending; by id: that checkpoint's items, with the namespace's
        tombstone read alongside), plus one S3 GET per offloaded value. Otherwise the
        namespace's journal is folded, with the views it has as a head start (I4).
        """
        conf = config["configurable"]
        thread_id: str = conf["thread_id"]
        ns_name: str = conf.get("checkpoint_ns", "")
        checkpoint_id = get_checkpoint_id(config)
        pk = _keys.thread_pk(thread_id)
        now = self._now()
        items: list[Item] = []
        if checkpoint_id:
            sk = _keys.checkpoint_sk(ns_name, checkpoint_id)
            tomb_future = self._pool.submit(self._store.get, pk, _keys.tombstone_sk(ns_name))
            own = [i for page in self._store.pages(pk, between=(sk, sk + "#~")) for i in page]
            tomb = tomb_future.result()
            items = [i for i in own if _keys.owner(i["SK"]["S"]) == (ns_name, checkpoint_id)]
            if tomb:
                items.append(tomb)
            target: str | None = checkpoint_id
            sv = survey(items, now_s=now).get(ns_name)
        else:
            target = None
            sv = None
            pages = self._store.pages(
                pk, prefix=_keys.ns_prefix(ns_name), descending=True, first_limit=8
            )
            whole = True
            for page in pages:
                items.extend(page)
                sv = survey(items, now_s=now).get(ns_name)
                if sv is not None and sv.events:
                    target = max(sv.events)
                    whole = False
                    break
            if target is None:
                return None  # the whole namespace was read: nothing visible
            assert sv is not None
            if sv.current_view(target, now) is None:
                # The projector lags (or is not deployed): read on to the newest view
                # below, whose values complete what the tail's events do not carry.
                for page in pages:
                    items.extend(page)
                    sv = survey(items, now_s=now).get(ns_name)
                    assert sv is not None
                    if sv.seed_below(target) is not None:
                        break
                else:
                    whole = True
                tuple_ = self._from_tail(thread_id, ns_name, target, items, whole)
                if tuple_ is not None:
                    return tuple_
                return self._get_folded(thread_id, ns_name, None)
        if target is not None and sv is not None and target in sv.events:
            view_item = sv.current_view(target, now)
            if view_item is not None:
                try:
                    return self._view_tuple(thread_id, ns_name, decode_view(view_item), {})
                except _BlobUnavailable:
                    pass
        elif checkpoint_id:
            return None  # the event is not there (or not visible): no such checkpoint
        return self._get_folded(thread_id, ns_name, checkpoint_id)

    def _from_tail(
        self, thread_id: str, ns_name: str, target: str, items: list[Item], whole: bool
    ) -> CheckpointTuple | None:
        """The target from a namespace's newest items (down to a view, or all of them);
        None when the tail does not hold every value it needs."""
        ns = self._read(thread_id, ns_name, use_views=True, items=items).namespaces.get(ns_name)
        if ns is None or target not in ns.checkpoints:
            return None
        event = ns.checkpoints[target]
        if not whole and ns.current_view(target) is None and not ns.resolvable(event):
            return None
        try:
            return self._tuple(thread_id, ns_name, ns, event)
        except _BlobUnavailable:
            return None

    def _get_folded(
        self, thread_id: str, ns_name: str, checkpoint_id: str | None
    ) -> CheckpointTuple | None:
        """get_tuple from the namespace's whole journal (views as a head start, unless a
        referenced blob is unavailable, then the journal alone)."""
        for use_views in (True, False):
            ns = self._read(thread_id, ns_name, use_views=use_views).namespaces.get(ns_name)
            if ns is None or not ns.checkpoints:
                return None
            event = (
                ns.checkpoints.get(checkpoint_id)
                if checkpoint_id
                else ns.checkpoints[max(ns.checkpoints)]
            )
            if event is None:
                return None
            try:
                return self._tuple(thread_id, ns_name, ns, event)
            except _BlobUnavailable:
                continue
        raise AssertionError("unreachable: the journal-only fold needs no blob")

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first; ``config=None`` lists every thread (from the
        projector's indexes: eventually consistent, see the README)."""
        if limit is not None and limit <= 0:
            return
        before_id = get_checkpoint_id(before) if before else None
        if config is None:
            yield from self._list_all(filter, before_id, limit)
            return
        conf = config["configurable"]
        yield from self._list_thread(
            conf["thread_id"], conf.get("checkpoint_ns"), get_checkpoint_id(config),
            filter, before_id, limit,
        )

    def _list_thread(
        self,
        thread_id: str,
        ns_filter: str | None,
        checkpoint_id: str | None,
        filter: dict[str, Any] | None,
        before_id: str | None,
        limit: int | None,
    ) -> Iterator[CheckpointTuple]:
        """One thread's checkpoints: one Query page after another over its journal range;
        views answer for the checkpoints they cover, the fold for the rest."""
        items = self._read_items(thread_id, ns_filter)
        now = self._now()
        surveys = survey(items, now_s=now)
        wanted = [
            (cid, ns_name)
            for ns_name, sv in surveys.items()
            if ns_filter is None or ns_name == ns_filter
            for cid in sv.events
            if (checkpoint_id is None or cid == checkpoint_id)
            and (before_id is None or cid < before_id)
        ]
        wanted.sort(reverse=True)
        cache: dict[str, Any] = {}
        fold: Fold | None = None
        remaining = limit
        for cid, ns_name in wanted:
            tup: CheckpointTuple | None = None
            view_item = surveys[ns_name].current_view(cid, now)
            if view_item is not None and fold is None:
                try:
                    tup = self._view_tuple(thread_id, ns_name, decode_view(view_item), cache)
                except _BlobUnavailable:
                    tup = None
            if tup is None:
                if fold is None:
                    fold = self._read(thread_id, ns_filter, use_views=True, items=items)
                ns = fold.namespaces.get(ns_name)
                event = ns.checkpoints.get(cid) if ns else None
                if ns is None or event is None:
                    continue
                try:
                    tup = self._tuple(thread_id, ns_name, ns, event, cache)
                except _BlobUnavailable:
                    fold = self._read(thread_id, ns_filter, use_views=False, items=items)
                    ns = fold.namespaces[ns_name]
                    tup = self._tuple(thread_id, ns_name, ns, ns.checkpoints[cid], cache)
            if filter and not all(tup.metadata.get(k) == v for k, v in filter.items()):
                continue
            yield tup
            if remaining is not None:
                remaining -= 1
                if remaining <= 0:
                    return

    def _list_all(
        self, filter: dict[str, Any] | None, before_id: str | None, limit: int | None
    ) -> Iterator[CheckpointTuple]:
        """Every thread, from the projector's indexes (no Scan)."""
        indexed = [
            (k, h) for k, v in (filter or {}).items()
            if (h := _index.meta_hash(k, v)) is not None
        ]
        if indexed:
            yield from self._list_by_metadata(indexed[0][1], filter or {}, before_id, limit)
            return
        threads: set[str] = set()
        for group in run_parallel(
            [
                lambda s=s: [  # type: ignore[misc]
                    i["PK"]["S"]
                    for page in self._store.index_keys(
                        _index.THREAD_INDEX, "ta", _index.thread_partition(s), "ts")
                    for i in page
                ]
                for s in range(_index.SHARDS)
            ],
            self._pool,
        ):
            threads.update(group)
        found = [
            tup
            for pk in threads
            for tup in self._list_thread(
                _keys.thread_from_pk(pk), None, None, filter, before_id, limit
            )
        ]
        found.sort(key=lambda t: (t.config["configurable"]["checkpoint_id"],
                                  t.config["configurable"]["thread_id"]), reverse=True)
        yield from found[:limit] if limit is not None else found

    def _list_by_metadata(
        self, key_value_hash: str, filter: dict[str, Any], before_id: str | None,
        limit: int | None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints whose metadata matches, via the MetaIndex shards and the views."""
        entries = run_parallel(
            [
                lambda s=s: [  # type: ignore[misc]
                    (i["ms"]["S"], i["PK"]["S"], i["SK"]["S"])
                    for page in self._store.index_keys(
                        _index.META_INDEX, "mi", _index.meta_partition(key_value_hash, s),
                        "ms", below=before_id)
                    for i in page
                ]
                for s in range(_index.SHARDS)
            ],
            self._pool,
        )
        merged = sorted({e for group in entries for e in group}, reverse=True)
        cache: dict[str, Any] = {}
        remaining = limit
        for start in range(0, len(merged), 100):
            batch = merged[start : start + 100]
            keys = []
            for cid, pk, sk in batch:
                own = _keys.owner(sk)
                if own is not None:
                    keys.append((pk, _keys.view_sk(own[0], cid)))
            views = {(i["PK"]["S"], i["SK"]["S"]): i for i in self._store.batch_get(keys)}
            for (pk, vsk) in keys:
                item = views.get((pk, vsk))
                if item is None:
                    continue
                exp = item.get("expires_at")
                if exp is not None and int(exp["N"]) <= self._now():
                    continue
                own = _keys.owner(vsk)
                assert own is not None
                try:
                    tup = self._view_tuple(_keys.thread_from_pk(pk), own[0], decode_view(item), cache)
                except _BlobUnavailable:
                    continue
                if not all(tup.metadata.get(k) == v for k, v in filter.items()):
                    continue
                yield tup
                if remaining is not None:
                    remaining -= 1
                    if remaining <= 0:
                        return

    # -- writes ----------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Append a checkpoint event holding only the channels in ``new_versions``."""
        conf = config["configurable"]
        thread_id: str = conf["thread_id"]
        ns_name: str = conf.get("checkpoint_ns", "")
        parent_id: str | None = conf.get("checkpoint_id")
        cid = checkpoint["id"]
        pk = _keys.thread_pk(thread_id)
        sk = _keys.checkpoint_sk(ns_name, cid)
        now = self._now()
        now_ms = int(now * 1000)
        expires_at = self._expires_at(now)

        values = checkpoint["channel_values"]
        versions = checkpoint["channel_versions"]
        to_store: dict[str, Any] = {ch: v for ch, v in new_versions.items()}
        parent = self._recall((thread_id, ns_name, parent_id)) if parent_id else None
        parent_origins = parent[0] if parent is not None else None
        if parent is not None:
            parent_chain = parent[1]
        else:
            parent_chain = self._chain_of(thread_id, ns_name, parent_id) if parent_id else None
        origins: dict[str, tuple[Any, int]] = {}
        visible_until = expires_at
        for ch, ver in versions.items():
            if ch in to_store:
                continue
            origin = (parent_origins or {}).get(ch)
            known = origin is not None and origin[0] == ver
            if self.ttl_seconds is not None:
                too_old = not known or (now_ms - origin[1]) > (  # type: ignore[index]
                    TTL_RECARRY_FRACTION * self.ttl_seconds * 1000
                )
                if too_old:
                    to_store[ch] = ver  # re-carry: write it again rather than reference
                    continue
            if known:
                origins[ch] = origin  # type: ignore[assignment]
                if visible_until is not None:
                    dep_expiry = origin[1] // 1000 + self.ttl_seconds  # type: ignore[index,operator]
                    visible_until = min(visible_until, dep_expiry)
        blobs = []
        for ch, ver in to_store.items():
            blobs.append(
                {
                    "channel": ch,
                    "version": ver,
                    "value": self._dumps(values[ch], f"channel {ch!r}") if ch in values else None,
                }
            )
            origins[ch] = (ver, now_ms)
        stored_checkpoint = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        md = get_checkpoint_metadata(config, metadata)
        record: dict[str, Any] = {
            "thread_id": thread_id,
            "checkpoint_ns": ns_name,
            "checkpoint_id": cid,
            "parent_checkpoint_id": parent_id,
            "written_at": now_ms,
            "checkpoint": self._dumps(stored_checkpoint, "the checkpoint"),
            "metadata": self._dumps(md, "the metadata"),
            "blobs": blobs,
            "channel_versions": [{"channel": ch, "version": v} for ch, v in versions.items()],
        }
        encoded = self._hasher.encode(schemas.RECORD_CHECKPOINT, record,
                                      compress=self.compression, parent_chain=parent_chain)
        extra = metadata_attrs(md)
        if parent_id:
            extra["parent"] = {"S": parent_id}
        if visible_until is not None and visible_until != expires_at:
            extra["visible_until"] = {"N": str(visible_until)}
        plan = plan_items(
            pk, sk, _keys.KIND_CHECKPOINT, encoded,
            written_at_ms=now_ms, expires_at=expires_at, extra=extra,
            max_item_bytes=self.max_item_bytes,
        )
        self._store.append(plan)
        self._remember((thread_id, ns_name, cid), origins, record["chain_hash"])
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns_name,
                "checkpoint_id": cid,
            }
        }

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Append one writes event; LangGraph's dedup rules are applied when folding."""
        if not writes:
            return
        conf = config["configurable"]
        thread_id: str = conf["thread_id"]
        ns_name: str = conf.get("checkpoint_ns", "")
        cid: str = conf["checkpoint_id"]
        now = self._now()
        now_ms = int(now * 1000)
        pk = _keys.thread_pk(thread_id)
        sk = _keys.writes_sk(ns_name, cid, task_id, uniq(now_ms))
        record = {
            "thread_id": thread_id,
            "checkpoint_ns": ns_name,
            "checkpoint_id": cid,
            "task_id": task_id,
            "task_path": task_path,
            "written_at": now_ms,
            "writes": [
                {
                    "channel": ch,
                    "idx": WRITES_IDX_MAP.get(ch, i),
                    "value": self._dumps(v, f"the write to channel {ch!r}"),
                }
                for i, (ch, v) in enumerate(writes)
            ],
        }
        encoded = self._hasher.encode(schemas.RECORD_WRITES, record, compress=self.compression)
        plan = plan_items(
            pk, sk, _keys.KIND_WRITES, encoded,
            written_at_ms=now_ms, expires_at=self._expires_at(now),
            max_item_bytes=self.max_item_bytes,
        )
        self._store.append(plan)

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
        def collect() -> list[CheckpointTuple]:
            return list(self.list(config, filter=filter, before=before, limit=limit))

        for tup in await asyncio.to_thread(collect):
            yield tup

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

