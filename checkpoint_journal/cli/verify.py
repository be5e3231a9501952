"""``checkpoint-journal verify``: is the journal, and its archive, as the savers wrote it?

Checks, per thread (``_chain`` defines the hashes):

Table
  - every checkpoint, writes, blobs event and removal marker: it decodes, it sits under
    the key its content names (thread, namespace, checkpoint), and its ``content_hash``
    recomputes (under the chain key when the journal is keyed);
  - every checkpoint's ``chain_hash`` follows from its parent's: the parent found in the
    table, or listed by a removal marker of a ``prune``/``delete_for_runs``;
  - a checkpoint named as a parent, or by a writes event, that is in neither is
    *removed*; a removal marker listing a checkpoint that is still there is a prune
    that did not finish (a note, not a problem);
  - every projector view agrees with the journal: the same chain hash, checkpoint and
    metadata, and every channel value equal to the journal's (an offloaded value by its
    SHA-256, which names the S3 object).

Archive (when a bucket is given)
  - every file reads, every record decrypts (its AES-GCM tag authenticates it) and its
    event's ``content_hash`` recomputes;
  - every archived checkpoint still in the table has the same hashes there; one that is
    not is explained by a removal marker or a tombstone (``delete_thread``), or it was
    *removed from the table*; a checkpoint the table holds that the archive lacks,
    although newer files exist, was *removed from the archive* (or never archived).

Items hidden by a tombstone (a ``delete_thread`` in progress) and events of erased
threads (their archive key destroyed) are counted, not checked: they are gone by design.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from checkpoint_journal import schemas
from checkpoint_journal._core import archive_read as archive
from checkpoint_journal._core import blobs as _blobs
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import shred as _shred
from checkpoint_journal._core.archive import RECORD_OF_KIND, ArchiveDamage
from checkpoint_journal._core.archive_read import ArchivedEvent
from checkpoint_journal._core.chain import Hasher
from checkpoint_journal._core.fold import BlobRef, decode_view, fold_partition, record_body
from checkpoint_journal._core.store import DynamoJournalStore, thread_ids
from checkpoint_journal.cli.browse import NotFoundError, iso_ms
from checkpoint_journal.errors import CorruptRecordError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

Item = dict[str, Any]

# Problems: each makes verify fail.
ALTERED = "altered"            # content hash does not recompute
CHAIN_BROKEN = "chain-broken"  # chain hash does not follow from the parent's
REMOVED = "removed"            # a checkpoint is missing without a legitimate removal
MISPLACED = "misplaced"        # an event stored under another checkpoint's key
UNREADABLE = "unreadable"      # an item or archive record that cannot be decoded
WRONG_KEY = "wrong-key"        # hashed under another key, or unkeyed in a keyed journal
VIEW_MISMATCH = "view-mismatch"
DISAGREE = "disagree"          # table and archive hold different versions of an event
ARCHIVE_DAMAGED = "archive-damaged"
NOT_ARCHIVED = "not-archived"  # in the table, missing from an archive that has later files

# The archiver's MaximumRecordAgeInSeconds (template.yaml): a record older than this has
# been archived or sent to the failure queue.
MAX_RECORD_AGE_MS = 6 * 3600 * 1000



@dataclass(frozen=True)
class Finding:
    problem: str
    where: str
    """``table`` or ``archive``."""
    thread_id: str
    checkpoint_ns: str | None
    checkpoint_id: str | None
    location: str
    """The table item (``PK / SK``) or the archive record (``s3://…/file.avro #n``)."""
    detail: str

    def doc(self) -> dict[str, Any]:
        return {
            "problem": self.problem, "where": self.where, "thread_id": self.thread_id,
            "checkpoint_ns": self.checkpoint_ns, "checkpoint_id": self.checkpoint_id,
            "location": self.location, "detail": self.detail,
        }


@dataclass
class Report:
    key_id: str | None
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    threads: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, problem: str, where: str, thread_id: str, ns: str | None, cid: str | None,
            location: str, detail: str) -> None:
        self.findings.append(Finding(problem, where, thread_id, ns, cid or None, location,
                                     detail))

    def doc(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "hash_key_id": self.key_id,
            "threads": len(self.threads),
            "checked": dict(sorted(self.counts.items())),
            "problems": [f.doc() for f in self.findings],
            "notes": self.notes,
        }


@dataclass
class _Event:
    kind: str
    sk: str
    record: dict[str, Any]
    written_at_ms: int
    hash_ok: bool
    """Its content hash verified: only then is its chain worth checking."""


@dataclass
class ThreadState:
    """What the table says about one thread, once checked."""

    thread_id: str
    checkpoints: dict[tuple[str, str], _Event] = field(default_factory=dict)
    removed: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(ns, checkpoint id) -> the removal marker's entry, with ``written_at``."""
    tombstones: dict[str, int] = field(default_factory=dict)
    """namespace -> written_at of its tombstone (delete_thread)."""


def _loc(pk: str, sk: str) -> str:
    return f"{pk} / {sk}"


def _short(h: str | None) -> str:
    return (h[:16] + "…") if h else "none"


def check_hash(report: Report, hasher: Hasher, where: str, thread_id: str, ns: str | None,
               cid: str | None, location: str, record_type: str, rec: dict[str, Any]) -> bool:
    """The content hash of one event; False (and a finding) when it does not verify."""
    stored = rec.get("content_hash")
    key_id = rec.get("hash_key_id")
    what = record_type.replace("_", " ")
    if stored is None:
        if hasher.key_id is not None:
            report.add(WRONG_KEY, where, thread_id, ns, cid, location,
                       f"{what} carries no hash, in a journal keyed with {hasher.key_id}: "
                       "written before hashes existed, or by someone without the key")
            return False
        report.counts["unhashed (written before v2)"] += 1
        return True
    if key_id != hasher.key_id:
        if hasher.key_id is None:
            detail = (f"{what} is hashed under chain key {key_id}; give verify that key "
                      "(--chain-key-file) to check it")
        elif key_id is None:
            detail = (f"{what} is hashed without a key, in a journal keyed with "
                      f"{hasher.key_id}: forged, or written by a saver without the key")
        else:
            detail = f"{what} is hashed under key {key_id}, not the given key {hasher.key_id}"
        report.add(WRONG_KEY, where, thread_id, ns, cid, location, detail)
        return False
    actual = hasher.content(record_type, rec)
    if not hasher.equal(actual, stored):
        report.add(ALTERED, where, thread_id, ns, cid, location,
                   f"{what} content does not match its content_hash (stored {_short(stored)}, "
                   f"recomputed {_short(actual)}): altered after it was written"
                   + (", or forged without the chain key" if hasher.key_id else ""))
        return False
    return True


def _tombstone_ok(report: Report, hasher: Hasher, thread_id: str, pk: str, ns: str,
                  item: Item, written_at_ms: int) -> bool:
    """Whether a tombstone was written by a saver (with the key): only then does it
    explain the deletion of what it covers."""
    sk = item["SK"]["S"]
    stored = item.get("hash", {}).get("S")
    key_id = item.get("hash_key_id", {}).get("S")
    loc = _loc(pk, sk)
    report.counts["tombstones (table)"] += 1
    if stored is None and hasher.key_id is None:
        report.counts["unhashed (written before v2)"] += 1
        return True
    if stored is None or key_id != hasher.key_id:
        report.add(WRONG_KEY, "table", thread_id, ns, None, loc,
                   "tombstone " + ("without a hash" if stored is None else
                                   f"hashed under key {key_id}")
                   + (f", in a journal keyed with {hasher.key_id}" if hasher.key_id else
                      "; give verify that key (--chain-key-file)")
                   + ": what it hides is not taken as deleted by delete_thread")
        return False
    if not hasher.equal(hasher.tombstone(pk, sk, written_at_ms), stored):
        report.add(ALTERED, "table", thread_id, ns, None, loc,
                   "tombstone does not match its hash (time or key changed, or forged): "
                   "what it hides is not taken as deleted by delete_thread")
        return False
    return True


def _decode(kind: str, body: bytes, item_or_rec: dict[str, Any]) -> dict[str, Any]:
    return schemas.decode(RECORD_OF_KIND[kind], body, item_or_rec["fp"]["S"],
                          item_or_rec["codec"]["S"])


def check_thread(report: Report, hasher: Hasher, thread_id: str, items: list[Item]) -> ThreadState:
    """Check one thread's partition (every item, with bodies)."""
    pk = _keys.thread_pk(thread_id)
    state = ThreadState(thread_id)
    report.threads.add(thread_id)
    chunks: dict[str, dict[int, bytes]] = defaultdict(dict)
    parsed: list[tuple[_keys.ParsedKey, Item]] = []
    views: list[tuple[_keys.ParsedKey, Item]] = []
    for item in items:
        try:
            key = _keys.parse_sk(item["SK"]["S"])
        except ValueError:
            continue  # heads, index entries
        if key.kind == _keys.KIND_CHUNK:
            chunks[key.parent_sk][int(item["SK"]["S"].rsplit("#", 1)[1])] = item["body"]["B"]
        elif key.kind == _keys.KIND_TOMBSTONE:
            at = int(item.get("written_at", {}).get("N", "0"))
            if _tombstone_ok(report, hasher, thread_id, pk, key.checkpoint_ns, item, at):
                state.tombstones[key.checkpoint_ns] = max(
                    state.tombstones.get(key.checkpoint_ns, 0), at)
        elif key.kind == _keys.KIND_VIEW:
            views.append((key, item))
        else:
            parsed.append((key, item))

    writes_of: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key, item in parsed:
        sk = item["SK"]["S"]
        loc = _loc(pk, sk)
        ns, cid = key.checkpoint_ns, key.checkpoint_id or None
        written = int(item.get("written_at", {}).get("N", "0"))
        if written <= state.tombstones.get(ns, -1):
            report.counts["hidden by delete_thread"] += 1
            continue
        body = record_body(item, chunks.get(key.parent_sk, {}))
        if body is None:
            report.add(UNREADABLE, "table", thread_id, ns, cid, loc,
                       "the item's chunks are missing or do not match its digest")
            continue
        try:
            rec = _decode(key.kind, body, item)
        except (CorruptRecordError, KeyError) as e:
            report.add(UNREADABLE, "table", thread_id, ns, cid, loc, f"cannot decode: {e}")
            continue
        names = (rec.get("thread_id"), rec.get("checkpoint_ns"))
        if names != (thread_id, ns) or (cid and rec.get("checkpoint_id") != cid):
            report.add(MISPLACED, "table", thread_id, ns, cid, loc,
                       f"the item's key names thread {thread_id!r}, namespace {ns!r}"
                       + (f", checkpoint {cid}" if cid else "")
                       + f"; its content names thread {rec.get('thread_id')!r}, namespace "
                       f"{rec.get('checkpoint_ns')!r}"
                       + (f", checkpoint {rec.get('checkpoint_id')}" if cid else ""))
            continue
        record_type = RECORD_OF_KIND[key.kind]
        report.counts[f"{record_type.replace('_event', '')} events (table)"] += 1
        ok = check_hash(report, hasher, "table", thread_id, ns, cid, loc, record_type, rec)
        if key.kind == _keys.KIND_CHECKPOINT and cid:
            state.checkpoints[(ns, cid)] = _Event(key.kind, sk, rec, written, ok)
        elif key.kind == _keys.KIND_WRITES and cid:
            writes_of[(ns, cid)].append(sk)
        elif key.kind == _keys.KIND_REMOVAL:
            for entry in rec["removed"]:
                state.removed[(ns, entry["checkpoint_id"])] = {
                    **entry, "written_at": schemas.millis(rec["written_at"]),
                    "reason": rec["reason"],
                }

    # The chain, parent by parent.
    for (ns, cid), ev in sorted(state.checkpoints.items()):
        rec = ev.record
        loc = _loc(pk, ev.sk)
        if not ev.hash_ok or rec.get("chain_hash") is None or rec.get("content_hash") is None:
            continue  # already reported, or written before the hashes
        parent_id = rec.get("parent_checkpoint_id")
        parent_chain: str | None = None
        if parent_id:
            parent = state.checkpoints.get((ns, parent_id))
            if parent is not None:
                parent_chain = parent.record.get("chain_hash")
            elif (ns, parent_id) in state.removed:
                parent_chain = state.removed[(ns, parent_id)].get("chain_hash")
            else:
                report.add(REMOVED, "table", thread_id, ns, parent_id, _loc(pk, _keys.checkpoint_sk(ns, parent_id)),
                           f"checkpoint {parent_id} (the parent of {cid}) is not in the table "
                           "and no prune or delete_for_runs removed it")
                continue
        expected = hasher.chain(parent_chain, rec["content_hash"])
        if not hasher.equal(expected, rec["chain_hash"]):
            report.add(CHAIN_BROKEN, "table", thread_id, ns, cid, loc,
                       f"chain_hash {_short(rec['chain_hash'])} does not follow from "
                       + (f"the parent {parent_id}'s chain {_short(parent_chain)}"
                          if parent_id else "the start of the chain (no parent)")
                       + f": expected {_short(expected)}. The parent was altered or "
                       "replaced, or this checkpoint was inserted")
        report.counts["checkpoints chained (table)"] += 1

    for (ns, cid), sks in sorted(writes_of.items()):
        if (ns, cid) not in state.checkpoints and (ns, cid) not in state.removed:
            report.add(REMOVED, "table", thread_id, ns, cid, _loc(pk, _keys.checkpoint_sk(ns, cid)),
                       f"checkpoint {cid} has {len(sks)} pending-writes event(s) in the table "
                       "but is not there itself, and no prune or delete_for_runs removed it")
    for (ns, cid), entry in sorted(state.removed.items()):
        if (ns, cid) in state.checkpoints:
            report.notes.append(
                f"{thread_id}: checkpoint {cid} is listed as removed by {entry['reason']} but "
                "is still in the table (the removal did not finish; running it again does)")

    _check_views(report, thread_id, pk, items, views, state)
    return state


def _typed_digest(v: tuple[str, bytes]) -> str:
    return _blobs.digest(v[0], v[1])


def _check_views(report: Report, thread_id: str, pk: str, items: list[Item],
                 views: list[tuple[_keys.ParsedKey, Item]], state: ThreadState) -> None:
    if not views:
        return
    fold = fold_partition([i for i in items if i.get("kind", {}).get("S") != "V"],
                          now_s=0, use_views=False)
    for key, item in views:
        ns, cid = key.checkpoint_ns, key.checkpoint_id
        ev = state.checkpoints.get((ns, cid))
        loc = _loc(pk, item["SK"]["S"])
        if ev is None:
            continue  # a leftover view of a removed checkpoint: never read (fold ignores it)
        try:
            view = decode_view(item)
        except (CorruptRecordError, KeyError) as e:
            report.add(UNREADABLE, "table", thread_id, ns, cid, loc, f"view cannot be decoded: {e}")
            continue
        report.counts["views (table)"] += 1
        rec = ev.record
        problems: list[str] = []
        if view.chain_hash != rec.get("chain_hash"):
            problems.append("its chain_hash differs from the checkpoint event's")
        if view.checkpoint != (rec["checkpoint"]["type"], rec["checkpoint"]["data"]):
            problems.append("its checkpoint differs from the event's")
        if view.metadata != (rec["metadata"]["type"], rec["metadata"]["data"]):
            problems.append("its metadata differs from the event's")
        namespace = fold.namespaces.get(ns)
        event = namespace.checkpoints.get(cid) if namespace is not None else None
        if namespace is not None and event is not None:
            journal = namespace.resolve(event, event.channel_versions)
            for ch, (ver, value, _) in sorted(view.channels.items()):
                r = journal.get(ch)
                if r is None or r.version != ver:
                    problems.append(f"channel {ch!r} at version {ver!r} is not in the journal")
                    continue
                if value is None or r.value is None or isinstance(r.value, BlobRef):
                    if (value is None) != (r.value is None):
                        problems.append(f"channel {ch!r} differs from the journal")
                    continue
                if isinstance(value, BlobRef):
                    if value.digest != _typed_digest(r.value):
                        problems.append(f"channel {ch!r} points to another value than the "
                                        "journal's (S3 object name)")
                elif value != r.value:
                    problems.append(f"channel {ch!r} differs from the journal")
        if problems:
            report.add(VIEW_MISMATCH, "table", thread_id, ns, cid, loc,
                       "the projector's view disagrees with the journal: " + "; ".join(problems)
                       + ". Reads serve views: run `checkpoint-journal rebuild --thread` after "
                       "finding out how it was changed")


# -- the archive ------------------------------------------------------------------------


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
    """Check archived events (``_archive_read.ArchivedEvent``) against themselves and
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
                       _loc(_keys.thread_pk(thread_id), tev.sk),
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
                       _loc(_keys.thread_pk(ev.thread_id), tev.sk),
                       f"the table's event differs from the archive's ({loc}): content hash "
                       f"{_short(tev.record.get('content_hash'))} vs "
                       f"{_short(rec.get('content_hash'))}")
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


# -- reading ---------------------------------------------------------------------------


def verify(
    dynamodb: DynamoDBClient, table: str, *, hasher: Hasher, thread_id: str | None = None,
    s3: S3Client | None = None, bucket: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Check the table (one thread, or all) and, with a bucket, the archive. Raises
    NotFoundError when ``thread_id`` is in neither."""
    report = Report(hasher.key_id)
    tick = progress or (lambda message: None)
    # Threads from the table itself (a keys-only Scan), not from the projector's
    # ThreadIndex, which whoever could edit the table could edit too.
    ids = [thread_id] if thread_id is not None else list(thread_ids(dynamodb, table))
    states: dict[str, ThreadState] = {}
    store = DynamoJournalStore(dynamodb, table)
    try:
        for n, tid in enumerate(ids):
            tick(f"verifying the table: thread {n + 1:,} of {len(ids):,}")
            pk = _keys.thread_pk(tid)
            items = [i for page in store.pages(pk, prefix="") for i in page]
            if items:
                states[tid] = check_thread(report, hasher, tid, items)
    finally:
        store.close()
    archived = 0
    if s3 is not None and bucket:
        damaged: list[ArchiveDamage] = []
        events = archive.iter_archive(
            s3, bucket, dynamodb=dynamodb, table=table, thread_id=thread_id, damaged=damaged,
            progress=lambda done, total: tick(f"verifying the archive: file {done:,} of {total:,}"),
        )
        check_archive(report, hasher, events, damaged, states, bucket=bucket,
                      thread_filter=thread_id)
        archived = report.counts["archive events"]
    if thread_id is not None and not states and not archived:
        raise NotFoundError(f"thread {thread_id!r} is neither in the table nor in the archive")
    return report


# -- output ----------------------------------------------------------------------------


def text(report: Report, style: Any, archive: bool) -> list[str]:
    """The human rendering: what was checked, then every problem, then notes."""
    lines = []
    keyed = (f"chain key {report.key_id} (HMAC-SHA-256: a forger without the key is detected)"
             if report.key_id else
             "no chain key (plain SHA-256: alteration and removal are detected; an insertion "
             "with recomputed hashes is not)")
    lines.append(f"{style.bold('verified')} {len(report.threads):,} thread(s) in the table"
                 + ("" if archive else ", archive not checked (--no-archive or no bucket)")
                 + f"; {keyed}")
    for what, n in sorted(report.counts.items()):
        if n:
            lines.append(f"  {n:>8,}  {what}")
    if report.ok:
        lines.append(style.green("intact: every hash recomputes and every chain links"))
    else:
        lines.append(style.red(f"{len(report.findings)} problem(s):"))
        for f in report.findings:
            where = f.thread_id + (f" [{f.checkpoint_ns}]" if f.checkpoint_ns else "")
            lines.append(f"  {style.red(f.problem)} in the {f.where}: thread {where}"
                         + (f", checkpoint {f.checkpoint_id}" if f.checkpoint_id else ""))
            lines.append(f"      at {f.location}")
            lines.append(f"      {f.detail}")
    for note in report.notes:
        lines.append(style.yellow("note: ") + note)
    return lines
