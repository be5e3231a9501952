"""What the saver keeps between calls, and the values one read deserialises.

- :class:`ByteCache`: the bytes of recently read offloaded values. Offloaded objects are
  immutable and named by their content, so the bytes (not the deserialised objects,
  which callers may mutate) can be kept for the life of the process.
- :class:`Origins`: for each recently seen checkpoint, where each channel's value is
  stored and the checkpoint's chain hash, so that ``put`` writes only what changed and
  chains the next event without reading its parent.
- :class:`Loader`: the values of one read: journal values deserialised with the saver's
  serde, offloaded ones fetched once each (byte cache first, then the bucket).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_journal import errors
from checkpoint_journal._core import blobs as _blobs
from checkpoint_journal._core.blobs import BlobStore
from checkpoint_journal._core.delta import Chain, Full, Key, Known
from checkpoint_journal._core.fold import BlobRef, JournalRef, Value
from checkpoint_journal._core.items import Item
from checkpoint_journal._core.store import run_parallel

logger = logging.getLogger(__name__)

# Checkpoints whose origins the saver remembers: a few per active thread of a busy
# worker, a few hundred bytes each.
ORIGIN_CACHE_SIZE = 4096
# A value larger than this share of the byte cache is not kept: it would evict the rest.
_LARGEST_SHARE = 4

class Origin(NamedTuple):
    """Where a channel's value at a checkpoint is stored."""

    version: Any
    written_at_ms: int
    """Of the journal item that holds the value."""
    source: str | None = None
    """Checkpoint id of the journal item holding it (None: held by a view or S3 only)."""
    chain: Chain | None = None
    """Its delta chain when the journal holds it (a whole value starts its own)."""
    empty: bool = False
    """The channel was empty at this version."""
    last: Key | None = None
    """The channel's nearest value in this lineage that is not empty (this one, unless it
    is empty): the base of the next delta after empty versions (a DeltaChannel)."""
    seed: str | None = None
    """The checkpoint holding this channel's value, or, while it is empty (a DeltaChannel
    between snapshots), its nearest ancestor holding one: where a history starts."""

    def needs_journal(self) -> bool:
        """Whether reading it replays a delta chain from the journal."""
        return self.chain is not None and self.chain.depth > 0


class Values:
    """Recent channel values' serialized bytes by (thread, namespace, channel, version,
    source), with their chains: the base of the next delta (``put``) and of a chain the
    journal items read do not reach (reads). Bounded in bytes (thread-safe)."""

    def __init__(self, capacity_bytes: int) -> None:
        self._bytes = ByteCache(capacity_bytes)
        self._chains: dict[str, tuple[str, Chain]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(thread_id: str, ns_name: str, key: Key) -> str:
        return "\x00".join((thread_id, ns_name, key[0], repr(key[1]), key[2]))

    def keep(self, thread_id: str, ns_name: str, key: Key, typed: tuple[str, bytes],
             chain: Chain) -> None:
        k = self._key(thread_id, ns_name, key)
        data = typed[1]
        with self._lock:
            self._chains[k] = (typed[0], chain)
            if len(self._chains) > 4 * ORIGIN_CACHE_SIZE:
                self._chains = {c: v for c, v in self._chains.items()
                                if self._bytes.get(c) is not None}
        self._bytes.keep(k, data)

    def get(self, thread_id: str, ns_name: str, key: Key) -> Full | None:
        k = self._key(thread_id, ns_name, key)
        data = self._bytes.get(k)
        with self._lock:
            meta = self._chains.get(k)
        return None if data is None or meta is None else ((meta[0], data), meta[1])

    def known(self, thread_id: str, ns_name: str) -> Known:
        return lambda key: self.get(thread_id, ns_name, key)


class BlobUnavailable(Exception):
    """An offloaded value cannot be read (missing, damaged, S3 unreachable or timing out):
    answer from the journal instead. ``cause`` says why, naming S3, the bucket and the
    key; it is raised if the journal no longer holds the value either."""

    def __init__(self, cause: errors.JournalError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class ByteCache:
    """An LRU of offloaded values' bytes by digest, bounded in bytes (thread-safe)."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            data = self._data.get(digest)
            if data is not None:
                self._data.move_to_end(digest)
            return data

    def keep(self, digest: str, data: bytes) -> None:
        if len(data) > self.capacity_bytes // _LARGEST_SHARE:
            return
        with self._lock:
            if digest in self._data:
                return
            self._data[digest] = data
            self._size += len(data)
            while self._size > self.capacity_bytes:
                _, old = self._data.popitem(last=False)
                self._size -= len(old)


class Origins:
    """(thread, namespace, checkpoint id) -> where each channel's value is stored, and
    the checkpoint's chain hash; the most recently used ``size`` (thread-safe)."""

    def __init__(self, size: int = ORIGIN_CACHE_SIZE) -> None:
        self.size = size
        self._data: OrderedDict[tuple[str, str, str], tuple[dict[str, Origin], str | None]] = (
            OrderedDict()
        )
        self._history: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()

    def remember(
        self, key: tuple[str, str, str], origins: dict[str, Origin], chain: str | None
    ) -> None:
        with self._lock:
            old = self._data.get(key)
            if old is not None:
                # A read from a view knows less (not the journal item holding a value)
                # than the put that wrote it: keep what the put knew.
                origins = {ch: (o if o.source is not None or (p := old[0].get(ch)) is None
                                or p.version != o.version else p)
                           for ch, o in origins.items()}
            self._data[key] = (origins, chain)
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def note_history(self, key: tuple[str, str, str], start: str) -> None:
        """A checkpoint's DeltaChannel history starts at or after ``start`` (its event's
        ``hfrom``): the channels' seeds, for the next put."""
        with self._lock:
            known = self._data.get(key)
            if known is not None:
                self._data[key] = ({ch: o if o.seed is not None or not o.empty
                                    else o._replace(seed=start)
                                    for ch, o in known[0].items()}, known[1])
            self._history[key] = start
            while len(self._history) > self.size:
                self._history.pop(next(iter(self._history)))

    def history_from(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            return self._history.get(key)

    def recall(self, key: tuple[str, str, str]) -> tuple[dict[str, Origin], str | None] | None:
        with self._lock:
            return self._data.get(key)

    def forget_thread(self, thread_id: str) -> None:
        with self._lock:
            for k in [k for k in self._data if k[0] == thread_id]:
                del self._data[k]
            for k in [k for k in self._history if k[0] == thread_id]:
                del self._history[k]


class NoBucketWarning:
    """Says once per saver that the view points to S3 but the saver has no bucket."""

    def __init__(self) -> None:
        self._said = False

    def __call__(self) -> None:
        if not self._said:
            self._said = True
            logger.warning(
                "the view holds values in S3 but this saver has no bucket; reading the "
                "journal instead (pass bucket= the stack's BucketName output)"
            )


class Loader:
    """The values of one read (one ``get_tuple`` or one ``list``): what it deserialised
    from S3 is kept by digest, so a value shown by many checkpoints is fetched once."""

    def __init__(
        self,
        serde: SerializerProtocol,
        blobs: BlobStore | None,
        cache: ByteCache,
        pool: ThreadPoolExecutor,
        no_bucket: NoBucketWarning,
    ) -> None:
        self.serde = serde
        self._blobs = blobs
        self._cache = cache
        self._pool = pool
        self._no_bucket = no_bucket
        self._loaded: dict[str, Any] = {}

    def loads(self, typed: tuple[str, bytes]) -> Any:
        return self.serde.loads_typed(typed)

    def value(self, v: Value) -> Any:
        """A value of a view or a fold; an offloaded one must have been fetched."""
        if isinstance(v, BlobRef):
            return self._loaded[v.digest]
        if isinstance(v, JournalRef):
            raise AssertionError("unreachable: the fold resolves a JournalRef from the journal")
        return self.loads(v)

    def fetch(self, values: Iterable[Value | None]) -> None:
        """Load the offloaded values among ``values`` (in parallel).

        Raises BlobUnavailable when the saver has no bucket or an object is missing: the
        caller then answers from the journal alone (slower, same result)."""
        todo = {
            v.digest: v for v in values if isinstance(v, BlobRef) and v.digest not in self._loaded
        }
        for digest in list(todo):
            data = self._cache.get(digest)
            if data is not None:
                self._loaded[digest] = self.loads((todo.pop(digest).type, data))
        if not todo:
            return
        blobs = self._blobs
        if blobs is None:
            self._no_bucket()
            raise BlobUnavailable(errors.NotConfiguredError(
                f"a value is offloaded to S3 (key {next(iter(todo.values())).key!r}) and "
                "this saver has no bucket: pass bucket= the stack's BucketName output"))

        def get(ref: BlobRef) -> tuple[str, bytes]:
            where = f"S3 object {blobs.bucket}/{ref.key}"
            try:
                body = blobs.get(ref.key, f"read offloaded value {ref.digest[:12]}")
                if body is None:
                    raise errors.ObjectNotFoundError(f"{where} does not exist")
                return ref.digest, _blobs.unpack(body, ref.codec, ref.digest, ref.type)
            except errors.CorruptRecordError as e:
                cause: errors.JournalError = errors.CorruptRecordError(
                    f"{where} is damaged: {e}")
            except errors.JournalError as e:  # missing, unreachable, timing out, denied
                cause = e if blobs.bucket in str(e) else type(e)(f"{where}: {e}")
            # Never the value's bytes in a log line: only where it is and why (the cause
            # names the object).
            logger.warning("%s; reading the journal instead", cause)
            raise BlobUnavailable(cause)

        for digest, data in run_parallel([lambda r=r: get(r) for r in todo.values()], self._pool):  # type: ignore[misc]
            self._cache.keep(digest, data)
            self._loaded[digest] = self.loads((todo[digest].type, data))


class Items:
    """Journal items this saver wrote or read, by key, bounded in bytes (thread-safe).

    Journal items are immutable and their keys unique (checkpoint ids, write suffixes),
    so an item held here is the item in the table for as long as the table holds that
    key: a read that lists a range's keys (a small, keys-only Query) takes the content of
    the keys it holds from here, and reads only the others."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._data: OrderedDict[tuple[str, str], tuple[Item, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def keep(self, items: Iterable[Item]) -> None:
        with self._lock:
            for item in items:
                key = (item["PK"]["S"], item["SK"]["S"])
                size = len(item.get("body", {}).get("B", b"")) + 256
                if key in self._data or size > self.capacity_bytes // _LARGEST_SHARE:
                    continue
                self._data[key] = (item, size)
                self._size += size
            while self._size > self.capacity_bytes and self._data:
                _, (_, size) = self._data.popitem(last=False)
                self._size -= size

    def get(self, pk: str, sk: str) -> Item | None:
        with self._lock:
            got = self._data.get((pk, sk))
            if got is None:
                return None
            self._data.move_to_end((pk, sk))
            return got[0]

    def forget_thread(self, pk: str) -> None:
        with self._lock:
            for key in [k for k in self._data if k[0] == pk]:
                self._size -= self._data.pop(key)[1]
