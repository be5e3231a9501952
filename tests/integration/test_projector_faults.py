"""I3, I4, I5 and I6 under faults: a hypothesis state machine.

It drives ``put`` / ``put_writes`` / ``delete_thread`` / ``prune`` on JournalSaver and on
LangGraph's InMemorySaver side by side, while delivering the stream's doorbells to the
real projector with duplicates, reordering, partial (bisected) batches, and crashes
injected between any two of the projector's writes (DynamoDB or S3). After every step,
every read equals the reference; once everything is delivered, the view equals what
``rebuild`` produces from the journal alone.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)
from langgraph.checkpoint.base import CheckpointTuple, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver

from checkpoint_journal import JournalSaver
from checkpoint_journal.local import LocalDeployment
from checkpoint_journal.stream_handlers._projector import Doorbell, Projector
from tests.integration.test_projector import projector_items

THREADS = ["alpha", "b#eta"]
NAMESPACES = ["", "child:1"]
CHANNELS = ["a", "b", "big"]
# Values the projector keeps in S3 (random hex: ~35 KB as stored, over the 32 KiB limit),
# drawn as short tokens so that hypothesis's step reports stay readable.
BIG = [os.urandom(35_000).hex() for _ in range(3)]
TOKENS = [f"<big{i}>" for i in range(len(BIG))]


def value(token: str) -> str:
    return BIG[TOKENS.index(token)] if token in TOKENS else token

FAULTS = {"injected": 0, "cases": 0, "deliveries": 0}


class Crash(Exception):
    """The projector dies between two of its writes."""


class FaultyProjector:
    """A Projector whose clients fail on the n-th write request from now."""

    WRITES = {"PutItem", "DeleteItem", "BatchWriteItem", "PutObject", "DeleteObjects"}

    def __init__(self, dep: LocalDeployment) -> None:
        self.countdown: int | None = None
        ddb, s3 = dep.client("dynamodb"), dep.client("s3")
        for client in (ddb, s3):
            client.meta.events.register("before-call.*.*", self._maybe_crash)
        self.projector = Projector(ddb=ddb, s3=s3, table_name=dep.table_name, bucket=dep.bucket)

    def _maybe_crash(self, model: Any, **_: Any) -> None:
        if model.name not in self.WRITES or self.countdown is None:
            return
        if self.countdown == 0:
            self.countdown = None
            FAULTS["injected"] += 1
            raise Crash(f"injected crash before {model.name}")
        self.countdown -= 1


def _tuple_view(t: CheckpointTuple | None) -> Any:
    if t is None:
        return None
    cp = dict(t.checkpoint)
    return (t.config, cp, t.metadata, t.parent_config, sorted(t.pending_writes))


class JournalVersusMemory(RuleBasedStateMachine):
    dep: LocalDeployment

    checkpoints = Bundle("checkpoints")

    def __init__(self) -> None:
        super().__init__()
        FAULTS["cases"] += 1
        self.run = uuid.uuid4().hex[:8]
        self.saver: JournalSaver = self.dep.saver()
        self.ref = InMemorySaver()
        self.faulty = FaultyProjector(self.dep)
        self.pending: list[Doorbell] = []
        self.latest: dict[tuple[str, str], dict[str, Any]] = {}

    def teardown(self) -> None:
        self.saver.close()
        self.faulty.projector.close()

    def thread(self, name: str) -> str:
        return f"{name}-{self.run}"

    # -- writes on both savers ------------------------------------------------------------

    @rule(target=checkpoints, thread=st.sampled_from(THREADS), ns=st.sampled_from(NAMESPACES),
          changes=st.dictionaries(st.sampled_from(CHANNELS),
                                  st.one_of(st.text(max_size=8), st.sampled_from(TOKENS)),
                                  min_size=0, max_size=3),
          fork=st.booleans())
    def put(self, thread: str, ns: str, changes: dict[str, str], fork: bool) -> tuple[str, str, str]:
        tid = self.thread(thread)
        parent_cfg: dict[str, Any] = {"configurable": {"thread_id": tid, "checkpoint_ns": ns}}
        prev = self.ref.get_tuple(parent_cfg)
        if prev is not None and fork:
            history = list(self.ref.list(parent_cfg))
            prev = history[len(history) // 2]
        checkpoint = empty_checkpoint() if prev is None else dict(prev.checkpoint)  # type: ignore[assignment]
        checkpoint = {**checkpoint, "id": str(uuid6()),
                      "channel_values": dict(checkpoint.get("channel_values", {})),
                      "channel_versions": dict(checkpoint.get("channel_versions", {}))}
        new_versions: dict[str, Any] = {}
        for ch, token in changes.items():
            version = self.saver.get_next_version(checkpoint["channel_versions"].get(ch), None)
            checkpoint["channel_values"][ch] = value(token)
            checkpoint["channel_versions"][ch] = version
            new_versions[ch] = version
        if prev is not None:
            parent_cfg = prev.config
        metadata = {"source": "loop", "step": len(changes), "run_id": f"run-{self.run}"}
        for saver in (self.saver, self.ref):
            saver.put(parent_cfg, checkpoint, metadata, new_versions)  # type: ignore[arg-type]
        self.pending.append(Doorbell(tid, ns, checkpoint_id=checkpoint["id"]))
        return (tid, ns, checkpoint["id"])

    @rule(target=checkpoints, cp=checkpoints, task=st.sampled_from(["t1", "t2"]),
          writes=st.lists(st.tuples(st.sampled_from(["a", "big", "__error__", "__interrupt__"]),
                                    st.one_of(st.text(max_size=6), st.sampled_from(TOKENS))),
                          min_size=1, max_size=3))
    def put_writes(self, cp: tuple[str, str, str], task: str,
                   writes: list[tuple[str, str]]) -> tuple[str, str, str]:
        tid, ns, cid = cp
        cfg = {"configurable": {"thread_id": tid, "checkpoint_ns": ns, "checkpoint_id": cid}}
        if self.ref.get_tuple(cfg) is None:
            return cp  # deleted meanwhile: LangGraph never writes to a missing checkpoint
        for saver in (self.saver, self.ref):
            saver.put_writes(cfg, [(ch, value(token)) for ch, token in writes], task)
        self.pending.append(Doorbell(tid, ns, checkpoint_id=cid))
        return cp

    @rule(thread=st.sampled_from(THREADS))
    def delete_thread(self, thread: str) -> None:
        tid = self.thread(thread)
        self.saver.delete_thread(tid)
        self.ref.delete_thread(tid)
        self.pending.extend(Doorbell(tid, ns, tombstone=True) for ns in NAMESPACES)

    @rule(thread=st.sampled_from(THREADS))
    def prune(self, thread: str) -> None:
        tid = self.thread(thread)
        self.saver.prune([tid], strategy="keep_latest")
        for ns, cps in list(self.ref.storage.get(tid, {}).items()):
            if not cps:
                continue
            keep = max(cps)
            for cid in [c for c in cps if c != keep]:
                del cps[cid]
                self.ref.writes.pop((tid, ns, cid), None)
        self.pending.extend(Doorbell(tid, ns, removal=True) for ns in NAMESPACES)

    # -- the stream, with faults ------------------------------------------------------------

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), crash_after=st.one_of(st.none(), st.integers(0, 6)))
    def deliver(self, data: st.DataObject, crash_after: int | None) -> None:
        """A batch: some of the pending doorbells, maybe repeated, in any order; the
        handler may crash between two writes (then the batch stays pending: retried)."""
        picked = data.draw(st.lists(st.sampled_from(self.pending), min_size=1,
                                    max_size=len(self.pending) + 2))
        self.faulty.countdown = crash_after
        FAULTS["deliveries"] += 1
        try:
            for bell in picked:
                self.faulty.projector.project(bell)
        except Crash:
            return
        finally:
            self.faulty.countdown = None
        self.pending = [b for b in self.pending if b not in picked]

    @precondition(lambda self: len(self.pending) > 1)
    @rule(crash_after=st.one_of(st.none(), st.integers(0, 4)))
    def deliver_first_half(self, crash_after: int | None) -> None:
        """A bisected batch: the older half of what is pending, in stream order."""
        half = self.pending[: len(self.pending) // 2]
        self.faulty.countdown = crash_after
        FAULTS["deliveries"] += 1
        try:
            self.faulty.projector.project_all(half)
        except Crash:
            return
        finally:
            self.faulty.countdown = None
        self.pending = [b for b in self.pending if b not in half]

    # -- what must hold -------------------------------------------------------------------------

    @invariant()
    def reads_equal_the_reference(self) -> None:
        for thread in THREADS:
            tid = self.thread(thread)
            for ns in NAMESPACES:
                cfg = {"configurable": {"thread_id": tid, "checkpoint_ns": ns}}
                assert _tuple_view(self.saver.get_tuple(cfg)) == _tuple_view(self.ref.get_tuple(cfg))
                ours = [_tuple_view(t) for t in self.saver.list(cfg)]
                theirs = [_tuple_view(t) for t in self.ref.list(cfg)]
                assert ours == theirs

    @invariant()
    def drained_view_equals_rebuild(self) -> None:
        if self.pending:
            return
        for thread in THREADS:
            tid = self.thread(thread)
            incremental = projector_items(self.dep, tid)
            self.faulty.projector.rebuild_thread(tid)
            assert projector_items(self.dep, tid) == incremental


@pytest.fixture(scope="module")
def machine_deployment(request: pytest.FixtureRequest) -> Iterator[LocalDeployment]:
    with LocalDeployment(backend=request.param, handlers=False) as dep:
        yield dep


@pytest.mark.parametrize(
    # moto's examples cost ~4 s each (its table operations slow down as it fills); 10 per
    # backend keeps the suite inside CI's 15 minutes (derandomized: the same 10 each run).
    ("machine_deployment", "examples"), [("moto", 10), ("dynamodb-local", 10)],
    indirect=["machine_deployment"],
)
def test_projector_under_faults_matches_the_reference(
    machine_deployment: LocalDeployment, examples: int
) -> None:
    JournalVersusMemory.dep = machine_deployment
    FAULTS.update(injected=0, cases=0, deliveries=0)
    test = JournalVersusMemory.TestCase
    test.settings = settings(
        max_examples=examples, stateful_step_count=25, deadline=None, derandomize=True,
        database=None, suppress_health_check=list(HealthCheck),
    )
    test().runTest()
    print(f"\nprojector faults [{machine_deployment.backend}]: {FAULTS['cases']} cases, "
          f"{FAULTS['deliveries']} deliveries, {FAULTS['injected']} crashes injected, "
          "0 records lost")
    assert FAULTS["injected"] > 0
