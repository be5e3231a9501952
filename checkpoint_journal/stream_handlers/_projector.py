"""The projector's logic, as plain functions on boto3 clients (the Lambda wrapper is
``projector.py``).

A stream record is a doorbell (I3): it names a thread and a namespace, nothing more.
For each namespace rung in a batch the projector re-reads that namespace's journal with
strongly consistent reads, folds it (``saver._fold``, the same fold the saver reads
with), and writes what is missing or behind, in an order that never leaves a dangling
pointer (I2): blob objects, then index items, then the view item (conditional on
folding more writes events than the one stored: a late or repeated record is a no-op),
then the head (conditional on a later projection time). A tombstone in the namespace
hides everything written before it; when the batch carries the tombstone itself, the
projector also removes the deleted incarnation's blobs and any projector item left
behind (I6).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from checkpoint_journal import errors
from checkpoint_journal._core import blobs as _blobs
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import (
    Namespace,
    fold_partition,
    hidden_keys,
    removed_ids,
)
from checkpoint_journal._core.items import Item
from checkpoint_journal._core.size import MAX_ITEM_BYTES, item_size
from checkpoint_journal._core.store import DynamoJournalStore, thread_ids
from checkpoint_journal._core.survey import survey
from checkpoint_journal.stream_handlers._lambda import journal_key
from checkpoint_journal.stream_handlers._view import ViewItems, build_view, head_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

# Concurrent writes within one namespace's projection.
WRITE_CONCURRENCY = 16


def _chunks(items: list[Item], n: int) -> list[list[Item]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


@dataclass
class Stats:
    """What one projection did (for metrics and tests)."""

    namespaces: int = 0
    views_written: int = 0
    views_current: int = 0
    index_items: int = 0
    blobs_offloaded: int = 0
    blob_bytes: int = 0
    items_deleted: int = 0
    blobs_deleted: int = 0
    blobs_orphaned: int = 0
    bytes_written: int = 0

    def add(self, other: Stats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class Doorbell:
    """What a stream record asks the projector to look at."""

    thread_id: str
    checkpoint_ns: str
    tombstone: bool = False
    removal: bool = False
    checkpoint_id: str | None = None
    """The oldest checkpoint the records concern; None: look at the whole namespace."""


def doorbell(record: Mapping[str, Any]) -> Doorbell | None:
    """The namespace a Lambda DynamoDB-stream record rings for, or None to ignore it.

    Ignored: the projector's own items (views, heads, index entries), chunks (their
    commit item rings), and DynamoDB's TTL deletions (expired items need no view work:
    view, head and index items carry the same expiry).
    """
    identity = record.get("userIdentity") or {}
    if identity.get("type") == "Service":
        return None
    found = journal_key(record)
    if found is None:
        return None
    thread_id, key = found.thread_id, found.key
    if key.kind in (_keys.KIND_VIEW, _keys.KIND_CHUNK):
        return None
    return Doorbell(
        thread_id,
        key.checkpoint_ns,
        tombstone=key.kind == _keys.KIND_TOMBSTONE and record.get("eventName") != "REMOVE",
        removal=record.get("eventName") == "REMOVE",
        checkpoint_id=key.checkpoint_id or None,
    )


def merge(bells: Iterable[Doorbell]) -> dict[tuple[str, str], Doorbell]:
    """One doorbell per namespace: the union of what several records ask for."""
    merged: dict[tuple[str, str], Doorbell] = {}
    for b in bells:
        key = (b.thread_id, b.checkpoint_ns)
        prev = merged.get(key)
        if prev is None:
            merged[key] = b
            continue
        cid = (None if prev.checkpoint_id is None or b.checkpoint_id is None
               else min(prev.checkpoint_id, b.checkpoint_id))
        merged[key] = Doorbell(
            b.thread_id, b.checkpoint_ns, tombstone=b.tombstone or prev.tombstone,
            removal=b.removal or prev.removal, checkpoint_id=cid,
        )
    return merged


@dataclass
class Projector:
    """Folds namespaces of the journal into view, index and head items."""

    ddb: DynamoDBClient
    s3: S3Client | None
    table_name: str
    bucket: str | None
    inline_limit: int = _blobs.DEFAULT_INLINE_LIMIT_BYTES
    max_item_bytes: int = MAX_ITEM_BYTES
    clock: Callable[[], float] = time.time
    store: DynamoJournalStore = field(init=False)
    blobs: _blobs.BlobStore | None = field(init=False)
    pool: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.store = DynamoJournalStore(self.ddb, self.table_name)
        self.blobs = _blobs.BlobStore(self.s3, self.bucket) if self.s3 and self.bucket else None
        # Writes of one namespace overlap (requests are I/O); botocore clients are
        # thread-safe.
        self.pool = ThreadPoolExecutor(WRITE_CONCURRENCY, thread_name_prefix="cj-projector")

    def close(self) -> None:
        self.store.close()
        self.pool.shutdown(wait=False)

    # -- reading -----------------------------------------------------------------------

    def read_namespace(
        self, thread_id: str, ns_name: str, *, from_checkpoint: str | None = None
    ) -> tuple[list[Item], bool]:
        """Journal and view items of a namespace, with the chunks of chunked records.

        With ``from_checkpoint``, only the tail: newest first, down to the first view item
        of a visible checkpoint older than it (a complete starting point: the fold takes
        its values as sources). Returns the items and whether the whole namespace was read.
        """
        pk = _keys.thread_pk(thread_id)
        items: list[Item] = []
        whole = True
        for page in self.store.pages(
            pk, prefix=_keys.ns_prefix(ns_name), descending=True,
            first_limit=32 if from_checkpoint else None,
        ):
            items.extend(page)
            if from_checkpoint is not None:
                sv = survey(items, now_s=self.clock()).get(ns_name)
                seed = sv.seed_below(from_checkpoint) if sv is not None else None
                if seed is not None:
                    whole = False
                    # The page may reach into older checkpoints: leave them out entirely
                    # (a view without its event there would look like a leftover).
                    items = [i for i in items
                             if (own := _keys.owner(i["SK"]["S"])) is None or own[1] >= seed]
                    break
        return self.store.with_chunks(pk, items), whole

    # -- projecting --------------------------------------------------------------------

    def project(self, bell: Doorbell) -> Stats:
        """Bring one namespace's view, index and head up to date with its journal."""
        stats = Stats(namespaces=1)
        thread_id, ns_name = bell.thread_id, bell.checkpoint_ns
        pk = _keys.thread_pk(thread_id)
        now = self.clock()
        tail = bell.checkpoint_id if not (bell.removal or bell.tombstone) else None
        items, whole = self.read_namespace(thread_id, ns_name, from_checkpoint=tail)
        fold = fold_partition(items, now_s=now, use_views=True)
        ns = fold.namespaces.get(ns_name) or Namespace()
        if not whole and not all(
            ns.current_view(c) is not None or ns.resolvable(e, raw=True) for c, e in ns.checkpoints.items()
        ):
            # A value older than the tail's starting view (a fork reusing an old version):
            # fold the whole namespace instead.
            items, whole = self.read_namespace(thread_id, ns_name)
            fold = fold_partition(items, now_s=now, use_views=True)
            ns = fold.namespaces.get(ns_name) or Namespace()
        stored_views = {
            _keys.parse_sk(i["SK"]["S"]).checkpoint_id: i
            for i in items if i.get("kind", {}).get("S") == _keys.KIND_VIEW
        }

        # Everything missing or behind, built first (pure), then written in three waves
        # that keep pointers behind what they point to (I2): blob objects, index entries,
        # views. A crash between waves leaves work the next delivery redoes identically.
        builds: dict[str, ViewItems] = {}
        for cid in sorted(ns.checkpoints):
            if ns.current_view(cid) is not None:
                stats.views_current += 1
                continue
            builds[cid] = build_view(
                thread_id, ns_name, ns, ns.checkpoints[cid],
                inline_limit=self.inline_limit, max_item_bytes=self.max_item_bytes,
            )
        offloads = {o.ref.key: o for b in builds.values() for o in b.offloads}  # one per content
        self._parallel([lambda o=o: self._put_blob(o.ref.key, o.body)  # type: ignore[misc]
                        for o in offloads.values()])
        stats.blobs_offloaded += len(offloads)
        stats.blob_bytes += sum(len(o.body) for o in offloads.values())
        # A stored view means its index entries were written before it: only new
        # checkpoints need theirs (a view rewritten for new writes does not).
        index = [i for cid, b in builds.items() if cid not in stored_views for i in b.index]
        if index:
            # Entries are functions of immutable events: an unconditional batch put is safe.
            self._parallel([lambda c=c: self.store.put_many(c)  # type: ignore[misc]
                            for c in _chunks(index, 25)])
            stats.index_items += len(index)
            stats.bytes_written += sum(item_size(i) for i in index)
        for b, written in zip(builds.values(), self._parallel(
            [lambda b=b: self._put_view(b.view) for b in builds.values()]  # type: ignore[misc]
        )):
            if written:
                stats.views_written += 1
                stats.bytes_written += item_size(b.view)

        # Views and index entries of checkpoints that are gone (pruned, deleted, hidden
        # by a tombstone, expired): removed, so nothing resurrects them (I6).
        gone = {cid: i for cid, i in stored_views.items() if cid not in ns.checkpoints}
        doomed = [(pk, i["SK"]["S"]) for cid, i in self._explained(
            thread_id, ns_name, ns, gone, now).items()]
        if ns.tombstone_ms:
            # A put in flight during delete_thread lands hidden by the tombstone: deleted
            # here, so no hidden item stays in clear (I6b).
            doomed += hidden_keys(items, {ns_name: ns.tombstone_ms})
        if bell.removal or bell.tombstone or doomed:
            visible = set(ns.checkpoints)
            for sk in self.store.keys(pk, "I#" + _keys.ns_prefix(ns_name)[2:]):
                owner = sk[1].split("#")[2]
                if owner not in visible:
                    doomed.append(sk)
        if bell.tombstone:
            stats.blobs_deleted += self._delete_blobs(thread_id, ns_name, ns.tombstone_ms)
        if doomed:
            self.store.delete_keys(doomed)
            stats.items_deleted += len(doomed)
        if bell.removal and whole:
            # Checkpoints went away (prune, delete_for_runs): objects no view points to
            # any more are tagged for the bucket's lifecycle rule. Writing the same
            # content again (a later view needing it) replaces the object, untagged.
            live = {o.ref.key for b in builds.values() for o in b.offloads}
            live |= {ref.key for view in ns.views.values() for ref in view.refs()}
            stats.blobs_orphaned += self._tag_orphans(
                _blobs.incarnation_prefix(thread_id, ns_name, ns.tombstone_ms), live)

        head = head_item(thread_id, ns_name, ns, projected_at_ms=int(now * 1000))
        if head is None:
            if bell.removal or bell.tombstone:
                self.store.delete_keys([(pk, _keys.head_sk(ns_name))])
        elif self._put_head(head):
            stats.bytes_written += item_size(head)
        return stats

    def _explained(self, thread_id: str, ns_name: str, ns: Namespace,
                   gone: dict[str, Item], now: float) -> dict[str, Item]:
        """The views among ``gone`` (views whose checkpoint is not visible) that a
        legitimate removal explains: expired, hidden by a tombstone, or named by a
        removal marker (prune, delete_for_runs). The others stay: a view whose event
        vanished otherwise is the witness that makes reads refuse rather than show the
        checkpoint before it (I2b); ``verify`` reports it."""
        out: dict[str, Item] = {}
        unexplained: dict[str, Item] = {}
        for cid, item in gone.items():
            exp = item.get("expires_at")
            written = int(item.get("written_at", {}).get("N", "0"))
            if (exp is not None and int(exp["N"]) <= now) or written <= ns.tombstone_ms:
                out[cid] = item
            else:
                unexplained[cid] = item
        if unexplained:
            removed = removed_ids(i for page in self.store.pages(
                _keys.thread_pk(thread_id), prefix=_keys.removal_prefix(ns_name)) for i in page)
            for cid, item in unexplained.items():
                if cid in removed:
                    out[cid] = item
                else:
                    logger.error("thread namespace %r: checkpoint %s is gone but no removal "
                                 "explains it; keeping its view as the witness (run "
                                 "`checkpoint-journal verify`)", ns_name, cid)
        return out

    def project_all(self, bells: Iterable[Doorbell]) -> Stats:
        """Project each namespace once, merging what several records ask for."""
        stats = Stats()
        for b in merge(bells).values():
            stats.add(self.project(b))
        return stats

    def _parallel(self, fns: list[Callable[[], Any]]) -> list[Any]:
        if len(fns) <= 1:
            return [fn() for fn in fns]
        return [f.result() for f in [self.pool.submit(fn) for fn in fns]]

    # -- writes --------------------------------------------------------------------------

    def _put_blob(self, key: str, body: bytes) -> None:
        if self.blobs is None:
            raise errors.NotConfiguredError(
                "a value needs offloading but the projector has no bucket (set BUCKET_NAME)"
            )
        self.blobs.put(key, body)

    def _put_view(self, item: Item) -> bool:
        return self.store.put_newer(item, "wm")

    def _put_head(self, item: Item) -> bool:
        return self.store.put_newer(item, "pa")

    def _tag_orphans(self, prefix: str, live: set[str]) -> int:
        blobs = self.blobs
        if blobs is None:
            return 0
        orphans = [k for k in blobs.keys(prefix) if k not in live]
        self._parallel([lambda k=k: blobs.tag_orphan(k) for k in orphans])  # type: ignore[misc]
        return len(orphans)

    def _delete_blobs(self, thread_id: str, ns_name: str, tombstone_ms: int) -> int:
        """Delete the namespace's blobs of every incarnation before the tombstone."""
        if self.blobs is None:
            return 0
        doomed: list[str] = []
        for key in self.blobs.keys(_blobs.namespace_prefix(thread_id, ns_name)):
            try:
                if _blobs.incarnation_of(key) < tombstone_ms:
                    doomed.append(key)
            except (ValueError, IndexError):
                continue
        self.blobs.delete(doomed)
        return len(doomed)

    # -- rebuild -------------------------------------------------------------------------

    def rebuild_thread(self, thread_id: str) -> Stats:
        """Drop the thread's view, index and head items and project it afresh."""
        pk = _keys.thread_pk(thread_id)
        keys = self.store.keys(pk, "")
        projector_items = [
            (p, sk) for p, sk in keys
            if sk.startswith(("H#", "I#")) or sk.endswith("#" + _keys.KIND_VIEW)
        ]
        self.store.delete_keys(projector_items)
        namespaces = _keys.namespaces(sk for _, sk in keys)
        stats = Stats(items_deleted=len(projector_items))
        for ns_name in namespaces:
            stats.add(self.project(Doorbell(thread_id, ns_name)))
        return stats

    def threads(self) -> Iterable[str]:
        """Every thread id in the table (a Scan: for rebuild-all and operators only)."""
        return thread_ids(self.ddb, self.table_name)
