"""delete_thread, delete_for_runs, prune and copy_thread: the saver's maintenance.

A mixin of ``JournalSaver``: these operations walk a thread's partition, write what the
kept checkpoints still need (carried values) before deleting anything, and leave the
projector's items consistent (views and index entries of deleted checkpoints go with
them; the tombstone's stream record makes the projector remove the thread's blobs).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from checkpoint_journal import schemas
from checkpoint_journal._core import chain as _chain
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import BlobRef, Fold, value_record
from checkpoint_journal._core.items import metadata_attrs, plan_items, uniq
from checkpoint_journal._core.store import DynamoJournalStore

# Tombstones outlive the stream's 24-hour retention and Lambda's retries with margin.
TOMBSTONE_TTL_SECONDS = 7 * 24 * 3600
# Checkpoints listed per removal marker: ~140 bytes each, well inside one item.
REMOVED_PER_MARKER = 1000


class _Core(Protocol):
    """What the maintenance operations use of the saver."""

    _store: DynamoJournalStore
    _pool: ThreadPoolExecutor
    compression: bool
    max_item_bytes: int
    _hasher: _chain.Hasher

    def _now(self) -> float: ...
    def _expires_at(self, now: float) -> int | None: ...
    def _loads(self, typed: tuple[str, bytes]) -> Any: ...
    def _forget_thread(self, thread_id: str) -> None: ...
    def _read(self, thread_id: str, checkpoint_ns: str | None, *, use_views: bool = False,
              items: list[dict[str, Any]] | None = None) -> Fold: ...
    def delete_thread(self, thread_id: str) -> None: ...
    def _remove(self, thread_id: str, fold: Fold, keep: set[tuple[str, str]],
                remove: set[tuple[str, str]] | None) -> None: ...


class Maintenance:
    def delete_thread(self: _Core, thread_id: str) -> None:
        """Hide the thread at once (tombstones), then delete its journal items."""
        pk = _keys.thread_pk(thread_id)
        keys = self._store.keys(pk, "")  # one partition walk: journal, views, chunks, index
        namespaces = {ns for _, sk in keys if (ns := _keys.namespace_of(sk)) is not None}
        now = self._now()
        for ns_name in namespaces:
            sk = _keys.tombstone_sk(ns_name)
            item = {
                "PK": {"S": pk},
                "SK": {"S": sk},
                "kind": {"S": _keys.KIND_TOMBSTONE},
                "written_at": {"N": str(int(now * 1000))},
                "expires_at": {"N": str(int(now) + TOMBSTONE_TTL_SECONDS)},
                "hash": {"S": self._hasher.tombstone(pk, sk, int(now * 1000))},
            }
            if self._hasher.key_id is not None:
                item["hash_key_id"] = {"S": self._hasher.key_id}
            self._store.put_plain(item)
        tomb = {_keys.tombstone_sk(ns) for ns in namespaces}
        self._store.delete_keys([(p, s) for p, s in keys if s not in tomb])
        # Crypto-shredding: the thread's archived events become unreadable. After the
        # journal items, never before (the archiver's race rule, see _shred).
        from checkpoint_journal._core.shred import DynamoKeyStore

        DynamoKeyStore(self._store.client, self._store.table).delete(thread_id)
        self._forget_thread(thread_id)

    def delete_for_runs(self: _Core, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) created by the given runs."""
        doomed: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for run_id in run_ids:
            for pk, sk in self._store.run_keys(run_id):
                key = _keys.parse_sk(sk)
                doomed[pk].add((key.checkpoint_ns, key.checkpoint_id))
        for pk, cps in doomed.items():
            thread_id = _keys.thread_from_pk(pk)
            fold = self._read(thread_id, None)
            keep = {
                (ns_name, cid)
                for ns_name, ns in fold.namespaces.items()
                for cid in ns.checkpoints
                if (ns_name, cid) not in cps
            }
            self._remove(thread_id, fold, keep, remove=cps)

    def prune(self: _Core, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep the latest checkpoint of each namespace (and its writes);
        ``delete``: delete the threads."""
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
        for thread_id in thread_ids:
            if strategy == "delete":
                self.delete_thread(thread_id)
                continue
            fold = self._read(thread_id, None)
            keep = {
                (ns_name, max(ns.checkpoints))
                for ns_name, ns in fold.namespaces.items()
                if ns.checkpoints
            }
            self._remove(thread_id, fold, keep, remove=None)

    def _remove(
        self: _Core,
        thread_id: str,
        fold: Fold,
        keep: set[tuple[str, str]],
        remove: set[tuple[str, str]] | None,
    ) -> None:
        """Delete every journal item of the thread whose checkpoint is not kept (or, with
        ``remove``, only those), after carrying forward the values kept checkpoints still
        need from the items being deleted."""
        pk = _keys.thread_pk(thread_id)

        def doomed(ns_name: str, cid: str) -> bool:
            return (ns_name, cid) in remove if remove is not None else (ns_name, cid) not in keep

        now = self._now()
        now_ms = int(now * 1000)
        plans = []
        for ns_name, cid in sorted(keep):
            ns = fold.namespaces[ns_name]
            event = ns.checkpoints[cid]
            checkpoint = self._loads(event.checkpoint)
            carried = [
                {"channel": ch, "version": r.version, "value": value_record(r.value)}
                for ch, r in ns.resolve(event, checkpoint["channel_versions"]).items()
                if r.source != cid and doomed(ns_name, r.source)
            ]
            if not carried:
                continue
            record = {
                "thread_id": thread_id, "checkpoint_ns": ns_name, "checkpoint_id": cid,
                "written_at": now_ms, "blobs": carried,
            }
            encoded = self._hasher.encode(schemas.RECORD_BLOBS, record, compress=self.compression)
            plans.append(plan_items(
                pk, _keys.blobs_sk(ns_name, cid, uniq(now_ms)), _keys.KIND_BLOBS, encoded,
                written_at_ms=now_ms, expires_at=self._expires_at(now),
                max_item_bytes=self.max_item_bytes,
            ))
        # Removal markers: what goes, with its chain hash, so verify can tell this
        # removal from an item that went missing and still check what remains.
        reason = "prune" if remove is None else "delete_for_runs"
        for ns_name, ns in sorted(fold.namespaces.items()):
            gone = [
                {"checkpoint_id": cid, "parent_checkpoint_id": ev.parent_checkpoint_id,
                 "chain_hash": ev.chain_hash}
                for cid, ev in sorted(ns.checkpoints.items()) if doomed(ns_name, cid)
            ]
            # ~150 bytes per entry before compression: a marker never needs chunks.
            per_marker = max(1, min(REMOVED_PER_MARKER, (self.max_item_bytes - 8192) // 200))
            for i in range(0, len(gone), per_marker):
                marker = {
                    "thread_id": thread_id, "checkpoint_ns": ns_name, "written_at": now_ms,
                    "reason": reason, "removed": gone[i:i + per_marker],
                }
                encoded = self._hasher.encode(
                    schemas.RECORD_REMOVAL, marker, compress=self.compression
                )
                plans.append(plan_items(
                    pk, _keys.removal_sk(ns_name, uniq(now_ms)), _keys.KIND_REMOVAL, encoded,
                    written_at_ms=now_ms, expires_at=self._expires_at(now),
                    max_item_bytes=self.max_item_bytes,
                ))
        # Carried values and markers first, deletes after: a crash in between leaves
        # duplicates, never a checkpoint without its values.
        for f in [self._pool.submit(self._store.append, p) for p in plans]:
            f.result()
        victims = [
            (p, sk)
            for p, sk in self._store.keys(pk, "")
            if (own := _keys.owner(sk)) is not None and doomed(*own)
        ]
        self._store.delete_keys(victims)
        self._forget_thread(thread_id)

    def copy_thread(self: _Core, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every visible checkpoint and pending write to another thread."""
        fold = self._read(source_thread_id, None)
        pk = _keys.thread_pk(target_thread_id)
        now = self._now()
        now_ms = int(now * 1000)
        expires_at = self._expires_at(now)
        plans = []
        for ns_name, ns in fold.namespaces.items():
            copied = set(ns.checkpoints)
            chains: dict[str, str] = {}
            # In id order (uuid6: a parent sorts before its children), so each copy
            # chains to its parent's copy.
            for cid, event in sorted(ns.checkpoints.items()):
                checkpoint = self._loads(event.checkpoint)
                blobs = dict(event.blobs)
                for ch, r in ns.resolve(event, checkpoint["channel_versions"]).items():
                    if r.source not in copied or (ch, r.version) not in ns.checkpoints[
                        r.source
                    ].blobs:
                        assert not isinstance(r.value, BlobRef)  # a journal-only fold
                        blobs[(ch, r.version)] = r.value
                record: dict[str, Any] = {
                    "thread_id": target_thread_id, "checkpoint_ns": ns_name, "checkpoint_id": cid,
                    "parent_checkpoint_id": event.parent_checkpoint_id, "written_at": now_ms,
                    "checkpoint": {"type": event.checkpoint[0], "data": event.checkpoint[1]},
                    "metadata": {"type": event.metadata[0], "data": event.metadata[1]},
                    "blobs": [
                        {"channel": ch, "version": ver,
                         "value": None if v is None else {"type": v[0], "data": v[1]}}
                        for (ch, ver), v in blobs.items()
                    ],
                    "channel_versions": [
                        {"channel": ch, "version": v}
                        for ch, v in checkpoint["channel_versions"].items()
                    ],
                }
                encoded = self._hasher.encode(
                    schemas.RECORD_CHECKPOINT, record, compress=self.compression,
                    parent_chain=chains.get(event.parent_checkpoint_id or ""),
                )
                chains[cid] = record["chain_hash"]
                extra = metadata_attrs(self._loads(event.metadata))
                if event.parent_checkpoint_id:
                    extra["parent"] = {"S": event.parent_checkpoint_id}
                plans.append(plan_items(
                    pk, _keys.checkpoint_sk(ns_name, cid), _keys.KIND_CHECKPOINT, encoded,
                    written_at_ms=now_ms, expires_at=expires_at, extra=extra,
                    max_item_bytes=self.max_item_bytes,
                ))
            for cid, writes in ns.writes.items():
                by_task: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
                for w in writes:
                    by_task[(w.task_id, w.task_path)].append(
                        {"channel": w.channel, "idx": w.idx, "value": value_record(w.value)}
                    )
                for (task_id, task_path), ws in by_task.items():
                    record = {
                        "thread_id": target_thread_id, "checkpoint_ns": ns_name,
                        "checkpoint_id": cid, "task_id": task_id, "task_path": task_path,
                        "written_at": now_ms, "writes": ws,
                    }
                    encoded = self._hasher.encode(
                        schemas.RECORD_WRITES, record, compress=self.compression
                    )
                    plans.append(plan_items(
                        pk, _keys.writes_sk(ns_name, cid, task_id, uniq(now_ms)),
                        _keys.KIND_WRITES, encoded, written_at_ms=now_ms, expires_at=expires_at,
                        max_item_bytes=self.max_item_bytes,
                    ))
        for f in [self._pool.submit(self._store.append, p) for p in plans]:
            f.result()

