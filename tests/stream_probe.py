"""A Lambda handler module for the stream runner's tests (not the real projector).

Shared by both tiers: the consumer's unit tests (fake streams) and the runner's
integration tests (real streams) run the same probe.

The runner imports it by its dotted Handler path and calls ``make_handler(env)`` once;
``env["PROBE_ID"]`` names the :class:`Probe` (registered by the test) that records every
invocation and decides the answer.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

HANDLER = "tests.stream_probe.handler"

Behaviour = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class Invocation:
    event: dict[str, Any]
    context: Any
    raised: bool
    response: Any

    @property
    def keys(self) -> list[str]:
        return [r["dynamodb"]["Keys"]["PK"]["S"] for r in self.event["Records"]]

    @property
    def sequence_numbers(self) -> list[str]:
        return [r["dynamodb"]["SequenceNumber"] for r in self.event["Records"]]

    @property
    def acknowledged(self) -> list[str]:
        """Keys the runner may checkpoint after this invocation (as Lambda reads it)."""
        if self.raised:
            return []
        failures = (self.response or {}).get("batchItemFailures") or []
        if not failures:
            return self.keys
        seqs = self.sequence_numbers
        lowest = min(seqs.index(f["itemIdentifier"]) for f in failures)
        return self.keys[:lowest]


class Probe:
    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        self.cond = threading.Condition()
        self.envs: list[dict[str, str]] = []
        self.invocations: list[Invocation] = []
        self.started = 0
        """Invocations begun (including any still running)."""
        self.behaviour: Behaviour | None = None

    def wait_for(self, predicate: Callable[[Probe], bool], timeout: float = 15.0) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(
                    f"probe condition not met in {timeout} s; invocations: "
                    f"{[i.keys for i in self.invocations]}"
                )

    @property
    def batches(self) -> list[list[str]]:
        with self.cond:
            return [i.keys for i in self.invocations]

    @property
    def acknowledged(self) -> list[str]:
        with self.cond:
            return [k for i in self.invocations for k in i.acknowledged]


PROBES: dict[str, Probe] = {}


def new_probe() -> Probe:
    probe = Probe()
    PROBES[probe.id] = probe
    return probe


def make_handler(env: Mapping[str, str]) -> Behaviour:
    probe = PROBES[env["PROBE_ID"]]
    with probe.cond:
        probe.envs.append(dict(env))

    def handle(event: dict[str, Any], context: Any) -> Any:
        seen = copy.deepcopy(event)
        with probe.cond:
            probe.started += 1
            probe.cond.notify_all()
        raised, response = True, None
        try:
            response = probe.behaviour(event, context) if probe.behaviour else None
            raised = False
            return response
        finally:
            with probe.cond:
                probe.invocations.append(Invocation(seen, context, raised, response))
                probe.cond.notify_all()

    return handle


def handler(event: dict[str, Any], context: Any) -> Any:  # pragma: no cover - make_handler wins
    raise AssertionError("the runner must call make_handler(env), not handler")
