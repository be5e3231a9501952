"""Channel values stored as deltas against the channel's previous version (pure).

A chat thread's message list grows every step; stored whole, each new version costs the
whole conversation so far. Stored as a zstd frame compressed with the previous version's
serialized bytes as a raw-content dictionary, it costs about what changed, whatever the
value is (a list appended to, a dict gaining keys, a message replaced in the middle).

A delta is kept in the journal as an ordinary TypedValue whose type is ``PREFIX`` followed
by the value's own serde type, so the record schemas and the archive format are unchanged;
its data is a one-line JSON header (the base's version and the checkpoint id of the
journal item that holds the base, the SHA-256 and length of the reconstructed bytes), a
newline, and the frame. Reconstruction checks the digest: a wrong or altered base is a
CorruptRecordError, never other data (I2b).

Chains stay bounded: a new whole value (a *snapshot*) is stored once the deltas since the
last one add up to ``SNAPSHOT_RATIO`` times its size, so a value costs O(what changed)
amortized per version, and reconstructing one reads at most about (1 + SNAPSHOT_RATIO)
times its size from the journal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import zstandard

from checkpoint_journal.errors import CorruptRecordError

PREFIX = "jd1:"
"""Type tag prefix of a delta value ("journal delta, format 1")."""
MIN_BYTES = 2048
"""A value smaller than this is stored whole: a delta would save little."""
SNAPSHOT_RATIO = 1.0
"""Deltas since the chain's snapshot may add up to this share of the snapshot's size."""
MAX_DEPTH = 2000
"""A chain longer than this ends with a snapshot whatever its bytes (bounds the CPU a cold
read spends replaying it)."""
# A delta must take at most this share of the value compressed alone, or the value is
# stored whole (starting a chain costs a whole value; a delta must earn its dependency).
_WORTH = 0.5
_LEVEL = 3
_MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Delta:
    """A value as a delta: ``type`` is the value's serde type."""

    type: str
    base_version: Any
    base_source: str
    """Checkpoint id of the journal item holding the base value (channel, base_version)."""
    digest: str
    size: int
    frame: bytes


def is_delta(typed: tuple[str, bytes]) -> bool:
    return typed[0].startswith(PREFIX)


def make(
    type_: str, data: bytes, base: bytes, base_version: Any, base_source: str
) -> tuple[str, bytes] | None:
    """``data`` as a delta against ``base``, or None when it would not take at most half
    of what ``data`` compressed alone takes (the journal record is compressed anyway)."""
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    frame = zstandard.ZstdCompressor(level=_LEVEL, dict_data=dictionary).compress(data)
    header = json.dumps(
        {"v": base_version, "at": base_source, "h": hashlib.sha256(data).hexdigest(),
         "n": len(data)},
        separators=(",", ":"), sort_keys=True,
    ).encode()
    out = header + b"\n" + frame
    if len(out) > _WORTH * len(data) or len(out) > _WORTH * len(
            zstandard.ZstdCompressor(level=_LEVEL).compress(data)):
        return None
    return PREFIX + type_, out


def parse(typed: tuple[str, bytes], where: str) -> Delta:
    """A delta TypedValue's parts; CorruptRecordError naming ``where`` if malformed."""
    type_, data = typed
    head, sep, frame = data.partition(b"\n")
    try:
        h = json.loads(head)
        return Delta(type_[len(PREFIX):], h["v"], str(h["at"]), str(h["h"]), int(h["n"]),
                     frame)
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptRecordError(f"{where}: a delta value with an unreadable header") from e


def apply(d: Delta, base: bytes, where: str) -> bytes:
    """The bytes ``d`` stands for, given its base's bytes; checked against its digest."""
    if d.size > _MAX_BYTES:
        raise CorruptRecordError(f"{where}: a delta claims {d.size} bytes, over the limit")
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    try:
        out = zstandard.ZstdDecompressor(dict_data=dictionary).decompress(
            d.frame, max_output_size=d.size)
    except zstandard.ZstdError as e:
        raise CorruptRecordError(f"{where}: a delta value does not decompress: {e}") from e
    if len(out) != d.size or hashlib.sha256(out).hexdigest() != d.digest:
        raise CorruptRecordError(
            f"{where}: a delta value does not reconstruct to the digest it holds (its base "
            "or the delta was altered). Nothing was read in its place.")
    return out


class Chain(NamedTuple):
    """Where a value's chain starts and what it has cost since (for the next delta)."""

    start: str
    """Checkpoint id of the event holding the chain's whole value (its snapshot)."""
    start_ms: int
    """written_at of that event (a TTL expires the chain with it)."""
    whole: int
    """Bytes of the snapshot's serialized value."""
    deltas: int
    """Bytes of the deltas stored after it, up to this value."""
    depth: int
    """Deltas after the snapshot, up to this value."""


Key = tuple[str, Any, str]
"""(channel, version, checkpoint id of the journal item holding the value)."""
Full = tuple[tuple[str, bytes], Chain]
"""A value's serialized form (type, bytes) and its chain."""
Known = Callable[[Key], "Full | None"]
# Of a chain replayed, every this many values are kept (with its end), so that reading
# each checkpoint of a long chain, newest first, replays a few deltas each, not the chain.
_KEEP_EVERY = 16


class Replayer:
    """The values a namespace's journal holds, deltas reconstructed (memoised per read).

    ``journal``: (channel, version, source) -> the TypedValue stored there (or None: the
    channel was empty); ``written_at``: source -> its item's written_at (ms); ``known``:
    values the caller already holds (the saver's own recent values), consulted for a
    base the journal items at hand do not hold."""

    def __init__(
        self, journal: dict[Key, tuple[str, bytes] | None], written_at: dict[str, int],
        where: str, known: Known | None = None,
    ) -> None:
        self.journal = journal
        self.written_at = written_at
        self.where = where
        self.known = known
        self._memo: dict[Key, Full] = {}

    def full(self, key: Key) -> Full | None:
        """The value at ``key`` with its chain, or None when a link of its chain is in
        neither the journal items at hand nor ``known`` (read further down, or damage)."""
        links: list[tuple[Key, Delta]] = []
        cur: Key = key
        while True:
            hit = self._memo.get(cur) or (self.known(cur) if self.known else None)
            if hit is not None:
                (type_, data), chain = hit
                break
            stored = self.journal.get(cur)
            if stored is None:
                return None  # not read (or an empty value where a base should be)
            if not is_delta(stored):
                type_, data = stored
                chain = Chain(cur[2], self.written_at.get(cur[2], 0), len(data), 0, 0)
                break
            d = parse(stored, f"{self.where}, checkpoint {cur[2]}, channel {cur[0]!r}")
            links.append((cur, d))
            cur = (cur[0], d.base_version, d.base_source)
            if len(links) > MAX_DEPTH + 1:
                raise CorruptRecordError(
                    f"{self.where}, channel {key[0]!r}: a delta chain longer than "
                    f"{MAX_DEPTH} (or a cycle): the journal was altered")
        for n, (k, d) in enumerate(reversed(links), 1):
            data = apply(d, data, f"{self.where}, checkpoint {k[2]}, channel {k[0]!r}")
            type_ = d.type
            chain = Chain(chain.start, chain.start_ms, chain.whole,
                          chain.deltas + len(d.frame), chain.depth + 1)
            if n == len(links) or chain.depth % _KEEP_EVERY == 0:
                self._memo[k] = ((type_, data), chain)
        if not links:
            self._memo.setdefault(cur, ((type_, data), chain))
        return (type_, data), chain
