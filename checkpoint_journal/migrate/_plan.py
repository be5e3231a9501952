"""What the import writes, decided from what was read (pure: no I/O).

- ``order``: a thread's checkpoints oldest first, every parent before its children.
- ``journal_checkpoint``: a DynamoDBSaver checkpoint as the journal stores it; only its
  channel versions change form (see ``journal_version``).
- ``new_versions``: the channels whose version differs from the parent's, so the journal
  stores deltas as it does for live runs.
- ``write_calls``: a checkpoint's pending writes as ``put_writes`` calls that give every
  write the index it had (LangGraph derives a regular write's index from its position in
  the call), minus what the journal holds already.
- ``checkpoint_difference``: how a checkpoint already in the journal differs, if it does.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import WRITES_IDX_MAP, Checkpoint, CheckpointTuple

from checkpoint_journal import errors
from checkpoint_journal.migrate._source import CheckpointItem, WriteItem, where

Same = Callable[[Any, Any], bool]


# -- versions ------------------------------------------------------------------------------


def journal_version(version: object, item: str) -> str:
    """A channel version as JournalSaver continues it.

    DynamoDBSaver keeps LangGraph's default integer versions; JournalSaver's are strings
    (``{counter:032}.{random}``), and LangGraph compares the versions of one checkpoint
    with each other, so a resumed thread holding both would fail (``str > int``). An
    integer ``n`` becomes ``f"{n:032}.{0.0:016}"``: same order, same counter for the
    saver's next version, and invisible to ``get_state`` and the history. A string
    version whose counter JournalSaver can continue (digits before the first ``.``) is
    kept as it is.
    """
    if isinstance(version, int) and not isinstance(version, bool) and version >= 0:
        return f"{version:032}.{0.0:016}"
    if isinstance(version, str) and version.split(".", 1)[0].isdigit():
        return version
    raise errors.CorruptRecordError(
        f"DynamoDBSaver item {item}: channel version {version!r} is neither LangGraph's "
        "integer version nor a string JournalSaver can continue (digits, a dot, anything)")


def journal_checkpoint(value: Any, cp: CheckpointItem) -> tuple[Checkpoint, dict[str, Any]]:
    """(checkpoint, metadata) of a decoded DynamoDBSaver checkpoint payload, checked
    against its item, with its versions in the journal's form (``journal_version``)."""
    item = where(cp.payload.key)
    checkpoint = value.get("checkpoint") if isinstance(value, dict) else None
    metadata = value.get("metadata") if isinstance(value, dict) else None
    if not isinstance(checkpoint, dict) or not isinstance(metadata, dict):
        raise errors.CorruptRecordError(
            f"the payload of DynamoDBSaver item {item} is not a checkpoint with its "
            "metadata ({'checkpoint': ..., 'metadata': ...})")
    if checkpoint.get("id") != cp.checkpoint_id:
        raise errors.CorruptRecordError(
            f"the payload of DynamoDBSaver item {item} holds checkpoint "
            f"{checkpoint.get('id')!r}, not {cp.checkpoint_id}")
    for name in ("channel_values", "channel_versions", "versions_seen"):
        if not isinstance(checkpoint.get(name), dict):
            raise errors.CorruptRecordError(
                f"the checkpoint in DynamoDBSaver item {item} has no {name} mapping")
    out: dict[str, Any] = dict(checkpoint)
    out["channel_versions"] = {ch: journal_version(v, item)
                               for ch, v in checkpoint["channel_versions"].items()}
    out["versions_seen"] = {
        node: {ch: journal_version(v, item) for ch, v in seen.items()}
        for node, seen in checkpoint["versions_seen"].items()
    }
    journal: Checkpoint = out  # type: ignore[assignment]  # a Checkpoint, checked above
    return journal, metadata


def new_versions(versions: dict[str, Any], parent: dict[str, Any] | None) -> dict[str, Any]:
    """The channels whose version differs from the parent's (all without a parent)."""
    if parent is None:
        return dict(versions)
    return {ch: v for ch, v in versions.items() if parent.get(ch) != v}


# -- order ---------------------------------------------------------------------------------


def order(cps: Iterable[CheckpointItem]) -> list[CheckpointItem]:
    """Parents before children, otherwise oldest (smallest uuid6 id) first, across the
    thread's namespaces. A parent missing from the source does not hold a child back.
    Ids are time-ordered, so this is their order unless a clock went back between a
    parent and a child."""
    by_key = {(cp.checkpoint_ns, cp.checkpoint_id): cp for cp in cps}
    children: dict[tuple[str, str], list[CheckpointItem]] = defaultdict(list)
    ready: list[tuple[str, str, CheckpointItem]] = []
    for cp in by_key.values():
        parent = (cp.checkpoint_ns, cp.parent_checkpoint_id or "")
        if cp.parent_checkpoint_id and parent in by_key and parent != (
                cp.checkpoint_ns, cp.checkpoint_id):
            children[parent].append(cp)
        else:
            ready.append((cp.checkpoint_id, cp.checkpoint_ns, cp))
    heapq.heapify(ready)
    out: list[CheckpointItem] = []
    while ready:
        _, _, cp = heapq.heappop(ready)
        out.append(cp)
        for child in children.pop((cp.checkpoint_ns, cp.checkpoint_id), []):
            heapq.heappush(ready, (child.checkpoint_id, child.checkpoint_ns, child))
    if children:  # a cycle of parent ids: no LangGraph history looks like this
        stuck = next(iter(children.values()))[0]
        raise errors.CorruptRecordError(
            f"DynamoDBSaver item {where(stuck.payload.key)}: its parent chain loops back to "
            "itself; no LangGraph history can hold it")
    return out


# -- pending writes ------------------------------------------------------------------------


SourceWrite = tuple[WriteItem, Any]
"""A pending-write item and its decoded value."""


@dataclass(frozen=True)
class WriteCall:
    """One ``put_writes`` call."""

    task_id: str
    task_path: str
    writes: list[tuple[str, Any]]


@dataclass(frozen=True)
class TaskWrites:
    """What completes one task's writes in the journal."""

    calls: list[WriteCall]
    """One per task path (LangGraph uses one per task)."""
    missing: int
    """How many of the task's writes the journal lacks. The calls write the others
    again, which changes nothing: a regular write keeps its first value, a special one
    its last, and it is the same value."""


@dataclass(frozen=True)
class WritesPlan:
    tasks: list[TaskWrites]
    """The tasks the journal lacks writes of."""
    present: int
    """Writes the journal holds already."""


def _call_writes(group: Sequence[SourceWrite]) -> list[tuple[str, Any]]:
    """The writes of one (task, path) in the positions that give each its index.

    A regular write's index is its position in the ``put_writes`` call; a special one's
    is fixed by its channel, wherever it sits, so specials fill the gaps between regular
    ones (LangGraph wrote them that way: a resumed task's ``__resume__`` write, then its
    results). With more gaps than specials a special is repeated, which changes nothing
    (the last value of a special write stands, and it is the same)."""
    regular = {w.idx: (w.channel, v) for w, v in group if w.idx >= 0}
    special = [(w.channel, v) for w, v in group if w.idx < 0]
    size = max(regular) + 1 if regular else 0
    gaps = size - len(regular)
    if gaps and not special:
        first = min(w.idx for w, _ in group if w.idx >= 0)
        item = next(w for w, _ in group if w.idx >= 0)
        raise errors.CorruptRecordError(
            f"DynamoDBSaver item {where(item.payload.key)}: task {item.task_id}'s regular "
            f"writes start at index {first} or skip one, with no special write that LangGraph "
            "would have put in between, so their indexes cannot be reproduced")
    fill = [special[i % len(special)] for i in range(gaps)] if gaps else []
    out: list[tuple[str, Any]] = []
    for pos in range(size):
        out.append(regular[pos] if pos in regular else fill.pop(0))
    used = min(gaps, len(special))
    return out + special[used:]


def write_calls(
    writes: Sequence[SourceWrite],
    present: Sequence[tuple[str, str, Any]] | None,
    same: Same,
    conflict: Callable[[str, str], errors.ConflictError],
) -> WritesPlan:
    """The ``put_writes`` calls that complete a checkpoint's pending writes in the journal.

    ``present`` is what the journal returns for the checkpoint (``(task_id, channel,
    value)`` in ``writes_sort_key`` order), None when the checkpoint was not there. Per
    task, the journal's regular writes must be the first of the source's (in index
    order) and its special ones equal by channel; more in the journal than in the source
    are writes made after the switch (a resumed run) and stay. A task holding all its
    writes is skipped; one holding some is written again whole (each call is one journal
    item, so a task is normally all there or not at all). ``conflict(task_id, what)``
    makes the error for a write the journal holds with another value.
    """
    groups: dict[tuple[str, str], list[SourceWrite]] = defaultdict(list)
    for w, v in writes:
        groups[(w.task_id, w.task_path)].append((w, v))
    have_regular: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    have_special: dict[str, dict[str, Any]] = defaultdict(dict)
    for task_id, channel, value in present or ():
        if channel in WRITES_IDX_MAP:
            have_special[task_id][channel] = value
        else:
            have_regular[task_id].append((channel, value))

    tasks: list[TaskWrites] = []
    held = 0
    by_task: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for task_id, path in sorted(groups):
        by_task[task_id].append((task_id, path))
    for task_id, keys in by_task.items():
        # The journal returns a task's regular writes by (path, index): the same order.
        source_regular = [(w.channel, v) for key in keys
                          for w, v in sorted(groups[key], key=lambda wv: wv[0].idx)
                          if w.idx >= 0]
        theirs = have_regular.get(task_id, [])
        common = min(len(theirs), len(source_regular))
        for (ch_a, a), (ch_b, b) in zip(theirs[:common], source_regular[:common], strict=True):
            if ch_a != ch_b or not same(a, b):
                raise conflict(task_id, f"its write to {ch_b!r} has another value (or "
                               f"channel, {ch_a!r}) in the journal")
        missing_regular = len(source_regular) - common
        missing_special = 0
        for key in keys:
            for w, v in groups[key]:
                if w.idx >= 0:
                    continue
                if w.channel not in have_special.get(task_id, {}):
                    missing_special += 1
                elif not same(have_special[task_id][w.channel], v):
                    raise conflict(task_id, f"its {w.channel} write has another value in "
                                   "the journal")
        total = sum(len(groups[key]) for key in keys)
        missing = missing_regular + missing_special
        held += total - missing
        if not missing:
            continue
        tasks.append(TaskWrites(
            [WriteCall(task_id, path, _call_writes(groups[(task_id, path)])) for _, path in keys],
            missing))
    return WritesPlan(tasks, held)


# -- checkpoints already in the journal ----------------------------------------------------


def checkpoint_difference(
    have: CheckpointTuple, checkpoint: Checkpoint, metadata: dict[str, Any],
    parent_id: str | None, same: Same,
) -> str | None:
    """What differs between the journal's checkpoint and the one the import would write
    (None: the same), in words for the conflict error."""
    theirs = have.parent_config["configurable"].get("checkpoint_id") if have.parent_config else None
    if theirs != parent_id:
        return f"its parent is {theirs} in the journal, {parent_id} in DynamoDBSaver"
    mine: dict[str, Any] = dict(checkpoint)
    stored: dict[str, Any] = dict(have.checkpoint)
    for name in sorted(set(mine) | set(stored)):
        if name == "channel_values":
            values_a, values_b = stored.get(name) or {}, mine.get(name) or {}
            for ch in sorted(set(values_a) | set(values_b)):
                if ch not in values_a or ch not in values_b or not same(values_a[ch], values_b[ch]):
                    return f"channel {ch!r} has another value"
        elif not same(stored.get(name), mine.get(name)):
            return f"its {name} differ"
    for key in sorted(set(metadata) | set(have.metadata)):
        if not same(dict(have.metadata).get(key), metadata.get(key)):
            return f"its metadata {key!r} differs"
    return None
