"""Issue 11, proof 1: a crash at every AWS call of ``put``, ``put_writes``,
``delete_thread`` and of both stream handlers, followed by ``checkpoint-journal verify``:
no false alarms, nothing acknowledged lost (I1, I2, I2b, I5, I6).

Faults go into the real HTTP calls through botocore's events (``tests/integration/
faults.py``): before a call is sent (it never happened) or after its response (it
happened, its caller never learns it: an unacknowledged write). Each operation's calls
are counted first, then for every call and both timings:

* the operation crashes there (``Crash`` is a BaseException, so no code path swallows
  it, and the dead process sends nothing more);
* a fresh saver (nothing in memory) does what a restarted agent would: retries the same
  ``put`` / ``put_writes`` with identical arguments (which must succeed, not raise
  ConflictError), or runs ``delete_thread`` again;
* the stream consumers drain, ``verify --thread T --json`` reports ``ok`` or ``pending``
  with no problems (``Verifier``: the command itself on each test's last point, the
  function it runs on the others), every acknowledged write reads back exactly, a
  deleted thread reads as empty and its offloaded values are gone.

Every point is tried even when an earlier one fails; a test's failure lists them all.

For the handlers, the local stream runner calls an instrumented copy of the real
handler (``set_handler_wrapper``) whose clients carry the hooks; a crash fails the
invocation, which the runner retries (bisecting) as Lambda would.

Each backend gets a deployment of its own (module scope), so that ``verify``, which
reads every archive file, reads only this module's.
"""

from __future__ import annotations

import contextlib
import copy
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

import pytest
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from checkpoint_journal import JournalSaver
from checkpoint_journal._core import blobs as _blobs
from checkpoint_journal._core.archive import PREFIX as ARCHIVE_PREFIX
from checkpoint_journal._core.chain import Hasher
from checkpoint_journal._core.items import MIN_ITEM_BYTES
from checkpoint_journal.cli import verify as verify_command
from checkpoint_journal.cli.verify_table import EXIT_STATUS
from checkpoint_journal.errors import JournalError
from checkpoint_journal.local import LocalDeployment
from checkpoint_journal.stream_handlers import archiver as archiver_module
from checkpoint_journal.stream_handlers import projector as projector_module
from tests.integration import cli_runner
from tests.integration.faults import CallHooks, Crash, Point, points

BACKENDS = ["moto", "dynamodb-local"]
# The smallest item budget the saver accepts: a 100 KB record then needs two chunks and
# a commit item, so a put has three calls to crash at (I2's write order), one of them
# between the chunks.
ITEM_BYTES = MIN_ITEM_BYTES
# Random bytes do not compress: this many make two chunks at ITEM_BYTES.
CHUNKED_BYTES = 100_000
# Over the projector's 32 KiB inline limit (template.yaml's ViewInlineLimitBytes) and
# under one item: the value goes to S3, so the projector's S3 calls are crash points too.
OFFLOADED_BYTES = 40_000


# -- deployments ---------------------------------------------------------------------------


class _Deployments:
    """This module's deployments, one per backend, started on first use."""

    def __init__(self) -> None:
        self.running: dict[str, LocalDeployment] = {}

    def get(self, backend: str) -> LocalDeployment:
        if backend not in self.running:
            self.running[backend] = LocalDeployment(backend=backend).start()  # type: ignore[arg-type]
        return self.running[backend]


@pytest.fixture(scope="module")
def deployments() -> Iterator[_Deployments]:
    registry = _Deployments()
    yield registry
    for dep in registry.running.values():
        dep.stop()


@pytest.fixture(params=BACKENDS)
def dep(request: pytest.FixtureRequest, deployments: _Deployments) -> LocalDeployment:
    return deployments.get(request.param)


@pytest.fixture
def moto(deployments: _Deployments) -> LocalDeployment:
    return deployments.get("moto")


def archive_aside(dep: LocalDeployment) -> None:
    """Take the archive files of the crash points already verified out of the archive
    (delete markers: the bucket is versioned). ``verify`` reads every archive file, so
    that each point's verify reads only the files of its own thread, instead of every
    earlier point's too (quadratic time). Only files written before the call go: those
    cannot hold a record of a thread the caller creates after it."""
    s3 = dep.client("s3")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=dep.bucket, Prefix=ARCHIVE_PREFIX) for o in page.get("Contents", [])]
    for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys at most
        s3.delete_objects(Bucket=dep.bucket, Delete={
            "Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True})


# -- verify and reads ------------------------------------------------------------------------


@dataclass
class Verifier:
    """``checkpoint-journal verify --thread T --json``, and the same check without the
    command line around it.

    ``command`` runs the command (``cli_runner``). ``report`` calls the function the
    command runs (``cli.verify.verify``), with what the command passes it: no chain key,
    the thread, the deployment's bucket for the archive and for the offloaded values. It
    skips only the command's connect and rendering, whose botocore client creation costs
    0.2 to 1 s a run on a small machine (the JSON service models are parsed afresh by
    every new session): over some ninety crash points, the difference between about a
    minute and two. Each test runs the command itself on its last point.
    """

    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    clients: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def command(self, dep: LocalDeployment, thread: str, where: str) -> None:
        r = cli_runner.run_cli(dep, self.monkeypatch, self.capsys,
                               ["verify", "--thread", thread, "--json"], unset=[
                                   "CHECKPOINT_JOURNAL_CHAIN_KEY_FILE",
                                   "CHECKPOINT_JOURNAL_CHAIN_KEY_SECRET"])
        doc = r.json() if r.out.startswith("{") else {}
        assert r.code in (0, 5), f"{where}: verify exited {r.code}\n{r.out}{r.err}"
        self._no_alarm(doc, where)

    def report(self, dep: LocalDeployment, thread: str, where: str) -> None:
        if dep.backend not in self.clients:
            self.clients[dep.backend] = (dep.client("dynamodb"), dep.client("s3"))
        ddb, s3 = self.clients[dep.backend]
        found = verify_command.verify(ddb, dep.table_name, hasher=Hasher(None), thread_id=thread,
                                      s3=s3, bucket=dep.bucket, blob_bucket=dep.bucket)
        assert EXIT_STATUS[found.outcome] in (0, 5), where
        self._no_alarm({**found.doc(), "archive_checked": True}, where)

    @staticmethod
    def _no_alarm(doc: dict[str, Any], where: str) -> None:
        assert doc.get("outcome") in ("ok", "pending") and doc.get("problems") == [], (
            f"{where}: verify raised an alarm after a crash: {doc.get('problems')}")


@pytest.fixture
def verify(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Verifier:
    return Verifier(monkeypatch, capsys)


def new_checkpoint(values: dict[str, Any], versions: dict[str, str]) -> Checkpoint:
    cp = empty_checkpoint()
    cp["id"] = str(uuid6())
    cp["channel_values"] = dict(values)
    cp["channel_versions"] = dict(versions)
    return cp


def config(thread: str, ns: str = "", checkpoint_id: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id:
        c["checkpoint_id"] = checkpoint_id
    return {"configurable": c}


@dataclass
class Written:
    """A checkpoint whose put was acknowledged, and what reading it must give."""

    ns: str
    checkpoint: Checkpoint
    metadata: dict[str, Any]
    parent_id: str | None
    writes: list[tuple[str, str, Any]] = field(default_factory=list)
    """(task, channel, value) of its acknowledged pending writes, in LangGraph's order."""


@dataclass
class Acknowledged:
    """Everything acknowledged on one thread (what must survive any crash)."""

    thread: str
    checkpoints: dict[str, Written] = field(default_factory=dict)

    def put(self, saver: JournalSaver, ns: str, values: dict[str, Any],
            new: dict[str, Any], parent: str | None, step: int) -> str:
        """Put a checkpoint holding ``values`` (``new`` changed), child of ``parent``."""
        versions = self._versions(parent, new)
        cp = new_checkpoint(values, versions)
        md = {"source": "loop", "step": step, "writes": None, "parents": {}}
        saver.put(config(self.thread, ns, parent), cp, md,
                  {ch: versions[ch] for ch in new})
        self.checkpoints[cp["id"]] = Written(ns, copy.deepcopy(cp), md, parent)
        return str(cp["id"])

    def _versions(self, parent: str | None, new: dict[str, Any]) -> dict[str, str]:
        versions = dict(self.checkpoints[parent].checkpoint["channel_versions"]) if parent else {}
        for ch in new:
            n = int(versions[ch].split(".")[0]) + 1 if ch in versions else 1
            versions[ch] = f"{n:032}.{0.5:016}"
        return versions

    def check(self, reader: JournalSaver, where: str) -> None:
        """Every acknowledged checkpoint reads back exactly, by id and in ``list``."""
        for cid, w in self.checkpoints.items():
            got = reader.get_tuple(config(self.thread, w.ns, cid))
            assert got is not None, f"{where}: acknowledged checkpoint {cid} is lost"
            assert got.checkpoint["channel_values"] == w.checkpoint["channel_values"], where
            assert got.checkpoint["channel_versions"] == w.checkpoint["channel_versions"], where
            assert got.metadata == w.metadata, where
            assert (got.parent_config or {}).get("configurable", {}).get(
                "checkpoint_id") == w.parent_id, where
            assert sorted(got.pending_writes, key=repr) == sorted(w.writes, key=repr), (
                f"{where}: pending writes of {cid}")
        listed = [t.config["configurable"]["checkpoint_id"]
                  for t in reader.list({"configurable": {"thread_id": self.thread}})]
        assert sorted(listed) == sorted(self.checkpoints), f"{where}: list shows {listed}"


def assert_deleted(dep: LocalDeployment, reader: JournalSaver, thread: str, namespaces: list[str],
                   where: str) -> None:
    """The thread reads as empty, and its offloaded values are gone from S3 (I6)."""
    for ns in namespaces:
        assert reader.get_tuple(config(thread, ns)) is None, f"{where}: {ns!r} still reads"
    assert list(reader.list({"configurable": {"thread_id": thread}})) == [], where
    left = dep.client("s3").list_objects_v2(Bucket=dep.bucket,
                                            Prefix=_blobs.thread_prefix(thread))
    assert left.get("KeyCount", 0) == 0, f"{where}: blobs left: {left.get('Contents')}"


class Failures:
    """Every crash point is tried even when an earlier one failed: the report lists them
    all (each point works on a thread of its own, so one failure cannot cause another)."""

    def __init__(self) -> None:
        self.found: list[str] = []

    @contextlib.contextmanager
    def collect(self, where: str) -> Iterator[None]:
        try:
            yield
        # An assertion, a drain that timed out, or the saver refusing (a read raising).
        except (AssertionError, TimeoutError, JournalError) as e:
            text = str(e).splitlines()[0] if str(e) else ""
            if not isinstance(e, AssertionError):
                text = f"{type(e).__name__}: {text}"
            self.found.append(text if text.startswith(where) else f"{where}: {text}")

    def check(self, tried: int) -> None:
        assert not self.found, (f"{len(self.found)} of {tried} crash points failed:\n"
                                + "\n".join(self.found))


# -- the saver's operations ------------------------------------------------------------------


@dataclass
class Case:
    """One saver operation under test: ``setup`` writes what is acknowledged before it
    (returning the thread), ``operation`` is what crashes, ``restart`` what a restarted
    agent does with a fresh saver, ``check`` what must hold afterwards."""

    setup: Callable[[LocalDeployment, JournalSaver], Any]
    operation: Callable[[JournalSaver, Any], None]
    restart: Callable[[JournalSaver, Any], None]
    check: Callable[[LocalDeployment, JournalSaver, Any, str], None]
    thread: Callable[[Any], str]
    ttl_seconds: int | None = None
    """Of every saver of the case (the crashed one, the restarted one, the reader)."""


def _put_case(ttl_seconds: int | None = None) -> Case:
    """A chunked put (two chunks, then the commit item) after an acknowledged put and
    put_writes; the restarted agent retries it with identical arguments."""

    def setup(dep: LocalDeployment, saver: JournalSaver) -> Any:
        ack = Acknowledged(f"crash-put-{uuid.uuid4().hex[:8]}")
        first = ack.put(saver, "", {"a": "hello", "b": [1, 2]}, {"a": 1, "b": 1}, None, 0)
        saver.put_writes(config(ack.thread, "", first), [("a", "pending")], "task-1")
        ack.checkpoints[first].writes = [("task-1", "a", "pending")]
        parent = ack.checkpoints[first]
        big = os.urandom(CHUNKED_BYTES)
        versions = ack._versions(first, {"big": 1})
        cp = new_checkpoint({**parent.checkpoint["channel_values"], "big": big}, versions)
        md = {"source": "loop", "step": 1, "writes": {"reply": "big"}, "parents": {}}
        args = (config(ack.thread, "", first), cp, md, {"big": versions["big"]})
        return ack, first, args

    def operation(saver: JournalSaver, state: Any) -> None:
        _, _, args = state
        saver.put(*copy.deepcopy(args))

    def restart(saver: JournalSaver, state: Any) -> None:
        ack, first, args = state
        # The same put again: I1's "an identical existing item is a retried append".
        returned = saver.put(*copy.deepcopy(args))
        cp = args[1]
        assert returned["configurable"]["checkpoint_id"] == cp["id"]
        ack.checkpoints[cp["id"]] = Written("", copy.deepcopy(cp), args[2], first)

    def check(dep: LocalDeployment, reader: JournalSaver, state: Any, where: str) -> None:
        state[0].check(reader, where)

    return Case(setup, operation, restart, check, lambda state: state[0].thread, ttl_seconds)


def _put_writes_case() -> Case:
    """A chunked put_writes (a large write: two chunks and the commit item) on an
    acknowledged checkpoint; the restarted agent runs the task again, which writes the
    same writes again (LangGraph's first-write-wins fold keeps one of each)."""

    def setup(dep: LocalDeployment, saver: JournalSaver) -> Any:
        ack = Acknowledged(f"crash-writes-{uuid.uuid4().hex[:8]}")
        first = ack.put(saver, "", {"a": "hello"}, {"a": 1}, None, 0)
        writes = [("a", "small"), ("big", os.urandom(CHUNKED_BYTES))]
        return ack, first, writes

    def operation(saver: JournalSaver, state: Any) -> None:
        ack, first, writes = state
        saver.put_writes(config(ack.thread, "", first), writes, "task-1")

    def restart(saver: JournalSaver, state: Any) -> None:
        ack, first, writes = state
        saver.put_writes(config(ack.thread, "", first), writes, "task-1")
        ack.checkpoints[first].writes = [("task-1", ch, v) for ch, v in writes]

    def check(dep: LocalDeployment, reader: JournalSaver, state: Any, where: str) -> None:
        state[0].check(reader, where)

    return Case(setup, operation, restart, check, lambda state: state[0].thread)


def _delete_case() -> Case:
    """delete_thread of a projected and archived thread with two namespaces, views,
    index entries, heads and an offloaded value; the restarted agent deletes again."""
    namespaces = ["", "child:1"]

    def setup(dep: LocalDeployment, saver: JournalSaver) -> Any:
        ack = Acknowledged(f"crash-delete-{uuid.uuid4().hex[:8]}")
        first = ack.put(saver, "", {"a": "hello"}, {"a": 1}, None, 0)
        saver.put_writes(config(ack.thread, "", first), [("a", "w")], "task-1")
        second = ack.put(saver, "", {"a": "hello", "big": os.urandom(OFFLOADED_BYTES)},
                         {"big": 1}, first, 1)
        ack.put(saver, "", {"a": "again", "big": ack.checkpoints[second].checkpoint[
            "channel_values"]["big"]}, {"a": 1}, second, 2)
        sub = ack.put(saver, "child:1", {"n": 1}, {"n": 1}, None, 0)
        ack.put(saver, "child:1", {"n": 2}, {"n": 2}, sub, 1)
        dep.drain(timeout=30)  # views, index entries, heads, the S3 blob, the archive
        return ack

    def operation(saver: JournalSaver, ack: Any) -> None:
        saver.delete_thread(ack.thread)

    def restart(saver: JournalSaver, ack: Any) -> None:
        saver.delete_thread(ack.thread)

    def check(dep: LocalDeployment, reader: JournalSaver, ack: Any, where: str) -> None:
        assert_deleted(dep, reader, ack.thread, namespaces, where)

    return Case(setup, operation, restart, check, lambda ack: ack.thread)


CASES = {
    "put": _put_case,
    # With a TTL, a put writes again (re-carries) the values its parent's origins do
    # not vouch for: what the saver plans depends on what it remembers.
    "put-ttl": lambda: _put_case(ttl_seconds=3600),
    "put_writes": _put_writes_case,
    "delete_thread": _delete_case,
}


def _saver(dep: LocalDeployment, session: Any, ttl_seconds: int | None = None) -> JournalSaver:
    # One boto3 session for the module's savers: a new session re-reads botocore's
    # service models (~0.1 s a client). Hooks go on each client, never on the session.
    return dep.saver(boto3_session=session, max_item_bytes=ITEM_BYTES, ttl_seconds=ttl_seconds)


@pytest.mark.parametrize("operation", list(CASES))
def test_crash_at_every_call_of_a_saver_operation(dep: LocalDeployment, verify: Verifier,
                                                  operation: str) -> None:
    case = CASES[operation]()
    session = dep.session()

    # How many calls the operation makes, on a thread of its own.
    with _saver(dep, session, case.ttl_seconds) as saver:
        hooks = CallHooks([saver._ddb, saver._s3])
        state = case.setup(dep, saver)
        hooks.reset()
        case.operation(saver, state)
        calls = list(hooks.names)
    assert calls, f"{operation} made no call"

    failures = Failures()
    every = points(len(calls))
    for point in every:
        where = f"{operation} [{dep.backend}] crashed {point} ({calls[point.n]})"
        with failures.collect(where):
            archive_aside(dep)
            with _saver(dep, session, case.ttl_seconds) as saver:
                hooks = CallHooks([saver._ddb, saver._s3])
                state = case.setup(dep, saver)
                hooks.arm(point)
                with pytest.raises(Crash):
                    case.operation(saver, state)
                assert hooks.fired is not None, "the crash did not fire"
            with _saver(dep, session, case.ttl_seconds) as restarted:  # nothing in memory
                try:
                    case.restart(restarted, state)
                except Exception as e:
                    raise AssertionError(f"the restarted agent's retry raised {e!r}") from e
            dep.drain(timeout=30)
            (verify.command if point == every[-1] else verify.report)(
                dep, case.thread(state), where)
            with _saver(dep, session, case.ttl_seconds) as reader:
                case.check(dep, reader, state, where)
    failures.check(len(calls) * 2)


# -- the stream handlers -----------------------------------------------------------------------


class Instrumented:
    """A stream function's real handler, built with clients that carry the hooks, and
    installed in the local runner in place of the one it loaded. A crash (the process
    dying mid-invocation) reaches the runner as the invocation's error, as Lambda reports
    a function that died; the runner then retries the batch."""

    def __init__(self, dep: LocalDeployment, function: str) -> None:
        source = next(s for s in dep.stream_sources if s.function == function)
        # What the runner gives the real handler: the function's environment, then the
        # deployment's endpoints.
        env = {**source.environment, **dep.aws_env()}
        if function == "ProjectorFunction":
            projector = projector_module.make_projector(env)
            self.hooks = CallHooks([projector.ddb, projector.s3])
            self.handler = projector_module.make_handler(env, projector=projector)
        else:
            archiver = archiver_module.make_archiver(env)
            self.hooks = CallHooks([archiver.keys.client, archiver.s3])  # type: ignore[attr-defined]
            self.handler = archiver_module.make_handler(env, archiver=archiver)
        self.dep, self.function = dep, function
        self.invocations = 0

    def wrap(self, real: Any) -> Any:
        def handler(event: dict[str, Any], context: Any) -> Any:
            self.invocations += 1
            self.hooks.revive()  # a new invocation: a fresh process
            try:
                return self.handler(event, context)
            except Crash as e:
                raise RuntimeError(f"the function's process died: {e}") from e

        return handler

    def __enter__(self) -> Self:
        self.dep.drain(timeout=30)  # nothing of earlier tests goes through it
        self.dep.runner.set_handler_wrapper(self.function, self.wrap)
        return self

    def __exit__(self, *exc: object) -> None:
        self.dep.runner.set_handler_wrapper(self.function, None)


def _writes_workload(dep: LocalDeployment, saver: JournalSaver, thread: str) -> Acknowledged:
    """Three journal events of one namespace: the projector folds them into views, index
    entries, a head and one S3 object; the archiver archives them under a new key."""
    ack = Acknowledged(thread)
    first = ack.put(saver, "", {"a": "hello"}, {"a": 1}, None, 0)
    saver.put_writes(config(thread, "", first), [("a", "w")], "task-1")
    ack.checkpoints[first].writes = [("task-1", "a", "w")]
    ack.put(saver, "", {"a": "hello", "big": os.urandom(OFFLOADED_BYTES)}, {"big": 1}, first, 1)
    return ack


# The handlers run against the moto backend only. What a crash does to a handler is the
# same on both: the invocation fails, our runner (not the backend) retries the batch, and
# the handler redoes its work from the table, a stream record being only a doorbell to
# the projector and copied as it is by the archiver. The requests they redo it with
# (consistent reads, conditional and batch writes) are the ones whose semantics differ
# between the backends, and those the saver's crash points above exercise on both.
@pytest.mark.parametrize("phase", ["writes", "delete"])
@pytest.mark.parametrize("function", ["ProjectorFunction", "ArchiverFunction"])
def test_crash_at_every_call_of_a_handler(moto: LocalDeployment, verify: Verifier,
                                          function: str, phase: str) -> None:
    dep = moto
    session = dep.session()

    def run(fn: Instrumented, point: Point | None) -> tuple[str, Acknowledged | None]:
        thread = f"crash-{function[:4].lower()}-{phase}-{uuid.uuid4().hex[:8]}"
        archive_aside(dep)
        arm = fn.hooks.reset if point is None else (lambda: fn.hooks.arm(point))
        with _saver(dep, session) as saver:
            if phase == "writes":
                arm()
                ack = _writes_workload(dep, saver, thread)
            else:
                ack = _writes_workload(dep, saver, thread)
                dep.drain(timeout=30)  # projected and archived, then deleted
                arm()
                saver.delete_thread(thread)
        dep.drain(timeout=60)
        return thread, (ack if phase == "writes" else None)

    with Instrumented(dep, function) as fn:
        run(fn, None)
        calls = list(fn.hooks.names)
        assert calls, f"{function} made no call for {phase}"
        failures = Failures()
        every = points(len(calls))
        for point in every:
            where = f"{function} ({phase}) crashed {point} ({calls[point.n]})"
            with failures.collect(where):
                before = fn.invocations
                thread, ack = run(fn, point)
                assert fn.hooks.fired is not None, f"the crash did not fire ({fn.hooks.names})"
                assert fn.invocations > before + 1, "the batch was not retried"
                (verify.command if point == every[-1] else verify.report)(dep, thread, where)
                with _saver(dep, session) as reader:
                    if ack is not None:
                        ack.check(reader, where)
                    else:
                        assert_deleted(dep, reader, thread, [""], where)
        failures.check(len(calls) * 2)
        # Every retry succeeded: nothing was given up on.
        assert dep.failure_messages(function) == []
