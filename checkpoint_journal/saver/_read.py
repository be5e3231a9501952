"""The read path: which items answer which checkpoint, and the tuples built from them.

A namespace's journal is read newest first (one descending Query, page after page). The
items of one checkpoint sort together, its event last (``keys``), so once a page holds
a checkpoint's event it holds everything of that checkpoint. Each checkpoint is then
answered, in id order, by the first of:

1. its view item, if the view has folded every writes event read (the projector has
   caught up): the tuple straight from the view, plus S3 for offloaded values;
2. the fold of what was read, once that reaches a view below the checkpoint (a complete
   seed of values for everything after it) or the namespace's end, if every channel
   resolves from what was read;
3. the fold of the whole namespace, views as a head start, or the journal alone when an
   offloaded value cannot be read (I2b: an intact copy, never other data).

:func:`next_step` decides (pure); :class:`Reader` reads, decides and builds, yielding each
tuple as soon as it is answered, so ``list(limit=1)`` reads what ``get_tuple`` reads.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, get_checkpoint_id

from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import (
    CheckpointEvent,
    Fold,
    JournalRef,
    Namespace,
    decode_view,
    fold_partition,
    removed_ids,
)
from checkpoint_journal._core.items import Item
from checkpoint_journal._core.store import DynamoJournalStore
from checkpoint_journal._core.survey import Survey, survey
from checkpoint_journal.errors import CorruptRecordError, JournalError
from checkpoint_journal.saver._tuples import (
    NeedsJournal,
    fold_tuple,
    order,
    view_tuple,
)
from checkpoint_journal.saver._values import (
    BlobUnavailable,
    Items,
    Loader,
    Origins,
    Values,
)
from checkpoint_journal.saver._window import Window

# Items one checkpoint usually has in its namespace: its event, its view and a few
# writes events. A newest-first read asks for this many per checkpoint wanted in its
# first page, so that the latest checkpoint is one small Query when the projector has
# caught up; later pages are DynamoDB's (1 MB).
ITEMS_PER_CHECKPOINT = 8
# Every journal item of a thread starts so; the root namespace's start with ROOT.
JOURNAL = "J#"
ROOT = _keys.ns_prefix("")


def first_page_items(limit: int | None) -> int | None:
    """The first page's item limit of a read that wants ``limit`` checkpoints (None: the
    whole history is wanted, read it in full pages)."""
    return None if limit is None else ITEMS_PER_CHECKPOINT * limit


# -- what answers a checkpoint (pure) ----------------------------------------------------------


class Step(enum.Enum):
    VIEW = "its current view item"
    TAIL = "the fold of the items read"
    TRY = "the fold of the items read if it resolves every channel, else read more"
    MORE = "read another page first"


def next_step(sv: Survey, cid: str, *, exhausted: bool, now_s: float,
              down_to: str | None = None) -> Step:
    """How to answer checkpoint ``cid``, whose event has been read (so every item of
    it has), from the survey of what was read; ``down_to``: the oldest checkpoint whose
    journal items its values need (a delta chain's start), which must have been read."""
    if down_to is not None and not exhausted and not any(c <= down_to for c in sv.present):
        return Step.MORE
    if sv.current_view(cid, now_s) is not None:
        return Step.VIEW
    if exhausted or sv.seed_below(cid) is not None:
        return Step.TAIL
    # Every item older than those read is older than every source read: a channel whose
    # value the items read hold at or before cid resolves as the whole namespace would.
    return Step.TRY


def tail_answers(ns: Namespace, event: CheckpointEvent) -> bool:
    """Whether a fold of part of the namespace answers ``event`` as the whole one would
    (and every channel of it has a value: otherwise the whole namespace's fold checks
    why not)."""
    view = ns.current_view(event.checkpoint_id)
    if view is not None and not any(
            isinstance(v, JournalRef) for _, v, _ in view.channels.values()):
        return True
    return ns.resolvable(event)


def candidates(sv: Survey, *, below: str | None, only: str | None) -> list[str]:
    """The visible checkpoints read, newest first, within the read's bounds."""
    return sorted(
        (c for c in sv.events
         if (below is None or c < below) and (only is None or c == only)),
        reverse=True,
    )


# -- reads -----------------------------------------------------------------------------------


@dataclass
class Reader:
    """The reads of one call (one ``get_tuple`` or ``list``), at one ``now``."""

    store: DynamoJournalStore
    loader: Loader
    origins: Origins
    pool: ThreadPoolExecutor
    now: float
    values: Values | None = None
    """The saver's recent values: bases of delta chains the items read do not reach."""
    items: Items | None = None
    """Journal items the saver wrote or read: a range whose keys it holds is not re-read."""
    _chunks: dict[str, dict[str, list[Item]]] = field(default_factory=dict)
    """pk -> commit SK -> its chunk items, each record's read once per call."""
    _removed: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    """(thread, namespace) -> checkpoint ids its removal markers name, read on demand."""

    def witnesses(self, thread_id: str, ns_name: str, sv: Survey, *, at_least: str = "") -> None:
        """Raise CorruptRecordError if the items read witness a journal item gone without
        a prune or delete_for_runs to explain it (I2b: never the older state it leaves
        showing). The removal markers are read only when there is something to explain."""
        found = sv.unexplained(at_least)
        if not found:
            return
        removed = self._removed_ids(thread_id, ns_name)
        for cid, what in sorted(found.items()):
            if cid not in removed:
                raise CorruptRecordError(
                    f"thread {thread_id!r}, namespace {ns_name!r}, checkpoint {cid}: {what}. "
                    "A journal item was deleted or altered outside the journal's operations "
                    "(no delete_thread, prune or delete_for_runs removed it); nothing was "
                    "read in its place. Run `checkpoint-journal verify` for a report.")

    def fold(self, thread_id: str, items: list[Item], *, use_views: bool) -> Fold:
        """Fold ``items`` with the chunks of their chunked records (read once per call:
        a read may fold what it has read more than once)."""
        pk = _keys.thread_pk(thread_id)
        known = self._chunks.setdefault(pk, {})
        todo = [i for i in items if "chunks" in i and i["SK"]["S"] not in known]
        if todo:
            for chunk in self.store.with_chunks(pk, todo)[len(todo):]:
                known.setdefault(_keys.parse_sk(chunk["SK"]["S"]).parent_sk, []).append(chunk)
            for i in todo:
                known.setdefault(i["SK"]["S"], [])
        chunks = [c for i in items if "chunks" in i for c in known[i["SK"]["S"]]]
        fold = fold_partition(items + chunks, now_s=self.now, use_views=use_views)
        if self.values is not None:
            for ns_name, ns in fold.namespaces.items():
                if ns.replayer is not None:
                    ns.replayer.known = self.values.known(thread_id, ns_name)
        return fold

    def down_to(self, thread_id: str, ns_name: str, sv: Survey, cid: str) -> str | None:
        """The oldest checkpoint whose journal items ``cid``'s values need (its delta
        chains' start, the event's ``jfrom``), unless this saver holds every value of
        those chains already (it wrote or read them): then nothing below."""
        item = sv.events.get(cid)
        attr = item.get("jfrom") if item is not None else None
        start = str(attr["S"]) if attr is not None else None
        if start is None or self.values is None:
            return start
        known = self.origins.recall((thread_id, ns_name, cid))
        if known is None or not all(
                self.values.get(thread_id, ns_name, (ch, o.version, o.source)) is not None
                for ch, o in known[0].items() if o.needs_journal() and o.source is not None):
            return start
        return None

    def _removed_ids(self, thread_id: str, ns_name: str) -> set[str]:
        key = (thread_id, ns_name)
        if key not in self._removed:
            self._removed[key] = removed_ids(i for page in self.store.pages(
                _keys.thread_pk(thread_id), prefix=_keys.removal_prefix(ns_name)) for i in page)
        return self._removed[key]

    def ancestry(self, thread_id: str, ns_name: str, ns: Namespace, cid: str) -> None:
        """A checkpoint a channel of which has no value in the whole namespace: fine if
        its writer never stored one (a put without the channel in ``new_versions``), damage
        if an ancestor that could hold it is gone without a removal to explain it (I2b:
        never a checkpoint with a value silently missing)."""
        parent = ns.checkpoints[cid].parent_checkpoint_id
        seen: set[str] = set()
        while parent and parent not in seen:
            seen.add(parent)
            event = ns.checkpoints.get(parent)
            if event is None:
                if parent in self._removed_ids(thread_id, ns_name):
                    return
                raise CorruptRecordError(
                    f"thread {thread_id!r}, namespace {ns_name!r}, checkpoint {cid}: a "
                    f"channel has no value, and its ancestor {parent} is gone without a "
                    "prune or delete_for_runs to explain it: a journal item was deleted "
                    "outside the journal's operations. Nothing was read in its place.")
            parent = event.parent_checkpoint_id

    def latest(self, thread_id: str, ns_name: str) -> CheckpointTuple | None:
        """The newest visible checkpoint of a namespace: with the projector caught up, one
        Query (the newest items, descending) plus one S3 GET per offloaded value."""
        return next(iter(self.namespace(thread_id, ns_name, limit=1)), None)

    def by_id(self, thread_id: str, ns_name: str, cid: str) -> CheckpointTuple | None:
        """One checkpoint: one Query on its items, with the namespace's tombstone read
        alongside; without a current view, the namespace's items below it too."""
        pk = _keys.thread_pk(thread_id)
        sk = _keys.checkpoint_sk(ns_name, cid)
        tomb = self.pool.submit(self.store.get, pk, _keys.tombstone_sk(ns_name))
        own = [i for page in self.store.pages(pk, between=(sk, sk + "#~")) for i in page]
        items = [i for i in own if _keys.owner(i["SK"]["S"]) == (ns_name, cid)]
        if (t := tomb.result()) is not None:
            items.append(t)
        own_sv = survey(items, now_s=self.now).get(ns_name, Survey())
        self.witnesses(thread_id, ns_name, own_sv, at_least=cid)
        if cid not in own_sv.events:
            return None  # the event is not there (or not visible): no such checkpoint
        below = self.store.pages(pk, between=(_keys.ns_prefix(ns_name), sk), descending=True)
        window = Window(below, complete=False, items=items, ranged=self._ranged(pk),
                        floor=_keys.ns_prefix(ns_name))
        return next(self._answers(thread_id, ns_name, window, below=None, only=cid), None)

    def listing(
        self, config: RunnableConfig, *, before: str | None, limit: int | None
    ) -> Iterator[CheckpointTuple]:
        """``list(config)`` of one thread: its namespace (every namespace when the config
        names none), or the one checkpoint the config names; ``limit`` only sizes the
        first page."""
        thread_id = _keys.from_config(config)[0]
        ns_name: str | None = config["configurable"].get("checkpoint_ns")
        cid = get_checkpoint_id(config)
        if ns_name is None:
            return self.thread(thread_id, before=before, only=cid, limit=limit)
        if cid:
            one = self.by_id(thread_id, ns_name, cid)
            return iter([one] if one is not None and (before is None or cid < before) else [])
        return self.namespace(thread_id, ns_name, before=before, limit=limit)

    def namespace(
        self, thread_id: str, ns_name: str, *, before: str | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """A namespace's checkpoints (older than ``before``), newest first, read page by
        page; ``limit`` only sizes the first page."""
        pk = _keys.thread_pk(thread_id)
        prefix = _keys.ns_prefix(ns_name)
        first = first_page_items(limit)
        if before is not None and min(before, default="") > "#":
            # Every item of a checkpoint older than ``before`` sorts below this bound
            # (ids of characters above '#'), the tombstone above it: read that apart.
            pages = self._with_tombstone(pk, ns_name, self.store.pages(
                pk, between=(prefix, prefix + before), descending=True, first_limit=first))
            window = Window(pages, complete=False, ranged=self._ranged(pk), floor=prefix)
        else:
            pages = self.store.pages(pk, prefix=prefix, descending=True, first_limit=first)
            window = Window(pages, complete=True, ranged=self._ranged(pk), floor=prefix)
        return self._answers(thread_id, ns_name, window, below=before, only=None)

    def thread(
        self, thread_id: str, *, before: str | None = None, only: str | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Every namespace's checkpoints, newest first (by id, then namespace).

        One descending Query over the thread's journal: the namespaces it meets before the
        root one are read whole, then the root one streams, merged with them. Namespaces
        that sort below the root (names starting with a character below '#') are read by
        one more Query, only when the root namespace does not fit the pages read first.
        """
        pk = _keys.thread_pk(thread_id)
        scan = iter(self.store.pages(pk, prefix=JOURNAL, descending=True,
                                     first_limit=first_page_items(limit)))
        read: list[Item] = []
        for page in scan:
            read.extend(page)
            if any(i["SK"]["S"].startswith(ROOT) for i in page):
                break
        nxt = next(scan, None)  # no request when the scan has ended
        if nxt is None:
            windows = [(ns, Window.of(items)) for ns, items in _by_namespace(read).items()]
        else:
            # The scan goes on with the root namespace's older items, then the namespaces
            # that sort below it: those are read whole by one more Query, alongside.
            lower = self.pool.submit(lambda: [
                i for p in self.store.pages(pk, between=(JOURNAL, ROOT)) for i in p])
            upper = [i for i in read if i["SK"]["S"] > ROOT]
            windows = [
                (ns, Window.of(items)) for ns, items in _by_namespace(upper).items() if ns
            ]
            windows.append(("", Window(_root_pages(itertools.chain([nxt], scan)),
                                       complete=True, items=_by_namespace(upper).get("", []),
                                       ranged=self._ranged(pk), floor=ROOT)))
            windows += [(ns, Window.of(items))
                        for ns, items in _by_namespace(lower.result()).items()]
        streams = [self._answers(thread_id, ns, w, below=before, only=only) for ns, w in windows]
        yield from heapq.merge(*streams, key=order, reverse=True)

    def _ranged(self, pk: str) -> Callable[[str, str], Iterator[list[Item]]]:
        return lambda lo, hi: self.store.pages(pk, between=(lo, hi), descending=True)

    def _with_tombstone(
        self, pk: str, ns_name: str, pages: Iterable[list[Item]]
    ) -> Iterator[list[Item]]:
        """``pages`` with the namespace's tombstone (read alongside the first) first."""
        tomb = self.pool.submit(self.store.get, pk, _keys.tombstone_sk(ns_name))
        it = iter(pages)
        first = next(it, [])
        t = tomb.result()
        yield ([t] if t is not None else []) + first
        yield from it

    def _answers(
        self, thread_id: str, ns_name: str, window: Window, *, below: str | None,
        only: str | None,
    ) -> Iterator[CheckpointTuple]:
        """The namespace's checkpoints in ``window`` (below ``below``, or only ``only``),
        newest first, each yielded as soon as the items read answer it."""
        tail = _Tail()
        while True:
            sv = survey(window.items, now_s=self.now).get(ns_name, Survey())
            waiting = False
            reach: str | None = None
            for cid in candidates(sv, below=below, only=only):
                start = self.down_to(thread_id, ns_name, sv, cid)
                step = next_step(sv, cid, exhausted=window.exhausted, now_s=self.now,
                                 down_to=start)
                if step is Step.MORE:
                    waiting = True
                    if start is not None and not any(c <= start for c in sv.present):
                        reach = _keys.checkpoint_sk(ns_name, start)
                    break
                if step is Step.TRY and not sv.views:
                    # No view read (the projector is absent or far behind): if the items
                    # read do not answer, read down to the oldest event holding a value.
                    oldest = sv.events[cid].get("vfrom")
                    if oldest is not None and not any(c <= oldest["S"] for c in sv.present):
                        reach = _keys.checkpoint_sk(ns_name, oldest["S"])
                # Every item of cid and of the checkpoints above it has been read.
                self.witnesses(thread_id, ns_name, sv, at_least=cid)
                got = self._answer(thread_id, ns_name, window, sv, cid, step, tail)
                if got is None and step is Step.TRY:
                    waiting = True
                    break
                reach = None
                if got is None:
                    # This checkpoint and the rest from the whole namespace's fold.
                    yield from self._from_whole(thread_id, ns_name, window, below=below,
                                                only=only)
                    return
                below = cid
                if isinstance(got, CheckpointTuple):
                    if (start_at := sv.events[cid].get("hfrom")) is not None:
                        self.origins.note_history((thread_id, ns_name, cid), start_at["S"])
                    yield got
                if only is not None:
                    return
            if not waiting and only is not None and any(c < only for c in sv.events):
                return  # read past it: it is not there (or not visible)
            if not window.more(down_to=reach) and not waiting:
                self.witnesses(thread_id, ns_name, sv)
                return

    def _answer(
        self, thread_id: str, ns_name: str, window: Window, sv: Survey, cid: str, step: Step,
        tail: _Tail,
    ) -> CheckpointTuple | _Skip | None:
        """The tuple of ``cid`` by ``step``; SKIP when its record cannot be read (a torn
        chunk); None when only the whole namespace can answer it."""
        try:
            if step is Step.VIEW:
                view_item = sv.current_view(cid, self.now)
                assert view_item is not None
                try:
                    return view_tuple(thread_id, ns_name, decode_view(view_item),
                                      self.loader, self.origins)
                except NeedsJournal:
                    pass  # a delta: replayed from the journal items read, below
            if tail.size != len(window.items):
                tail.fold = self.fold(thread_id, window.items, use_views=True)
                tail.size = len(window.items)
            ns = tail.fold.namespaces.get(ns_name) if tail.fold is not None else None
            event = ns.checkpoints.get(cid) if ns is not None else None
            if ns is None or event is None:
                return SKIP
            if not tail_answers(ns, event):
                return None
            return fold_tuple(thread_id, ns_name, ns, event, self.loader, self.origins,
                              self.values)
        except BlobUnavailable:
            return None

    def _from_whole(
        self, thread_id: str, ns_name: str, window: Window, *, below: str | None,
        only: str | None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints from the fold of the namespace's every item: views as a head start,
        unless an offloaded value cannot be read, then the journal alone."""
        if window.complete:
            window.rest()
            items = window.items
        else:
            pk = _keys.thread_pk(thread_id)
            items = [i for page in self.store.pages(pk, prefix=_keys.ns_prefix(ns_name))
                     for i in page]
        self.witnesses(thread_id, ns_name, survey(items, now_s=self.now).get(ns_name, Survey()))
        ns = self.fold(thread_id, items, use_views=True).namespaces.get(ns_name)
        if ns is None:
            return
        with_views: Namespace | None = None  # set once S3 has failed: the journal alone
        cause: JournalError | None = None
        for cid in sorted(ns.checkpoints, reverse=True):
            if (below is not None and cid >= below) or (only is not None and cid != only):
                continue
            if not ns.resolvable(ns.checkpoints[cid]):
                self.ancestry(thread_id, ns_name, ns, cid)
                _chains_whole(thread_id, ns_name, ns, ns.checkpoints[cid])
            while True:
                try:
                    if with_views is not None and cause is not None:
                        _journal_holds(ns, with_views, cid, cause)
                    tup = fold_tuple(thread_id, ns_name, ns, ns.checkpoints[cid], self.loader,
                                     self.origins, self.values)
                    if (start_at := ns.checkpoints[cid].history_from) is not None:
                        self.origins.note_history((thread_id, ns_name, cid), start_at)
                    break
                except BlobUnavailable as e:
                    if with_views is not None:
                        raise AssertionError(
                            "unreachable: the journal-only fold needs no blob") from None
                    cause, with_views = e.cause, ns
                    ns = self.fold(thread_id, items, use_views=False).namespaces[ns_name]
            yield tup


def _chains_whole(thread_id: str, ns_name: str, ns: Namespace, event: CheckpointEvent) -> None:
    """Raise CorruptRecordError if a channel of ``event`` is stored as a delta whose chain
    the whole namespace does not hold (a base deleted or altered outside the journal's
    operations; prune and delete_for_runs carry whole values first): never a checkpoint
    with a value silently missing (I2b)."""
    got = ns.resolve(event, event.channel_versions)
    broken = sorted(ch for ch, v in event.channel_versions.items() if ch not in got and any(
        c[0] <= event.checkpoint_id for c in ns.blobs.get((ch, v)) or []))
    if broken:
        raise CorruptRecordError(
            f"thread {thread_id!r}, namespace {ns_name!r}, checkpoint {event.checkpoint_id}: "
            f"channel(s) {', '.join(broken)} are stored as deltas whose base is not in the "
            "journal: a journal item was deleted outside the journal's operations. Nothing "
            "was read in its place.")


def _journal_holds(journal: Namespace, with_views: Namespace, cid: str,
                   cause: JournalError) -> None:
    """Raise the S3 failure that sent the read to the journal (its class, naming S3, the
    bucket and the key) if the journal no longer holds a value the views had for
    ``cid`` (its journal item expired): never a checkpoint with a channel missing."""
    event = journal.checkpoints.get(cid)
    seen = with_views.checkpoints.get(cid)
    if event is None or seen is None:
        return
    wanted = set(with_views.resolve(seen, seen.channel_versions))
    missing = sorted(wanted - set(journal.resolve(event, event.channel_versions)))
    if missing:
        raise type(cause)(
            f"checkpoint {cid}: channel(s) {', '.join(missing)} are held in S3 only, and "
            f"{cause} (the journal's copy has expired). Nothing was read in its place.")


class _Skip:
    """A checkpoint whose record cannot be read (a torn chunk): not listed."""


SKIP = _Skip()


@dataclass
class _Tail:
    """The fold of a window's items, kept while no page is added."""

    fold: Fold | None = None
    size: int = -1


def _by_namespace(items: Iterable[Item]) -> dict[str, list[Item]]:
    out: dict[str, list[Item]] = {}
    for item in items:
        ns = _keys.namespace_of(item["SK"]["S"])
        if ns is not None:
            out.setdefault(ns, []).append(item)
    return out


def _root_pages(pages: Iterable[list[Item]]) -> Iterator[list[Item]]:
    """The root namespace's items of a descending scan of the whole journal, page by
    page, until the scan leaves the root namespace."""
    for page in pages:
        yield [i for i in page if i["SK"]["S"].startswith(ROOT)]
        if any(i["SK"]["S"] < ROOT for i in page):
            return
