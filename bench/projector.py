"""The real projector, with its own requests counted and its invocations timed.

The projector builds its boto3 clients from the function's environment
(``projector.make_projector(env)``), so a counter cannot be attached to a session
beforehand. :class:`ProjectorProbe` builds the Projector the way the stream runner's
``make_handler(env)`` would, with the same environment, hooks a :class:`RequestCounter`
on the clients it holds (``attach_client``), and passes it to
``make_handler(env, projector)``: the handler that runs is the real one, on the real
clients, only observed. The runner then calls it in place of its own copy
(``StreamRunner.set_handler_wrapper``). :meth:`ProjectorProbe.projector` gives the same
counted Projector for calling the projector's logic directly (a one-shot projection of
a whole thread).

The counter adds the simulated round trip to each of the projector's requests too;
the time the handler spends is kept apart (phase ``"projector"``): it runs in the
stream runner's thread, asynchronously to the agent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from bench.counting import PhaseStats, RequestCounter
from checkpoint_journal.local import Handler, HandlerWrapper, LocalDeployment
from checkpoint_journal.stream_handlers import projector as projector_module
from checkpoint_journal.stream_handlers._projector import Projector

__all__ = ["FUNCTION", "PHASE", "ProjectorProbe"]

#: The projector's logical id in template.yaml.
FUNCTION = "ProjectorFunction"
#: The counter phase the projector's requests and busy time go to.
PHASE = "projector"


def function_env(dep: LocalDeployment) -> dict[str, str]:
    """The environment the stream runner gives the projector: the function's resolved
    ``Environment.Variables`` from template.yaml, then the deployment's endpoints."""
    sources = [s for s in dep.stream_sources if s.function == FUNCTION]
    if not sources:
        raise RuntimeError(f"template.yaml declares no DynamoDB stream event for {FUNCTION}")
    return {**sources[0].environment, **dep.aws_env()}


class ProjectorProbe:
    """Counts the projector's requests and times its invocations (thread-safe)."""

    def __init__(self, rtt_s: float) -> None:
        self.counter = RequestCounter(rtt_s)
        self.counter.phases[PHASE] = PhaseStats()
        self.invocations = 0
        self.records = 0
        """Stream records in the events the handler was called with."""
        self.durations: list[float] = []
        """Seconds per invocation, in call order."""
        self._lock = threading.Lock()

    @property
    def stats(self) -> PhaseStats:
        """Requests, bytes and busy time (``wall_s``: the sum of handler durations)."""
        return self.counter.stats(PHASE)

    def _counted(self, env: Mapping[str, str]) -> Projector:
        projector = projector_module.make_projector(env)
        self.counter.attach_client(projector.ddb)
        if projector.s3 is not None:
            self.counter.attach_client(projector.s3)
        return projector

    def handler(self, env: Mapping[str, str]) -> Handler:
        """The real Lambda handler for ``env``, counted and timed."""
        real = projector_module.make_handler(env, self._counted(env))

        def handle(event: dict[str, Any], context: Any) -> Any:
            # One consumer thread per mapping calls this, one batch at a time, so the
            # counter's current phase is this invocation's.
            start = time.perf_counter()
            with self.counter.phase(PHASE):
                response = real(event, context)
            with self._lock:
                self.durations.append(time.perf_counter() - start)
                self.invocations += 1
                self.records += len(event.get("Records") or [])
            return response

        return handle

    def wrapper(self, dep: LocalDeployment) -> HandlerWrapper:
        """For ``dep.runner.set_handler_wrapper(FUNCTION, ...)``: replaces the runner's
        copy of the handler by a counted one built from the same environment."""
        env = function_env(dep)

        def wrap(_runner_copy: Handler) -> Handler:
            return self.handler(env)

        return wrap

    def install(self, dep: LocalDeployment) -> None:
        """Make ``dep``'s stream runner call the counted handler from now on."""
        dep.runner.set_handler_wrapper(FUNCTION, self.wrapper(dep))

    def projector(self, dep: LocalDeployment) -> Projector:
        """The projector's logic configured as the function is, on counted clients
        (requests go to the counter's current phase: use ``counter.phase``)."""
        return self._counted(function_env(dep))
