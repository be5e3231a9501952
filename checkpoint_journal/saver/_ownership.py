"""Write ownership: a superseded worker cannot fork a thread.

Two workers on one thread (a Lambda that timed out and was retried, a frozen container
that thaws) would otherwise both write: the chain forks, and the checkpoint written last
(time-ordered ids) becomes the tip. ``JournalSaver.claim_write_ownership(thread_id)``
makes the caller the thread's *owner* and returns a **writer** whose ``put`` and
``put_writes`` are accepted only while it stays the owner (LangGraph's
``WRITE_OWNERSHIP`` contract, langgraph-checkpoint-conformance's ``ownership.py``):

- **The owner item.** One item per thread, in its partition (``keys.owner_sk``: ``O#``),
  holds the current owner's token: 32 random hex digits. A claim is one unconditional
  PutItem of a fresh token, so it supersedes any current owner, and a superseded token
  can never become current again. ``delete_thread`` deletes the whole partition, owner
  item included: a deletion supersedes every owner.
- **The fence.** A writer's event is committed by one TransactWriteItems: a
  ConditionCheck that the owner item still holds its token, and the Put of the commit
  item (I1's ``attribute_not_exists``). Transactions are all-or-nothing, so a refused
  write stores nothing, and it is refused at the write itself: StaleWriteOwnerError
  (``is_stale_write_owner_error``), raised by ``put`` / ``put_writes``. Chunks of a large
  record are written only after a read of the owner item, and deleted again if the
  commit is refused (``DynamoJournalStore.append_fenced``).
- **The writer** is a shallow copy of the saver (as LangGraph's ``with_allowlist`` makes
  one) whose class adds the fence (:class:`FencedWriter`): a complete checkpointer, sync
  and async, usable as ``builder.compile(checkpointer=writer)``. It shares the saver's
  clients, caches and pools; its ``close`` releases nothing (close the saver).

Reads need no ownership, and only ``put`` / ``put_writes`` are fenced: the maintenance
operations (``delete_thread``, ``prune``, ``copy_thread``, ``delete_for_runs``) are not.
Unfenced use (the saver itself) writes exactly as before: one PutItem per event.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
from typing import NamedTuple, Protocol, TypeVar, cast

from langgraph.checkpoint.base import BaseCheckpointSaver

from checkpoint_journal import errors
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.items import ItemPlan
from checkpoint_journal._core.store import DynamoJournalStore

__all__ = ["Fence", "FencedWriter", "claim", "new_token"]

# Bytes of randomness in an owner token: 128 bits, so that no two claims ever draw the
# same token and a superseded one cannot become current again.
TOKEN_BYTES = 16


class Fence(NamedTuple):
    """What a writer holds: the thread it owns and the token of its claim."""

    thread_id: str
    pk: str
    """The thread's partition key, where its owner item lives."""
    token: str


class _Saver(Protocol):
    """What a claim needs of the saver (JournalSaver, without importing it)."""

    _store: DynamoJournalStore

    def _now(self) -> float: ...


S = TypeVar("S", bound=_Saver)


def new_token() -> str:
    return secrets.token_hex(TOKEN_BYTES)


class FencedWriter(BaseCheckpointSaver[str]):
    """The fence a writer's class adds to the saver's (mixed in before it, see
    :func:`claim`): ``put`` and ``put_writes`` store their event through
    ``_append_event``, which this class routes to the fenced append.

    A BaseCheckpointSaver adding no slots, so that the writer's class has the saver's
    memory layout and a copy of the saver can take it (``__class__`` assignment)."""

    __slots__ = ()

    _fence: Fence
    _store: DynamoJournalStore

    @property
    def owned_thread_id(self) -> str:
        """The thread this writer claimed."""
        return self._fence.thread_id

    def _append_event(self, plan: ItemPlan, thread_id: str) -> None:
        fence = self._fence
        if thread_id != fence.thread_id:
            raise errors.JournalError(
                f"this writer owns thread {fence.thread_id!r} and cannot write thread "
                f"{thread_id!r}; nothing was written. Write {thread_id!r} through the writer "
                f"claim_write_ownership({thread_id!r}) returns, or through the saver "
                "(unfenced)."
            )
        self._store.append_fenced(plan, fence.pk, fence.token)

    def check_write_ownership(self) -> None:
        """Raise StaleWriteOwnerError if this writer no longer owns its thread (one
        consistent read): the barrier of LangGraph's contract, for a worker that wants
        to know before it does work whose result it could not store."""
        self._store.check_owner(self._fence.pk, self._fence.token)

    async def acheck_write_ownership(self) -> None:
        await asyncio.to_thread(self.check_write_ownership)

    def close(self) -> None:
        """Nothing to release: the writer shares the clients and pools of the saver it
        was claimed from. Close that saver when done."""


# One writer class per saver class, made on first claim (a subclass of JournalSaver
# keeps its own behaviour under the fence).
_WRITER_CLASSES: dict[type, type] = {}


def writer_class(saver_class: type[S]) -> type[S]:
    """``saver_class`` with :class:`FencedWriter` mixed in before it."""
    if issubclass(saver_class, FencedWriter):
        return saver_class
    made = _WRITER_CLASSES.get(saver_class)
    if made is None:
        made = type(f"Fenced{saver_class.__name__}", (FencedWriter, saver_class),
                    {"__module__": __name__, "__slots__": ()})
        made = _WRITER_CLASSES.setdefault(saver_class, made)
    return cast("type[S]", made)


def claim(saver: S, thread_id: str) -> S:
    """Make a new owner of ``thread_id`` (one PutItem, superseding any current owner)
    and return its writer: a shallow copy of ``saver`` fenced by the new token."""
    pk = _keys.thread_pk(thread_id)  # InvalidKeyError before any request
    token = new_token()
    saver._store.claim_owner(pk, token, int(saver._now() * 1000))
    writer = copy.copy(saver)
    writer.__class__ = writer_class(type(saver))
    cast(FencedWriter, writer)._fence = Fence(thread_id, pk, token)
    return writer
