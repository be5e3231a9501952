"""``verify``'s checks of the audit archive: every archived event against its own hash,
and the archive against the table's threads as ``verify_table`` found them (each way:
what the archive holds that the table lost, and what the table holds that the archive
should have)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from checkpoint_journal._core import archive_read as archive
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import shred as _shred
from checkpoint_journal._core.archive import RECORD_OF_KIND, ArchiveDamage
from checkpoint_journal._core.archive_read import ArchivedEvent
from checkpoint_journal._core.chain import Hasher
from checkpoint_journal.cli.browse import iso_ms
from checkpoint_journal.cli.verify_table import (
    ALTERED,
    ARCHIVE_DAMAGED,
    DISAGREE,
    NOT_ARCHIVED,
    REMOVED,
    UNREADABLE,
    Report,
    ThreadState,
    check_hash,
    item_location,
    short_hash,
)
from checkpoint_journal.errors import CorruptRecordError

# The archiver's MaximumRecordAgeInSeconds (template.yaml): a record older than this has
# been archived or sent to the failure queue.
MAX_RECORD_AGE_MS = 6 * 3600 * 1000


# Archive records whose content cannot be checked, and what that says.
_UNREADABLE_STATES = {
    archive.STATE_NO_KEY_ACCESS: (
        UNREADABLE, "encrypted, and verify was not given the table to read the thread's "
        "archive key"),
    archive.STATE_UNDECRYPTABLE: (
        ALTERED, "the record's encrypted body fails authentication: the archive file was "
        "edited"),
    archive.STATE_REFERENCE_MISMATCH: (
        DISAGREE, "the table item this record references no longer has the body the "
        "archive recorded (its digest differs): the table item was altered"),
}


def check_archive(report: Report, hasher: Hasher, events: Iterable[ArchivedEvent],
                  damaged: list[ArchiveDamage],
                  tables: dict[str, ThreadState], *, bucket: str,
                  thread_filter: str | None) -> None:
    """Check archived events (``archive_read.ArchivedEvent``) against themselves and
    against the table's threads in ``tables`` (all threads the table has, or the one
    verified)."""
    seen: set[tuple[str, str, str]] = set()
    newest_ms = 0
    for ev in events:
        loc = f"s3://{bucket}/{ev.file} #{ev.position}"
        newest_ms = max(newest_ms, ev.approximate_creation_ms)
        report.counts["archive events"] += 1
        if ev.kind == _keys.KIND_CHECKPOINT and ev.checkpoint_id:
            # Archived, whatever its content's fate below (reported there once).
            seen.add((ev.thread_id, ev.checkpoint_ns, ev.checkpoint_id))
        if ev.state == archive.STATE_SHREDDED:
            _shredded(report, ev, loc, tables.get(ev.thread_id))
            continue
        if ev.state == archive.STATE_NONE or ev.kind == _keys.KIND_TOMBSTONE:
            continue
        if ev.state == archive.STATE_REFERENCE_GONE:
            report.counts["archive events referencing removed items"] += 1
            continue
        if ev.state in _UNREADABLE_STATES:
            problem, detail = _UNREADABLE_STATES[ev.state]
            report.add(problem, "archive", ev.thread_id, ev.checkpoint_ns, ev.checkpoint_id,
                       loc, detail)
            continue
        if ev.kind not in RECORD_OF_KIND:
            continue
        if ev.event_name == "MODIFY":
            # Journal items are written once (a conditional put): a MODIFY in the stream
            # is an item rewritten in place, by something other than a saver.
            report.add(ALTERED, "table", ev.thread_id, ev.checkpoint_ns, ev.checkpoint_id,
                       loc, f"the table item {ev.pk} / {ev.sk} was rewritten in place at "
                       f"{iso_ms(ev.approximate_creation_ms)} (the archive holds both versions; "
                       "savers never rewrite an event)")
            continue
        try:
            rec = ev.record()
        except (CorruptRecordError, KeyError) as e:
            report.add(UNREADABLE, "archive", ev.thread_id, ev.checkpoint_ns, ev.checkpoint_id,
                       loc, f"cannot decode the archived event: {e}")
            continue
        if rec is None:
            continue
        record_type = RECORD_OF_KIND[ev.kind]
        if not check_hash(report, hasher, "archive", ev.thread_id, ev.checkpoint_ns,
                          ev.checkpoint_id, loc, record_type, rec):
            continue
        if ev.kind == _keys.KIND_CHECKPOINT and ev.checkpoint_id:
            _against_table(report, ev, rec, loc, tables.get(ev.thread_id))
    for damage in damaged:
        report.add(ARCHIVE_DAMAGED, "archive", thread_filter or "", None, None,
                   f"s3://{bucket}/{damage.file}"
                   + (f" #{damage.position}" if damage.position is not None else ""),
                   damage.reason)
    report.counts["archive files damaged"] += len(damaged)
    # The other way: what the table has that the archive should have. A thread's items
    # share a stream shard, read in order: once the archive holds a later checkpoint of
    # the namespace, an earlier one missing was not merely slow. Nor is one older than
    # the archive's newest event by more than the stream's record age limit.
    latest: dict[tuple[str, str], str] = {}
    for t, ns, cid in seen:
        latest[(t, ns)] = max(latest.get((t, ns), ""), cid)
    for thread_id, state in tables.items():
        for (ns, cid), tev in sorted(state.checkpoints.items()):
            if (thread_id, ns, cid) in seen:
                continue
            later = latest.get((thread_id, ns), "")
            if later > cid:
                why = f"the archive holds the later checkpoint {later} of the same namespace"
            elif newest_ms - tev.written_at_ms > MAX_RECORD_AGE_MS:
                why = (f"the archive holds events up to {iso_ms(newest_ms)}, beyond the "
                       "stream's record age limit after this one")
            else:
                report.counts["checkpoints not archived yet"] += 1
                continue
            report.add(NOT_ARCHIVED, "archive", thread_id, ns, cid,
                       item_location(_keys.thread_pk(thread_id), tev.sk),
                       f"the table has this checkpoint but no archive file does, although {why}: "
                       "an archive file was removed, or the archiver was not running")


def _against_table(report: Report, ev: ArchivedEvent, rec: dict[str, Any], loc: str,
                   state: ThreadState | None) -> None:
    if state is None and _expired(ev):
        report.counts["checkpoints expired (TTL)"] += 1
        return
    if state is None:
        # The thread has nothing in the table: deleted (its tombstones expire after a
        # week, its archive key with it) or every item was removed.
        report.add(REMOVED, "table", ev.thread_id, ev.checkpoint_ns, ev.checkpoint_id, loc,
                   "archived checkpoint of a thread that has no item left in the table, "
                   "while its archive key still exists (delete_thread destroys the key)")
        return
    ns, cid = ev.checkpoint_ns, ev.checkpoint_id or ""
    tev = state.checkpoints.get((ns, cid))
    if tev is not None:
        report.counts["checkpoints matched table to archive"] += 1
        if tev.record.get("content_hash") != rec.get("content_hash") or tev.record.get(
            "chain_hash"
        ) != rec.get("chain_hash"):
            report.add(DISAGREE, "table", ev.thread_id, ns, cid,
                       item_location(_keys.thread_pk(ev.thread_id), tev.sk),
                       f"the table's event differs from the archive's ({loc}): content hash "
                       f"{short_hash(tev.record.get('content_hash'))} vs "
                       f"{short_hash(rec.get('content_hash'))}")
        return
    if (ns, cid) in state.removed:
        report.counts["checkpoints removed by prune/delete_for_runs"] += 1
        return
    if ev.written_at_ms is not None and ev.written_at_ms <= state.tombstones.get(ns, -1):
        report.counts["checkpoints deleted by delete_thread"] += 1
        return
    if _expired(ev):
        report.counts["checkpoints expired (TTL)"] += 1
        return
    report.add(REMOVED, "table", ev.thread_id, ns, cid, loc,
               "archived checkpoint missing from the table, and no prune, delete_for_runs or "
               "delete_thread removed it")


def _shredded(report: Report, ev: ArchivedEvent, loc: str, state: ThreadState | None) -> None:
    """An archived event whose thread key is gone: fine when delete_thread erased the
    thread; a problem when its checkpoint is still in the table (someone destroyed the
    key, and with it the archive's testimony)."""
    ns, cid = ev.checkpoint_ns, ev.checkpoint_id
    if (ev.kind == _keys.KIND_CHECKPOINT and cid and state is not None
            and (ns, cid) in state.checkpoints
            and ev.key_id != _shred.WITHHELD_KEY_ID):
        report.add(REMOVED, "archive", ev.thread_id, ns, cid, loc,
                   "the archived event can no longer be read (the thread's archive key is "
                   "gone) although the checkpoint is still in the table and the thread was "
                   "not deleted: the key was removed by hand")
        return
    report.counts["archive events erased (thread deleted)"] += 1


def _expired(ev: ArchivedEvent) -> bool:
    """The item had a TTL that has passed: DynamoDB deletes it (within a few days)."""
    return ev.expires_at is not None and ev.expires_at <= time.time()


