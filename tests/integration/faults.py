"""Faults injected into real AWS calls through botocore's event system (no mock patching).

A hook registered on a client's ``before-call.{service}.*`` event runs before the request
is built and sent: raising there means the call never happened. One on
``after-call.{service}.*`` runs once the response is parsed: raising there means the call
happened but its caller never learns it (an unacknowledged write). ``CallHooks`` numbers
the calls made through a set of clients and, at call ``n``, either crashes the "process"
(``Crash``) or runs an action (``on_call``), e.g. another writer's request, which the race
tests slot between two calls of ``delete_thread``.

Used by tests/integration/test_crash_points.py and test_delete_race.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

Timing = Literal["before", "after"]
TIMINGS: tuple[Timing, ...] = ("before", "after")

# Where a call's number travels from its before-call to its after-call event: botocore
# passes the same request context dict to both.
_INDEX = "checkpoint_journal_tests_call_index"


class Crash(BaseException):
    """The process dies at this call.

    A BaseException, so that no ``except Exception`` (or ``except JournalError``) of the
    code under test can swallow it and carry on as if the process were still alive."""


@dataclass(frozen=True)
class Point:
    """Call ``n`` (from 0), and whether the fault comes before it is sent or after its
    response."""

    n: int
    timing: Timing

    def __str__(self) -> str:
        return f"{self.timing}-{self.n}"


def points(calls: int) -> list[Point]:
    """Every crash point of an operation that makes ``calls`` calls."""
    return [Point(n, t) for n in range(calls) for t in TIMINGS]


def service_of(client: Any) -> str:
    """The service id as botocore's event names spell it (``dynamodb``, ``s3``)."""
    return str(client.meta.service_model.service_id.hyphenize())


class CallHooks:
    """Numbers every call made through ``clients`` and acts at one of them.

    * ``names`` lists the operations called so far (since the last ``reset``/``arm``);
    * ``arm(point)``: crash at that point. After the crash the process is dead: every
      later call through these clients raises ``Crash`` before it is sent, and every
      response still in flight is lost (its after-call raises too), until ``revive``.
    * ``on_call(n, action)``: run ``action()`` just before call ``n`` is sent.

    Thread-safe: the code under test makes some of its calls from worker threads.
    """

    def __init__(self, clients: Iterable[Any]) -> None:
        self._lock = threading.Lock()
        self.names: list[str] = []
        self.point: Point | None = None
        self.dead = False
        self.fired: str | None = None
        """What the armed crash hit (``"before PutItem #2"``), once it fired."""
        self._actions: dict[int, Callable[[], None]] = {}
        for client in clients:
            service = service_of(client)
            client.meta.events.register(f"before-call.{service}.*", self._before)
            client.meta.events.register(f"after-call.{service}.*", self._after)

    # -- control -------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.names = []
            self.point = None
            self.dead = False
            self.fired = None
            self._actions = {}

    def arm(self, point: Point) -> None:
        self.reset()
        with self._lock:
            self.point = point

    def revive(self) -> None:
        """A new invocation (a handler's retry): the calls go through again."""
        with self._lock:
            self.dead = False

    def on_call(self, n: int, action: Callable[[], None]) -> None:
        with self._lock:
            self._actions[n] = action

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.names)

    # -- botocore events -------------------------------------------------------------

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        with self._lock:
            if self.dead:
                raise Crash(f"dead process: {model.name} not sent")
            n = len(self.names)
            self.names.append(model.name)
            context[_INDEX] = n
            action = self._actions.pop(n, None)
            crash = self.point is not None and self.point == Point(n, "before")
            if crash:
                self.dead = True
                self.fired = f"before {model.name} #{n}"
        if crash:
            raise Crash(f"crashed before {model.name} (call {n}) was sent")
        if action is not None:
            action()  # outside the lock: it may make calls of its own elsewhere

    def _after(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        with self._lock:
            n = context.get(_INDEX)
            if self.dead:
                raise Crash(f"dead process: the response to {model.name} was lost")
            if self.point is not None and self.point == Point(n, "after"):  # type: ignore[arg-type]
                self.dead = True
                self.fired = f"after {model.name} #{n}"
                raise Crash(f"crashed after {model.name} (call {n}) was answered")
