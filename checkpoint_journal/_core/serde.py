"""The default serde: LangGraph's own, strict (I7: stored data never runs code).

``StrictSerializer`` is LangGraph's ``JsonPlusSerializer`` with its msgpack allow-list
on: only LangGraph's and langchain-core's own types (LangGraph's ``SAFE_MSGPACK_TYPES``)
plus what the user allows are rebuilt. A compiled graph adds its state schema's types
itself (``BaseCheckpointSaver.with_allowlist``, which keeps this class). Where LangGraph's
strict mode would quietly return a blocked value's raw fields (other data than was
written), this one raises ``BlockedTypeError`` naming the type and how to allow it; a
value stored as ``pickle`` is refused the same way, never unpickled.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from typing import Any

from langgraph.checkpoint.serde.event_hooks import (
    SerdeEvent,
    register_serde_event_listener,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_journal import errors

# The blocked types seen by the current load (None outside one).
_blocked: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "checkpoint_journal_blocked", default=None)


def _on_event(event: SerdeEvent) -> None:
    seen = _blocked.get()
    if seen is not None and event["kind"] in ("msgpack_blocked", "msgpack_method_blocked"):
        seen.append(f"{event['module']}.{event['name']}")


register_serde_event_listener(_on_event)


def parse_allow(names: Iterable[str]) -> list[tuple[str, str]]:
    """``module.Name`` strings (the command line's ``--allow``) as allow-list keys.

    Raises ValueError for a name without a module."""
    out = []
    for name in names:
        module, _, attr = name.strip().rpartition(".")
        if not module or not attr:
            raise ValueError(f"--allow {name!r}: give a type as module.Name "
                             "(for example myapp.models.Order)")
        out.append((module, attr))
    return out


class StrictSerializer(JsonPlusSerializer):
    """``JsonPlusSerializer`` restricted to its safe types plus ``allow``."""

    def __init__(self, allow: Iterable[tuple[str, ...] | type] = ()) -> None:
        super().__init__(allowed_msgpack_modules=None)
        extra = list(allow)
        if extra:
            merged = self.with_msgpack_allowlist(extra)
            self.__dict__.update(merged.__dict__)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        type_ = data[0]
        if type_ == "pickle":
            raise errors.BlockedTypeError(
                "a stored value is pickled: checkpoint-journal never unpickles (stored data "
                "must not run code). Re-write it with a msgpack or JSON serde.", "pickle")
        token = _blocked.set([])
        try:
            value = super().loads_typed(data)
            seen = _blocked.get() or []
        finally:
            _blocked.reset(token)
        if seen:
            name = seen[0]
            raise errors.BlockedTypeError(
                f"a stored value names the type {name}, which the deserialization allow-list "
                "does not admit, so it was not rebuilt (stored data never runs code). If "
                "the type is yours, allow it: saver.with_allowlist([("
                + ", ".join(repr(p) for p in name.rsplit(".", 1))
                + ")]) in Python, or --allow " + name + " on the command line.", name)
        return value
