"""What the items read say about a namespace without decoding any body (pure): which
checkpoint events are visible, which views and writes events were read. The read path
decides from it which items answer which checkpoint (``saver/_read.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import checkpoint_visible, visible_items
from checkpoint_journal._core.items import Item


def _num(item: Item, name: str) -> int | None:
    v = item.get(name)
    return int(v["N"]) if v else None


@dataclass
class Survey:
    """What a set of items says about a namespace without decoding any body."""

    events: dict[str, Item] = field(default_factory=dict)
    """Visible checkpoint events (by attributes: TTL, visible_until, tombstone)."""
    views: dict[str, Item] = field(default_factory=dict)
    writes_events: dict[str, int] = field(default_factory=dict)
    tombstone_ms: int = 0
    last_activity_ms: int = 0
    """The latest written_at of a visible checkpoint or writes event."""
    present: set[str] = field(default_factory=set)
    """Checkpoint events read (not hidden by TTL or a tombstone), visible or not."""

    def unexplained(self, at_least: str = "") -> dict[str, str]:
        """Checkpoints (ids from ``at_least`` up) whose items witness a journal item that
        is gone (I2b): a view without its checkpoint event, or a view that folded more
        writes events than the journal holds. Only a prune or delete_for_runs (whose
        removal markers name what they took) explains either; anything else is damage.
        Call it once every item of those checkpoints has been read."""
        out: dict[str, str] = {}
        for cid, view in self.views.items():
            if cid < at_least:
                continue
            if cid not in self.present:
                out[cid] = "its view item is present but its checkpoint event is not"
                continue
            folded, held = _num(view, "wm") or 0, self.writes_events.get(cid, 0)
            if folded > held:
                out[cid] = (f"its view folded {folded} writes events but the journal holds "
                            f"{held}")
        return out

    def seed_below(self, checkpoint_id: str) -> str | None:
        """The newest visible checkpoint older than ``checkpoint_id`` whose view item was
        read: its values are a complete starting point for everything after it."""
        found = [c for c in self.views if c < checkpoint_id and c in self.events]
        return max(found) if found else None

    def current_view(self, checkpoint_id: str, now_s: float) -> Item | None:
        """The view item of a visible checkpoint if it folded every writes event read."""
        view = self.views.get(checkpoint_id)
        if view is None or checkpoint_id not in self.events:
            return None
        if _num(view, "wm") != self.writes_events.get(checkpoint_id, 0):
            return None
        exp = _num(view, "expires_at")
        if exp is not None and exp <= now_s:
            return None
        return view


def survey(items: Iterable[Item], *, now_s: float) -> dict[str, Survey]:
    """Per namespace: visible events, view items and writes-event counts (no decoding)."""
    tombstones, visible = visible_items(items, now_s=now_s)
    out = {ns: Survey(tombstone_ms=at) for ns, at in tombstones.items()}
    for key, item in visible:
        sv = out.setdefault(key.checkpoint_ns, Survey())
        if key.kind in (_keys.KIND_CHECKPOINT, _keys.KIND_WRITES):
            sv.last_activity_ms = max(sv.last_activity_ms, _num(item, "written_at") or 0)
        if key.kind == _keys.KIND_CHECKPOINT:
            sv.present.add(key.checkpoint_id)
            if checkpoint_visible(item, now_s):
                sv.events[key.checkpoint_id] = item
        elif key.kind == _keys.KIND_VIEW:
            sv.views[key.checkpoint_id] = item
        elif key.kind == _keys.KIND_WRITES:
            sv.writes_events[key.checkpoint_id] = sv.writes_events.get(key.checkpoint_id, 0) + 1
    return out
