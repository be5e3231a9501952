"""``verify``'s findings, and its checks of the table: every event's hash, every
checkpoint's chain link, every view against the journal (``verify`` says what is checked,
``verify_archive`` checks the archive against what this finds).

Pure: the items of a thread's partition are at hand.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from checkpoint_journal import schemas
from checkpoint_journal._core import blobs as _blobs
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import seal as _seal
from checkpoint_journal._core.archive import RECORD_OF_KIND
from checkpoint_journal._core.chain import Hasher
from checkpoint_journal._core.fold import (
    BlobRef,
    JournalRef,
    chunk_parts,
    decode_view,
    fold_partition,
    record_body,
)
from checkpoint_journal._core.items import Item
from checkpoint_journal._core.store import derived
from checkpoint_journal.errors import CorruptRecordError

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
DAMAGED = "damaged"            # an item fails its seal (reads refuse it, or read around it)
BLOB_MISSING = "blob-missing"  # an S3 object a view points to is not there
BLOB_DAMAGED = "blob-damaged"  # an S3 object a view points to does not match its digest

# Outcomes, and the exit status of each (``checkpoint-journal verify``).
OK, PENDING, DAMAGED_OUTCOME = "ok", "pending", "damaged"
EXIT_STATUS = {OK: 0, DAMAGED_OUTCOME: 4, PENDING: 5}


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

    @property
    def pending(self) -> int:
        """Checkpoints the archiver has not caught up with yet (not a problem)."""
        return self.counts["checkpoints not archived yet"]

    @property
    def outcome(self) -> str:
        """``damaged`` (a finding), ``pending`` (intact so far, the archiver behind), or
        ``ok``."""
        if self.findings:
            return DAMAGED_OUTCOME
        return PENDING if self.pending else OK

    def add(self, problem: str, where: str, thread_id: str, ns: str | None, cid: str | None,
            location: str, detail: str) -> None:
        self.findings.append(Finding(problem, where, thread_id, ns, cid or None, location,
                                     detail))

    def doc(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "outcome": self.outcome,
            "hash_key_id": self.key_id,
            "threads": len(self.threads),
            "checked": dict(sorted(self.counts.items())),
            "problems": [f.doc() for f in self.findings],
            "notes": self.notes,
        }


@dataclass
class TableEvent:
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
    checkpoints: dict[tuple[str, str], TableEvent] = field(default_factory=dict)
    removed: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(ns, checkpoint id) -> the removal marker's entry, with ``written_at``."""
    tombstones: dict[str, int] = field(default_factory=dict)
    """namespace -> written_at of its tombstone (delete_thread)."""
    readable: set[str] = field(default_factory=set)
    """Sort keys of the records that decoded."""
    blobs: dict[str, tuple[BlobRef, str, str | None, str | None]] = field(default_factory=dict)
    """S3 key -> (reference, table location, namespace, checkpoint id) of every offloaded
    value an intact view points to: ``verify`` reads each object."""


def item_location(pk: str, sk: str) -> str:
    return f"{pk} / {sk}"


def short_hash(h: str | None) -> str:
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
                   f"{what} content does not match its content_hash (stored {short_hash(stored)}, "
                   f"recomputed {short_hash(actual)}): altered after it was written"
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
    loc = item_location(pk, sk)
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
    keyed: list[tuple[_keys.ParsedKey, Item]] = []
    for item in items:
        sk = item["SK"]["S"]
        why = _seal.damage(item)
        if why is not None:
            kind = "derived item" if derived(sk) else "journal item"
            what = ("reads ignore it and answer from the journal; the projector or "
                    "`checkpoint-journal rebuild --thread` rewrites it" if derived(sk) else
                    "reads of what it holds raise CorruptRecordError")
            own = _keys.owner(sk)
            report.add(DAMAGED, "table", thread_id, _keys.namespace_of(sk),
                       own[1] if own else None, item_location(pk, sk),
                       f"the {kind} fails its seal: {why}; {what}")
        else:
            report.counts["items sealed intact (table)"] += 1
        try:
            keyed.append((_keys.parse_sk(sk), item))
        except ValueError:
            continue  # heads, index entries
    chunks = chunk_parts(keyed)
    parsed: list[tuple[_keys.ParsedKey, Item]] = []
    views: list[tuple[_keys.ParsedKey, Item]] = []
    for key, item in keyed:
        if key.kind == _keys.KIND_CHUNK:
            continue
        if key.kind == _keys.KIND_TOMBSTONE:
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
        loc = item_location(pk, sk)
        ns, cid = key.checkpoint_ns, key.checkpoint_id or None
        written = int(item.get("written_at", {}).get("N", "0"))
        if written <= state.tombstones.get(ns, -1):
            report.counts["hidden by delete_thread"] += 1
            continue
        try:
            body = record_body(item, chunks.get(key.parent_sk, {}))
        except CorruptRecordError as e:
            report.add(UNREADABLE, "table", thread_id, ns, cid, loc, str(e))
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
        state.readable.add(sk)
        record_type = RECORD_OF_KIND[key.kind]
        report.counts[f"{record_type.replace('_event', '')} events (table)"] += 1
        ok = check_hash(report, hasher, "table", thread_id, ns, cid, loc, record_type, rec)
        if key.kind == _keys.KIND_CHECKPOINT and cid:
            state.checkpoints[(ns, cid)] = TableEvent(key.kind, sk, rec, written, ok)
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
        loc = item_location(pk, ev.sk)
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
                report.add(REMOVED, "table", thread_id, ns, parent_id, item_location(pk, _keys.checkpoint_sk(ns, parent_id)),
                           f"checkpoint {parent_id} (the parent of {cid}) is not in the table "
                           "and no prune or delete_for_runs removed it")
                continue
        expected = hasher.chain(parent_chain, rec["content_hash"])
        if not hasher.equal(expected, rec["chain_hash"]):
            report.add(CHAIN_BROKEN, "table", thread_id, ns, cid, loc,
                       f"chain_hash {short_hash(rec['chain_hash'])} does not follow from "
                       + (f"the parent {parent_id}'s chain {short_hash(parent_chain)}"
                          if parent_id else "the start of the chain (no parent)")
                       + f": expected {short_hash(expected)}. The parent was altered or "
                       "replaced, or this checkpoint was inserted")
        report.counts["checkpoints chained (table)"] += 1

    for (ns, cid), sks in sorted(writes_of.items()):
        if (ns, cid) not in state.checkpoints and (ns, cid) not in state.removed:
            report.add(REMOVED, "table", thread_id, ns, cid, item_location(pk, _keys.checkpoint_sk(ns, cid)),
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
    # The journal's own fold, of the records that decoded (the others are reported);
    # tombstones and items outside J# (chunks among them) as they are.
    fold = fold_partition(
        [i for i in items if i["SK"]["S"] in state.readable
         or not i["SK"]["S"].startswith("J#")
         or i.get("kind", {}).get("S") == _keys.KIND_TOMBSTONE],
        now_s=0, use_views=False)
    writes_events: Counter[tuple[str, str] | None] = Counter(
        _keys.owner(i["SK"]["S"]) for i in items
        if i.get("kind", {}).get("S") == _keys.KIND_WRITES)
    now = time.time()
    sks = {i["SK"]["S"] for i in items}
    for key, item in views:
        ns, cid = key.checkpoint_ns, key.checkpoint_id
        ev = state.checkpoints.get((ns, cid))
        loc = item_location(pk, item["SK"]["S"])
        written = int(item.get("written_at", {}).get("N", "0"))
        expires = item.get("expires_at")
        gone_by_design = (
            (ns, cid) in state.removed or written <= state.tombstones.get(ns, -1)
            or (expires is not None and int(expires["N"]) <= now))
        if ev is None:
            # An event that is there but was reported (misplaced, unreadable) is not gone.
            present = _keys.checkpoint_sk(ns, cid) in sks
            if not gone_by_design and not present:
                report.add(REMOVED, "table", thread_id, ns, cid, item_location(
                    pk, _keys.checkpoint_sk(ns, cid)),
                    f"checkpoint {cid} has a view in the table but is not there itself, and "
                    "no prune, delete_for_runs or delete_thread removed it (reads raise "
                    "CorruptRecordError rather than show the checkpoint before it)")
            continue
        folded = int(item.get("wm", {}).get("N", "0"))
        if folded > writes_events[(ns, cid)] and not gone_by_design:
            report.add(REMOVED, "table", thread_id, ns, cid, loc,
                       f"the view folded {folded} pending-writes events but the table holds "
                       f"{writes_events[(ns, cid)]}: a writes event was deleted")
        try:
            view = decode_view(item)
        except (CorruptRecordError, KeyError) as e:
            report.add(UNREADABLE, "table", thread_id, ns, cid, loc, f"view cannot be decoded: {e}")
            continue
        report.counts["views (table)"] += 1
        for ref in view.refs():
            state.blobs.setdefault(ref.key, (ref, loc, ns, cid))
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
                if isinstance(value, JournalRef):
                    if value.source != r.source:
                        problems.append(f"channel {ch!r} points to another journal item "
                                        "than the one holding it")
                    continue
                if value is None or r.value is None or isinstance(r.value, (BlobRef,
                                                                             JournalRef)):
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


