"""``get_delta_channel_history``: a namespace's journal read newest first, down to the
nearest stored value (seed) of each requested channel.

A ``DeltaChannel`` stores a value only at its snapshot steps; in between, its state is the
seed plus the pending writes of every ancestor from the seed's checkpoint to the target's
parent, replayed oldest first. The parent chain is walked in the one descending Query a
namespace's journal allows (``keys``: a checkpoint's writes and view sort just above its
event, older checkpoints below), so a history costs one Query per 1 MB page at any
distance, plus one S3 GET per offloaded seed; reading stops at the page where every
channel has found its seed.

:func:`walk` is the rule (pure, on a fold of what was read); :func:`read_chain` reads
pages until the walk is decided; :func:`history` and :func:`keepset` build the answers.

The walk follows LangGraph's ``InMemorySaver``: at each ancestor, the channel's writes
(in ``writes_sort_key`` order) are collected; the walk ends for a channel at the first
ancestor whose channel version resolves to a stored (non-empty) value, that ancestor's
writes included; a version stored nowhere does not end it. Forks are never mixed in:
only the parent chain counts. An ancestor gone from the journal is never skipped
(I2b): damage raises CorruptRecordError, a removal (prune, delete_for_runs) or an
expiry raises JournalError, each naming the checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from langgraph.checkpoint.base import DeltaChannelHistory, PendingWrite

from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import (
    Namespace,
    Resolved,
)
from checkpoint_journal._core.items import Item
from checkpoint_journal._core.survey import Survey, survey
from checkpoint_journal.errors import CorruptRecordError, JournalError
from checkpoint_journal.saver._read import ITEMS_PER_CHECKPOINT, Reader
from checkpoint_journal.saver._values import BlobUnavailable

Listed = Callable[[tuple[str, str, str], str], "list[str] | None"]
"""(thread, namespace, checkpoint id), the range's lower key -> its keys if listed."""


@dataclass
class Chain:
    """What a walk decided, from the checkpoint it started at down the parent chain."""

    visited: list[str] = field(default_factory=list)
    """The checkpoints walked, newest first (the start first)."""
    seeds: dict[str, tuple[str, Resolved]] = field(default_factory=dict)
    """channel -> (checkpoint whose stored value ends its walk, that value)."""
    depth: dict[str, int] = field(default_factory=dict)
    """channel -> how many of ``visited`` it collects writes from (its seed's included)."""
    broken: tuple[str | None, str] | None = None
    """(checkpoint, its parent) when the walk reached a parent that is not there (None:
    the start itself is not there)."""

    def walked(self, channel: str) -> list[str]:
        """The checkpoints ``channel`` collects writes from, newest first."""
        return self.visited[: self.depth.get(channel, len(self.visited))]


def stored_value(ns: Namespace, cid: str, channel: str) -> Resolved | None | bool:
    """The value checkpoint ``cid`` stores for ``channel``: its Resolved (``value`` None
    when the channel was empty), None when its version is stored nowhere at or before
    it in what was read, False when the checkpoint has no version of the channel."""
    event = ns.checkpoints[cid]
    version = event.channel_versions.get(channel)
    if version is None:
        return False
    found = ns.resolve(event, {channel: version}).get(channel)
    # ``resolve`` falls back to a later copy; a value at or before ``cid`` is what the
    # checkpoint stores (a later one may still be unread: read on).
    return found if found is not None and found.source <= cid else None


def held_at_or_before(ns: Namespace, cid: str, channel: str) -> bool:
    """Whether a journal item at or before ``cid`` holds ``channel`` at the version
    ``cid`` has (whole or as a delta): when it does and ``stored_value`` finds none once
    everything below was read, the value cannot be rebuilt (damage)."""
    version = ns.checkpoints[cid].channel_versions.get(channel)
    return any(src <= cid for src, _ in ns.blobs.get((channel, version)) or [])


def walk(
    ns: Namespace, start: str | None, channels: Iterable[str], *,
    passed: Callable[[str], bool], exhausted: bool,
) -> Chain | None:
    """Walk the parent chain from ``start`` (inclusive) until every channel has met a
    stored value, or the root, or a missing parent. None: the items read do not decide
    it yet (read another page).

    ``passed(cid)``: every item of the namespace at or above checkpoint ``cid``'s event
    has been read (its event is read, or known absent). ``exhausted``: everything below
    has been read too."""
    chain = Chain()
    remaining = set(channels)
    cursor = start
    while cursor and remaining:
        if cursor not in ns.checkpoints:
            if not passed(cursor):
                return None
            chain.broken = (chain.visited[-1] if chain.visited else None, cursor)
            break
        ended: dict[str, Resolved] = {}
        for ch in sorted(remaining):
            found = stored_value(ns, cursor, ch)
            if found is None and not exhausted:
                return None  # stored further down, or nowhere: read on
            if found is None and held_at_or_before(ns, cursor, ch):
                raise CorruptRecordError(
                    f"checkpoint {cursor}: the value of channel {ch!r} at its version cannot "
                    "be rebuilt from the journal (a part it is stored as is missing). "
                    "Nothing was read in its place.")
            if isinstance(found, Resolved) and found.value is not None:
                ended[ch] = found
        chain.visited.append(cursor)
        for ch, resolved in ended.items():
            chain.seeds[ch] = (cursor, resolved)
            chain.depth[ch] = len(chain.visited)
            remaining.discard(ch)
        cursor = ns.checkpoints[cursor].parent_checkpoint_id
    return chain


@dataclass
class Found:
    """A history read: the fold of the items read, the target and its chain."""

    ns: Namespace
    target: str | None
    """None: no such checkpoint (or the namespace has none)."""
    chain: Chain


def read_chain(
    reader: Reader, thread_id: str, ns_name: str, cid: str | None,
    channels: Sequence[str], *, from_target: bool, fetch: bool = True,
    listed: Listed | None = None,
) -> Found:
    """Read the namespace newest first, from checkpoint ``cid`` (the latest when None),
    until the walk from it (``from_target``) or from its parent is decided; check what
    was read (I2b); with ``fetch``, fetch the seeds offloaded to S3, or answer from the
    journal alone when one cannot be read. ``listed``: the keys of the range a known
    history starts at, already listed (``_prefetch``), if any."""
    store = reader.store
    pk = _keys.thread_pk(thread_id)
    prefix = _keys.ns_prefix(ns_name)
    items: list[Item] = []
    pages: Iterator[list[Item]]
    floor: str | None = None
    # Where the history starts, when the saver knows (the event's ``hfrom``, noted when
    # the checkpoint was read): exactly that range, in one Query unless over 1 MB.
    start = reader.origins.history_from((thread_id, ns_name, cid)) if cid else None
    if cid and start is not None and start < cid:
        lo = _keys.checkpoint_sk(ns_name, start)
        first = _held_or_read(reader, pk, ns_name, lo, _keys.checkpoint_sk(ns_name, cid) + "#~",
                              listed((thread_id, ns_name, cid), lo) if listed else None)
        pages = ([i for i in page if i["SK"]["S"] < lo] for page in store.pages(
            pk, between=(prefix, lo), descending=True))  # read only if the walk needs more
        floor = lo
    elif cid:
        # The checkpoint's own items first, its namespace's tombstone (above them)
        # alongside, in parallel: one round trip. Its event says where its history starts
        # (``hfrom``): then exactly that range, else everything below, page by page.
        tomb = reader.pool.submit(store.get, pk, _keys.tombstone_sk(ns_name))
        target = _keys.checkpoint_sk(ns_name, cid)
        first = next(iter(store.pages(pk, between=(prefix, target + "#~"), descending=True,
                                      first_limit=ITEMS_PER_CHECKPOINT)), [])
        if (t := tomb.result()) is not None:
            items.append(t)
        lowest = first[-1]["SK"]["S"] if first else target + "#~"
        event = next((i for i in first if i["SK"]["S"] == target), None)
        hint = event["hfrom"]["S"] if event is not None and "hfrom" in event else None
        if hint is not None and _keys.checkpoint_sk(ns_name, hint) < lowest:
            floor = _keys.checkpoint_sk(ns_name, hint)
            first = first + [i for page in store.pages(
                pk, between=(floor, lowest), descending=True) for i in page
                if i["SK"]["S"] < lowest]
            lowest = floor
        pages = ([i for i in page if i["SK"]["S"] < lowest] for page in store.pages(
            pk, between=(prefix, lowest), descending=True))
    else:
        pages = iter(store.pages(pk, prefix=prefix, descending=True))
        first = next(pages, [])
    items.extend(first)
    # Pages come newest first: the last item read is the lowest.
    if floor is None:
        floor = first[-1]["SK"]["S"] if first else None
    exhausted = False
    use_views = True
    with_views: Found | None = None  # set once S3 has failed: the journal alone
    cause: JournalError | None = None
    while True:
        found = _decide(reader, thread_id, ns_name, cid, items, channels,
                        from_target=from_target, use_views=use_views, exhausted=exhausted,
                        floor=floor)
        if found is None:
            if exhausted:
                raise AssertionError("unreachable: a walk over the whole namespace ends")
            page = next(pages, None)  # no request once the Query has ended
            if page is None:
                exhausted = True
            elif page:
                items.extend(page)
                floor = page[-1]["SK"]["S"]
            continue
        if with_views is not None and cause is not None:
            _same_seeds(with_views, found, cause)
        if not fetch:
            return found
        try:
            reader.loader.fetch(r.value for _, r in found.chain.seeds.values())
        except BlobUnavailable as e:
            if not use_views:
                raise AssertionError("unreachable: the journal-only fold needs no blob") from None
            use_views, with_views, cause = False, found, e.cause
            continue
        return found


def _held_or_read(reader: Reader, pk: str, ns_name: str, lo: str, hi: str,
                  listed: list[str] | None = None) -> list[Item]:
    """The journal items with keys in [lo, hi], newest first, and the namespace's
    tombstone if it has one: their keys by one keys-only Query (up to the tombstone's
    key; ``listed``: its answer, already read), the content of those the saver holds (it
    wrote or read them; journal items never change) from memory, the others read. Views
    are left out: a history needs only the events and the writes."""
    held = reader.items
    tomb_sk = _keys.tombstone_sk(ns_name)
    if held is None or held.get(pk, hi[:-2]) is None:
        # Not this saver's own recent items: read them, the tombstone's key included.
        read = [i for page in reader.store.pages(pk, between=(lo, tomb_sk), descending=True)
                for i in page if i["SK"]["S"] <= hi or i["SK"]["S"] == tomb_sk]
        if held is not None:
            held.keep(read)
        return read
    if listed is None:
        listed = [sk for _, sk in reader.store.keys(pk, "", between=(lo, tomb_sk))]
    keys = sorted((sk for sk in listed if sk <= hi
                   and not sk.endswith("#" + _keys.KIND_VIEW)), reverse=True)
    found = {sk: item for sk in keys if (item := held.get(pk, sk)) is not None}
    missing = {sk for sk in keys if sk not in found}
    if missing:
        read = [i for page in reader.store.pages(pk, between=(min(missing), max(missing)))
                for i in page if i["SK"]["S"] in missing]
        held.keep(read)
        found.update((i["SK"]["S"], i) for i in read)
    tomb = reader.store.get(pk, tomb_sk) if tomb_sk in listed else None
    return ([tomb] if tomb is not None else []) + [found[sk] for sk in keys if sk in found]


def _decide(
    reader: Reader, thread_id: str, ns_name: str, cid: str | None, items: list[Item],
    channels: Sequence[str], *, from_target: bool, use_views: bool, exhausted: bool,
    floor: str | None,
) -> Found | None:
    """The read's answer from ``items`` (the namespace's, newest first, down to
    ``floor``), or None when another page is needed."""

    def passed(c: str) -> bool:
        return exhausted or (floor is not None and floor <= _keys.checkpoint_sk(ns_name, c))

    sv = survey(items, now_s=reader.now).get(ns_name, Survey())
    ns = reader.fold(thread_id, items, use_views=use_views).namespaces.get(ns_name, Namespace())
    target = cid
    if target is None:
        if not ns.checkpoints:
            return Found(ns, None, Chain()) if exhausted else None
        target = max(ns.checkpoints)  # everything above the newest event read is read
    elif target not in ns.checkpoints:
        if not passed(target):
            return None
        reader.witnesses(thread_id, ns_name, sv, at_least=target)
        return Found(ns, None, Chain())
    start = target if from_target else ns.checkpoints[target].parent_checkpoint_id
    chain = walk(ns, start, channels, passed=passed, exhausted=exhausted)
    if chain is None:
        return None
    lowest = min(chain.visited, default=target)
    reader.witnesses(thread_id, ns_name, sv, at_least=lowest)
    if chain.broken is not None:
        child, parent = chain.broken
        _explain_gap(reader, thread_id, ns_name, ns, sv, child or target, parent)
    return Found(ns, target, chain)


def _explain_gap(
    reader: Reader, thread_id: str, ns_name: str, ns: Namespace, sv: Survey, child: str,
    parent: str,
) -> None:
    """Raise for an ancestor a history needs that is not in the journal: never a
    shorter history in its place."""
    where = f"thread {thread_id!r}, namespace {ns_name!r}, checkpoint {child}"
    if parent in sv.present:
        raise JournalError(
            f"{where}: its parent {parent} is no longer visible (a value it depends on "
            "expired under the saver's TTL), so the DeltaChannel history through it cannot "
            "be replayed. Nothing was read in its place.")
    if child in ns.checkpoints:
        reader.ancestry(thread_id, ns_name, ns, child)  # raises unless a removal explains it
    raise JournalError(
        f"{where}: its parent {parent} was removed by prune or delete_for_runs, so the "
        "DeltaChannel history through it cannot be replayed (the writes it held are gone). "
        "Nothing was read in its place; read a checkpoint whose history was kept.")


def _same_seeds(with_views: Found, journal: Found, cause: JournalError) -> None:
    """Raise the S3 failure that sent the read to the journal if the journal no longer
    ends a channel's walk where the views did (its copy has expired)."""
    views_at = {ch: at for ch, (at, _) in with_views.chain.seeds.items()}
    journal_at = {ch: at for ch, (at, _) in journal.chain.seeds.items()}
    differ = sorted(ch for ch in views_at if journal_at.get(ch) != views_at[ch])
    if differ:
        raise type(cause)(
            f"the stored value of channel(s) {', '.join(differ)} is held in S3 only, and "
            f"{cause} (the journal's copy has expired). Nothing was read in its place.")


def history(
    reader: Reader, thread_id: str, ns_name: str, cid: str | None, channels: Sequence[str],
    listed: Listed | None = None,
) -> dict[str, DeltaChannelHistory]:
    """Per channel: the writes of the target's ancestors down to its seed, oldest first
    (``writes_sort_key`` order within a checkpoint), and the seed unless the walk reached
    the root. A missing target gives every channel no writes and no seed."""
    if not channels:
        return {}
    found = read_chain(reader, thread_id, ns_name, cid, channels, from_target=False,
                       listed=listed)
    out: dict[str, DeltaChannelHistory] = {}
    loader = reader.loader
    for ch in channels:
        writes: list[PendingWrite] = []
        if found.target is not None:
            for at in reversed(found.chain.walked(ch)):
                writes.extend((w.task_id, w.channel, loader.value(w.value))
                              for w in found.ns.writes.get(at, []) if w.channel == ch)
        entry: DeltaChannelHistory = {"writes": writes}
        seed = found.chain.seeds.get(ch)
        if seed is not None and seed[1].value is not None:
            entry["seed"] = loader.value(seed[1].value)
        out[ch] = entry
    return out


def keepset(
    reader: Reader, thread_id: str, ns_name: str, cid: str | None, channels: Sequence[str],
) -> set[str]:
    """The checkpoints the delta state of ``channels`` at the target is rebuilt from: the
    target, and each ancestor down to the one holding each channel's stored value (the
    target alone when it stores them all). Empty when there is no such checkpoint."""
    found = read_chain(reader, thread_id, ns_name, cid, channels, from_target=True,
                       fetch=False)
    if found.target is None:
        return set()
    return {found.target, *found.chain.visited}
