"""Issue 11, proof 2: ``delete_thread`` against writers at every interleaving of their
calls, then every TTL'd item expired: nothing reappears (I6, I6b).

A writer (another agent process, its own saver and clients) read the thread, took its
``written_at`` just before ``delete_thread`` began (an injected clock), and its request
lands at each point ``k`` of the delete's call sequence: before call 0, between each pair
of calls, or after the delete returned. The landing is slotted in by a before-call hook on
the deleting saver's client at call ``k`` (``faults.CallHooks.on_call``). Four writes
land at each point: a ``put`` continuing the root namespace, a ``put_writes`` on the
checkpoint being deleted, a ``put`` continuing a subgraph namespace, and the first
``put`` of a subgraph namespace the thread did not have yet. Then an agent
starts the thread afresh (a new history, written after the delete returned: it must stay
visible).

What reads show (``get_tuple`` latest and by id, ``list``) right after the delete returned
(plus the new history, minus what expires by its own TTL) must be what they show once the
projector drained, and at every TTL expiry after, read by savers whose clock is that
time: at each distinct ``expires_at`` of the partition in turn, once the items expired by
then are deleted as DynamoDB's TTL would (neither emulator runs TTL); then in a far
future past every tombstone, with nothing deleted yet (TTL deletes late), with only the
tombstones deleted (in no particular order), with everything deleted (readers with
``ttl_seconds`` None and set), and once the projector drained again. The cross-thread
``list(None, filter=...)``, which reads the projector's index, may show less, never more.
And once the delete returned and the projector drained, no item a tombstone hides is
left without an expiry that ends before the tombstone's ("no invisible item stays in
clear without an expiry").

Variants (tombstone lifetimes differ, ``_maintenance.tombstone``): no TTL anywhere; every
saver with a TTL; and a deleter with a TTL (its tombstone expires after 7 days) racing
writers without one (what they leave hidden never expires by itself).

Last, the audit archive: a write hidden by the tombstone must not stay readable there
either, when the archiver meets it before the projector has deleted it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import pytest
from langgraph.checkpoint.base import Checkpoint, CheckpointTuple, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from checkpoint_journal import JournalSaver
from checkpoint_journal._core import archive_read
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import shred as _shred
from checkpoint_journal._core.fold import hidden_keys
from checkpoint_journal.local import LocalDeployment
from tests.integration.faults import CallHooks
from tests.integration.tables import partition

TTL = 3600
# (the deleting saver's ttl_seconds, every other saver's)
VARIANTS = {"no-ttl": (None, None), "ttl": (TTL, TTL), "ttl-deleter": (TTL, None)}
# The thread's namespaces before the delete, and one a writer starts during it.
NAMESPACES = ["", "child:1"]
NEW_NAMESPACE = "child:2"
# Past every expiry: the longest tombstone lives max(7 days, ttl + 1 day).
FAR_FUTURE_S = 400 * 24 * 3600


def new_checkpoint(values: dict[str, Any], versions: dict[str, str]) -> Checkpoint:
    cp = empty_checkpoint()
    cp["id"] = str(uuid6())
    cp["channel_values"] = dict(values)
    cp["channel_versions"] = dict(versions)
    return cp


def version(n: int) -> str:
    return f"{n:032}.{0.5:016}"


def config(thread: str, ns: str = "", checkpoint_id: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id:
        c["checkpoint_id"] = checkpoint_id
    return {"configurable": c}


def put(saver: JournalSaver, thread: str, ns: str, parent: str | None,
        values: dict[str, Any], versions: dict[str, str], new: list[str], tag: str) -> str:
    cp = new_checkpoint(values, versions)
    md = {"source": "loop", "step": len(values), "tag": tag, "parents": {}}
    saver.put(config(thread, ns, parent), cp, md, {ch: versions[ch] for ch in new})
    return str(cp["id"])


class Clock:
    """A clock a test sets (``now``), or the real one while ``now`` is None."""

    def __init__(self, now: float | None = None) -> None:
        self.now = now

    def __call__(self) -> float:
        return time.time() if self.now is None else self.now


# -- what reads show ----------------------------------------------------------------------


def _shown(t: CheckpointTuple | None) -> Any:
    if t is None:
        return None
    c = t.config["configurable"]
    return (c["checkpoint_ns"], c["checkpoint_id"],
            sorted(t.checkpoint["channel_values"].items()),
            sorted(t.pending_writes, key=repr))


def snapshot(reader: JournalSaver, thread: str, ids: list[tuple[str, str]]) -> dict[str, Any]:
    """Everything a reader shows of the thread: the latest of each namespace, every
    checkpoint ever written by id, and ``list``."""
    return {
        "latest": {ns: _shown(reader.get_tuple(config(thread, ns)))
                   for ns in [*NAMESPACES, NEW_NAMESPACE]},
        "by_id": {cid: _shown(reader.get_tuple(config(thread, ns, cid))) for ns, cid in ids},
        "list": [_shown(t) for t in reader.list({"configurable": {"thread_id": thread}})],
    }


def _num(item: dict[str, Any], name: str) -> int | None:
    return int(item[name]["N"]) if name in item else None


def hidden_in_clear(items: list[dict[str, Any]]) -> list[str]:
    """Items a tombstone hides that no expiry removes before the tombstone goes: each
    would reappear once the tombstone expires (or never leave, without a TTL)."""
    tombstones = {}
    for i in items:
        try:
            key = _keys.parse_sk(i["SK"]["S"])
        except ValueError:
            continue
        if key.kind == _keys.KIND_TOMBSTONE:
            tombstones[key.checkpoint_ns] = i
    hidden = set(hidden_keys(items, {ns: _num(t, "written_at") or 0
                                     for ns, t in tombstones.items()}))
    out = []
    for i in items:
        if (i["PK"]["S"], i["SK"]["S"]) not in hidden:
            continue
        ns = _keys.namespace_of(i["SK"]["S"])
        exp, tomb_exp = _num(i, "expires_at"), _num(tombstones[ns], "expires_at")
        if exp is None or (tomb_exp is not None and exp > tomb_exp):
            out.append(f"{i['SK']['S']} (kind {i.get('kind', {}).get('S')}, written_at "
                       f"{_num(i, 'written_at')}, expires_at {exp}; tombstone expires_at "
                       f"{tomb_exp})")
    return out


def expire(dep: LocalDeployment, thread: str, at: float, *, only: str | None = None) -> int:
    """What DynamoDB's TTL does by time ``at``: delete every item whose expires_at has
    passed (``only`` those of that kind). Returns how many went."""
    ddb = dep.client("dynamodb")
    gone = 0
    for i in partition(dep, thread):
        exp = _num(i, "expires_at")
        if only is not None and i.get("kind", {}).get("S") != only:
            continue
        if exp is not None and exp <= at:
            ddb.delete_item(TableName=dep.table_name, Key={"PK": i["PK"], "SK": i["SK"]})
            gone += 1
    return gone


# -- the race ------------------------------------------------------------------------------


@dataclass
class Race:
    dep: LocalDeployment
    session: Any
    deleter_ttl: int | None
    writer_ttl: int | None
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    def saver(self, ttl: int | None, clock: Callable[[], float] | None = None) -> JournalSaver:
        # One boto3 session for all: a new one re-reads botocore's models (~0.1 s/client).
        return self.dep.saver(boto3_session=self.session, ttl_seconds=ttl, clock=clock)

    def history(self, thread: str) -> dict[str, str]:
        """The thread before the delete: two namespaces, pending writes, projected (views,
        index entries, heads) so that the delete has every kind of item to remove."""
        with self.saver(self.writer_ttl) as s:
            ids = {}
            ids["c1"] = put(s, thread, "", None, {"a": "one"}, {"a": version(1)}, ["a"],
                            self.tag)
            s.put_writes(config(thread, "", ids["c1"]), [("a", "w1")], "task-1")
            ids["c2"] = put(s, thread, "", ids["c1"], {"a": "two", "b": "bee"},
                            {"a": version(2), "b": version(1)}, ["a", "b"], self.tag)
            ids["s1"] = put(s, thread, "child:1", None, {"n": 1}, {"n": version(1)}, ["n"],
                            self.tag)
        self.dep.drain(timeout=30)
        return ids

    def delete_calls(self) -> list[str]:
        """The calls delete_thread makes on such a thread, undisturbed."""
        thread = f"race-count-{self.tag}"
        self.history(thread)
        with self.saver(self.deleter_ttl) as deleter:
            hooks = CallHooks([deleter._ddb])
            deleter.delete_thread(thread)
            return list(hooks.names)

    def run(self, k: int, calls: int) -> list[str]:
        """Writers land before call ``k`` of delete_thread (``k == calls``: after it
        returned); returns what broke, empty if nothing."""
        dep = self.dep
        thread = f"race-{k}-{self.tag}"
        ids = self.history(thread)
        broken: list[str] = []

        # The writers read the thread first, as an agent resuming it does, then take
        # their time just before the delete begins.
        clock = Clock()
        writer = self.saver(self.writer_ttl, clock)
        for ns in NAMESPACES:  # (which also gives its put the parents' chain hashes)
            assert writer.get_tuple(config(thread, ns)) is not None
        late: list[tuple[str, str]] = []

        def land() -> None:
            late.append(("", put(writer, thread, "", ids["c2"],
                                 {"a": "three", "b": "bee"},
                                 {"a": version(3), "b": version(1)}, ["a"], self.tag)))
            writer.put_writes(config(thread, "", ids["c2"]), [("b", "late")], "task-late")
            late.append(("child:1", put(writer, thread, "child:1", ids["s1"], {"n": 2},
                                        {"n": version(2)}, ["n"], self.tag)))
            late.append((NEW_NAMESPACE, put(writer, thread, NEW_NAMESPACE, None, {"m": 1},
                                            {"m": version(1)}, ["m"], self.tag)))

        deleter = self.saver(self.deleter_ttl)
        hooks = CallHooks([deleter._ddb])
        if k < calls:
            hooks.on_call(k, land)
        clock.now = time.time()  # the writers' written_at: before the tombstone's
        deleter.delete_thread(thread)
        if k == calls:
            land()
        assert len(late) == 3, f"the writers did not land (delete made {hooks.names})"
        every = [("", ids["c1"]), ("", ids["c2"]), ("child:1", ids["s1"]), *late]

        # Right after the delete returned: nothing of the old history, nor of the writes
        # to its namespaces (the tombstones hide them: they were written before). The
        # first checkpoint of a namespace the delete never saw is a put linearized after
        # it: it may show (I6b asks only that it then stays), unless it landed before
        # the delete's walk of the partition, which gives it a tombstone too.
        clocks = {ttl: Clock() for ttl in (None, TTL)}
        readers = {ttl: self.saver(ttl, c) for ttl, c in clocks.items()}
        now = readers[None]  # its clock is the real one until check() sets it
        after = snapshot(now, thread, every)
        started_ns = late[-1][1]
        newcomer = after["by_id"][started_ns]
        empty = {"latest": {ns: None for ns in [*NAMESPACES, NEW_NAMESPACE]},
                 "by_id": {cid: None for _, cid in every}, "list": []}
        allowed = {**empty, "latest": {**empty["latest"], NEW_NAMESPACE: newcomer},
                   "by_id": {**empty["by_id"], started_ns: newcomer},
                   "list": [newcomer] if newcomer else []}
        if after != allowed or (k == 0 and newcomer is not None):
            broken.append(f"right after delete_thread returned, reads show {after}")
            after = empty  # what I6 says they show; compare what follows with it

        # A new history, started after the delete returned.
        started = time.time()
        with self.saver(self.writer_ttl, Clock(started)) as fresh:
            new = put(fresh, thread, "", None, {"a": "anew"}, {"a": version(1)}, ["a"],
                      self.tag)
            fresh.put_writes(config(thread, "", new), [("a", "w-new")], "task-new")
        every.append(("", new))
        anew = ("", new, [("a", "anew")], [("task-new", "a", "w-new")])
        # What reads showed right after the delete, and the new history.
        shown = {"latest": {**after["latest"], "": anew},
                 "by_id": {**after["by_id"], new: anew},
                 "list": sorted([anew, *after["list"]], key=lambda t: (t[1], t[0]),
                                reverse=True)}
        got = snapshot(now, thread, every)
        if got != shown:
            broken.append(f"once a new history was written, reads show {got}")
        # Each namespace shows one checkpoint at most, gone at its own expiry.
        expiry = {(ns, cid): None if self.writer_ttl is None else int(at) + self.writer_ttl
                  for (ns, cid), at in ((late[-1], clock.now), (("", new), started))}

        def expected(at: float) -> dict[str, Any]:
            def live(t: Any) -> Any:
                exp = None if t is None else expiry[(t[0], t[1])]
                return t if t is not None and (exp is None or at < exp) else None

            return {"latest": {ns: live(t) for ns, t in shown["latest"].items()},
                    "by_id": {cid: live(t) for cid, t in shown["by_id"].items()},
                    "list": [t for t in shown["list"] if live(t) is not None]}

        def check(at: float | None, when: str, ttls: tuple[int | None, ...] = (None,)) -> None:
            for ttl in ttls:
                clocks[ttl].now = at
                got = snapshot(readers[ttl], thread, every)
                want = expected(time.time() if at is None else at)
                if got != want:
                    broken.append(f"{when}, a reader with ttl_seconds={ttl} shows {got}, "
                                  f"expected {want}")

        def across(when: str) -> None:
            # list(None, filter=...) reads the projector's index and views, not the
            # thread's journal: nothing deleted may show there either once it drained
            # (the index is eventually consistent: fewer is fine, more is not).
            clocks[None].now = None
            found = {t.config["configurable"]["checkpoint_id"]
                     for t in now.list(None, filter={"tag": self.tag})
                     if t.config["configurable"]["thread_id"] == thread}
            if found - {cid for cid, t in shown["by_id"].items() if t is not None}:
                broken.append(f"{when}, list(None, filter=...) shows {sorted(found)}")

        dep.drain(timeout=30)
        check(None, "once the projector drained")
        across("once the projector drained")
        items = partition(dep, thread)
        for line in hidden_in_clear(items):
            broken.append(f"once the projector drained, hidden in clear: {line}")

        # Every TTL expiry in turn, as DynamoDB's TTL would delete the items.
        for at in sorted({e for i in items if (e := _num(i, "expires_at")) is not None}):
            expire(dep, thread, at)
            check(at, f"at {at}, once what expired by then was deleted")
        # A far future, past every tombstone. DynamoDB's TTL deletes late and in no
        # particular order: first nothing expired is deleted yet, then only the
        # tombstones are, then everything.
        far = time.time() + FAR_FUTURE_S
        check(far, "in the far future, nothing deleted yet")
        expire(dep, thread, far, only=_keys.KIND_TOMBSTONE)
        check(far, "in the far future, the tombstones deleted first")
        expire(dep, thread, far)
        # The readers' ttl_seconds does not change what they read (the items' own
        # expires_at does); both are asked anyway.
        check(far, "in the far future, every expired item deleted", (None, TTL))
        dep.drain(timeout=30)  # the deletions ring the projector too
        check(far, "in the far future, the projector drained")
        across("once every expired item was deleted")
        for r in (writer, deleter, *readers.values()):
            r.close()
        return broken


# One backend: which request lands when is fixed by the hooks (the writers' requests go
# out between two of the deleter's, each one applied whole before the next is sent), and
# what follows from it is the saver's and the projector's logic, the same on both; both
# emulators apply a request atomically and read strongly consistently. How the backends
# differ in a request's semantics (conditional writes, the item returned on a failed
# condition) is what test_crash_points.py runs on both. DynamoDB Local, for it is the
# closer emulator of DynamoDB (DESIGN §6 lists moto's gaps).
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_delete_thread_races_writers_at_every_interleaving(
        ddb_local_deployment: LocalDeployment, variant: str) -> None:
    deployment = ddb_local_deployment
    deleter_ttl, writer_ttl = VARIANTS[variant]
    race = Race(deployment, deployment.session(), deleter_ttl, writer_ttl)
    calls = race.delete_calls()
    assert calls, "delete_thread made no call"
    found = []
    for k in range(len(calls) + 1):
        where = f"before call {k} ({calls[k]})" if k < len(calls) else "after it returned"
        found += [f"writers landing {where}: {b}" for b in race.run(k, len(calls))]
    assert not found, f"{variant} [{deployment.backend}], delete_thread calls {calls}:\n" + \
        "\n".join(found)


# -- the archive: a late write hidden by the tombstone ------------------------------------


class HeldProjector:
    """The projector's invocations wait until ``release``: a projector that lags behind
    the archiver (throttled, retrying a failed batch, or simply slower to fill a batch)."""

    def __init__(self, dep: LocalDeployment) -> None:
        self.dep = dep
        self.go = threading.Event()

    def wrap(self, real: Any) -> Any:
        def handler(event: dict[str, Any], context: Any) -> Any:
            self.go.wait(120)
            return real(event, context)

        return handler

    def __enter__(self) -> Self:
        self.dep.drain(timeout=30)
        self.dep.runner.set_handler_wrapper("ProjectorFunction", self.wrap)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.dep.runner.set_handler_wrapper("ProjectorFunction", None)

    def release(self) -> None:
        self.go.set()

    def archiver_first(self, records: int) -> None:
        """Let the archiver deliver ``records`` more records (a drain closes its 60 s
        batching window) while the projector waits, then release the projector."""
        def archiver() -> Any:
            return next(st for st in self.dep.runner.status()
                        if st.mapping.startswith("ArchiverFunction"))

        target = archiver().records_delivered + records
        errors: list[BaseException] = []

        def drain() -> None:
            try:
                self.dep.drain(timeout=60)
            except (TimeoutError, RuntimeError) as e:  # what drain raises: reported below
                errors.append(e)

        draining = threading.Thread(target=drain, daemon=True)
        draining.start()
        deadline = time.monotonic() + 30
        while archiver().records_delivered < target or archiver().in_flight:
            assert time.monotonic() < deadline, f"the archiver did not go first: {archiver()}"
            time.sleep(0.02)
        self.release()
        draining.join(60)
        assert not errors, errors


def test_a_late_write_hidden_by_the_tombstone_is_not_readable_from_the_archive(
        ddb_local_deployment: LocalDeployment) -> None:
    """A put whose written_at predates delete_thread's tombstone lands after the delete
    returned: reads never show it, the projector deletes it, and the archive must not
    keep it readable either (delete_thread erases a thread from the archive by
    destroying its key, ``_core/shred.py``). Here the archiver meets its stream record
    before the projector has deleted the hidden item (the projector lags)."""
    dep = ddb_local_deployment
    session = dep.session()
    tag = uuid.uuid4().hex[:10]
    thread = f"race-archive-{tag}"
    with dep.saver(boto3_session=session) as agent:
        first = put(agent, thread, "", None, {"a": "before"}, {"a": version(1)}, ["a"], tag)
    dep.drain(timeout=30)  # archived, under the thread's key
    clock = Clock()
    writer = dep.saver(boto3_session=session, clock=clock)
    assert writer.get_tuple(config(thread, "")) is not None
    with HeldProjector(dep) as held:
        clock.now = time.time()  # taken before the delete: its put lands hidden
        with dep.saver(boto3_session=session) as deleter:
            deleter.delete_thread(thread)
        late = put(writer, thread, "", first, {"a": "said before the delete"},
                   {"a": version(2)}, ["a"], tag)
        held.archiver_first(records=2)  # the tombstone's INSERT and the late put's
    dep.drain(timeout=30)
    writer.close()

    with dep.saver(boto3_session=session) as reader:
        assert reader.get_tuple(config(thread, "", late)) is None
        assert list(reader.list({"configurable": {"thread_id": thread}})) == []
    assert hidden_in_clear(partition(dep, thread)) == []
    ddb = dep.client("dynamodb")
    readable = [
        (e.kind, e.checkpoint_id, e.state, e.key_id)
        for e in archive_read.iter_archive(dep.client("s3"), dep.bucket, dynamodb=ddb,
                                           table=dep.table_name, thread_id=thread)
        if e.state not in (archive_read.STATE_SHREDDED, archive_read.STATE_NONE)
    ]
    key = ddb.get_item(TableName=dep.table_name, ConsistentRead=True, Key={
        "PK": {"S": _shred.key_pk(thread)}, "SK": {"S": _shred.KEY_SK}}).get("Item")
    assert readable == [], (
        f"events of the deleted thread {thread!r} are readable from the archive: {readable}; "
        f"its archive key item {'exists' if key else 'does not exist'} (the late put is "
        f"{late})")
