"""Write ownership (issue 11, defect 8): a superseded worker cannot fork a thread.

LangGraph's WRITE_OWNERSHIP contract (langgraph-checkpoint-conformance, ``ownership.py``
and ``spec/test_write_ownership.py``), clause by clause, in our own words, on both
backends; then what our design adds: the barrier, the sync twins, delete_thread as a
supersession, chunked records, transaction conflicts, a real graph through a writer,
and the unfenced saver left exactly as it was.

Reads go through the saver the writers were claimed from, never through a writer: the
contract asks only that a writer can write.
"""

from __future__ import annotations

import json
import os
import pickle
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.types import Command

from checkpoint_journal import JournalSaver, errors
from checkpoint_journal._core import aws
from checkpoint_journal._core import keys as _keys
from checkpoint_journal.local import LocalDeployment
from tests.integration.graphs import build_approval, build_chat
from tests.integration.tables import partition

MARKER = "is_stale_write_owner_error"


# -- helpers ------------------------------------------------------------------------------


def _tid(label: str) -> str:
    return f"own-{label}-{uuid.uuid4()}"


def _config(thread: str, cid: str | None = None) -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ""}
    if cid is not None:
        conf["checkpoint_id"] = cid
    return {"configurable": conf}


def _checkpoint(values: dict[str, Any] | None = None) -> Any:
    cp = empty_checkpoint()  # a fresh uuid6 id each time
    values = values or {}
    cp["channel_values"] = dict(values)
    cp["channel_versions"] = {ch: "1" for ch in values}
    return cp


async def _aput(writer: Any, thread: str, *, parent: str | None = None, step: int = 0,
                values: dict[str, Any] | None = None) -> str:
    """One checkpoint through ``writer``; its id."""
    cp = _checkpoint(values)
    stored = await writer.aput(_config(thread, parent), cp, {"source": "loop", "step": step},
                               dict(cp["channel_versions"]))
    cid: str = stored["configurable"]["checkpoint_id"]
    return cid


def _put(writer: Any, thread: str, *, parent: str | None = None, step: int = 0,
         values: dict[str, Any] | None = None) -> str:
    cp = _checkpoint(values)
    stored = writer.put(_config(thread, parent), cp, {"source": "loop", "step": step},
                        dict(cp["channel_versions"]))
    cid: str = stored["configurable"]["checkpoint_id"]
    return cid


async def _ids(saver: BaseCheckpointSaver[Any], thread: str) -> list[str]:
    return [t.checkpoint["id"] async for t in saver.alist(_config(thread))]


async def _tip(saver: BaseCheckpointSaver[Any], thread: str) -> str | None:
    tup = await saver.aget_tuple(_config(thread))
    return None if tup is None else tup.checkpoint["id"]


async def _writes(saver: BaseCheckpointSaver[Any], thread: str, cid: str) -> list[Any]:
    tup = await saver.aget_tuple(_config(thread, cid))
    return [] if tup is None else list(tup.pending_writes or [])


def _saver_items(dep: LocalDeployment, thread: str) -> list[dict[str, Any]]:
    """What the saver wrote (the session deployments project in the background)."""
    return [i for i in partition(dep, thread)
            if i["kind"]["S"] not in (_keys.KIND_VIEW, _keys.KIND_HEAD, _keys.KIND_INDEX)]


async def _refused(write: Callable[[], Any]) -> errors.StaleWriteOwnerError:
    """The refusal ``write`` raises, checked as the contract recognises one: by the
    marker on its class. The eager deadline: the write itself raises."""
    with pytest.raises(errors.StaleWriteOwnerError) as info:
        await write()
    exc = info.value
    assert getattr(type(exc), MARKER) is True and getattr(exc, MARKER) is True
    assert isinstance(exc, errors.JournalError)
    return exc


@pytest.fixture(scope="module", params=["moto", "dynamodb-local"])
def deployment(request: pytest.FixtureRequest) -> Iterator[LocalDeployment]:
    """A deployment of this module's own: moto's TransactWriteItems copies the whole
    table, so on the session's (filled by every other module) each fenced write would
    cost seconds."""
    with LocalDeployment(backend=request.param) as dep:
        yield dep


@pytest.fixture
def saver(deployment: LocalDeployment) -> Iterator[JournalSaver]:
    with deployment.saver() as s:
        yield s


# -- the contract, clause by clause --------------------------------------------------------


async def test_a_claim_returns_a_writer(saver: JournalSaver) -> None:
    writer = await saver.aclaim_write_ownership(_tid("writer"))
    assert writer is not saver
    for method in ("aput", "aput_writes", "put", "put_writes", "acheck_write_ownership",
                   "check_write_ownership"):
        assert callable(getattr(writer, method, None)), method
    # A complete checkpointer, usable as builder.compile(checkpointer=writer).
    assert isinstance(writer, JournalSaver) and isinstance(writer, BaseCheckpointSaver)
    assert not hasattr(saver, "check_write_ownership")  # the saver itself stays unfenced


async def test_the_current_owner_can_put(saver: JournalSaver) -> None:
    thread = _tid("put")
    owner = await saver.aclaim_write_ownership(thread)
    cid = await _aput(owner, thread)
    assert await _tip(saver, thread) == cid


async def test_the_current_owner_can_put_writes(saver: JournalSaver) -> None:
    thread = _tid("put-writes")
    owner = await saver.aclaim_write_ownership(thread)
    cid = await _aput(owner, thread)
    await owner.aput_writes(_config(thread, cid), [("ch", "owned")], str(uuid.uuid4()))
    assert [w[2] for w in await _writes(saver, thread, cid)] == ["owned"]


async def test_a_superseded_put_is_refused_by_the_write_itself(saver: JournalSaver) -> None:
    thread = _tid("refused")
    stale = await saver.aclaim_write_ownership(thread)
    await _aput(stale, thread)
    await saver.aclaim_write_ownership(thread)
    exc = await _refused(lambda: _aput(stale, thread, step=1))
    assert exc.thread_id == thread and repr(thread) in str(exc)
    assert "claim" in str(exc) and "Nothing was written" in str(exc)


async def test_a_superseded_put_is_not_durable(
    saver: JournalSaver, deployment: LocalDeployment,
) -> None:
    thread = _tid("not-durable")
    stale = await saver.aclaim_write_ownership(thread)
    first = await _aput(stale, thread)
    await saver.aclaim_write_ownership(thread)
    before = await _ids(saver, thread)
    items_before = _saver_items(deployment, thread)
    await _refused(lambda: _aput(stale, thread, parent=first, step=1))
    assert await _ids(saver, thread) == before == [first]
    owner_items = [i for i in _saver_items(deployment, thread) if i["SK"]["S"] == "O#"]
    assert len(owner_items) == 1
    # Not even an invisible item: the table holds what it held before the refusal
    # (the owner item apart, which the second claim replaced).
    def journal(items: list[dict[str, Any]]) -> list[str]:
        return sorted(i["SK"]["S"] for i in items if i["SK"]["S"] != "O#")

    assert journal(_saver_items(deployment, thread)) == journal(items_before)


async def test_a_superseded_owner_cannot_fork_the_chain(saver: JournalSaver) -> None:
    """The defect in three writes: A writes c1; B takes over and writes c2 on c1; A,
    thawed with c1 as its tip, writes its own child of c1. Unfenced, A's child is written
    last and its time-ordered id makes it the tip."""
    thread = _tid("fork")
    a = await saver.aclaim_write_ownership(thread)
    c1 = await _aput(a, thread, step=0)
    b = await saver.aclaim_write_ownership(thread)
    c2 = await _aput(b, thread, parent=c1, step=1)
    assert await _tip(saver, thread) == c2
    await _refused(lambda: _aput(a, thread, parent=c1, step=1))
    assert await _tip(saver, thread) == c2
    assert sorted(await _ids(saver, thread)) == sorted([c1, c2])


async def test_a_superseded_put_writes_is_refused(saver: JournalSaver) -> None:
    thread = _tid("writes-refused")
    stale = await saver.aclaim_write_ownership(thread)
    cid = await _aput(stale, thread)
    await saver.aclaim_write_ownership(thread)
    await _refused(lambda: stale.aput_writes(_config(thread, cid), [("ch", "stale")],
                                             str(uuid.uuid4())))


async def test_a_superseded_put_writes_is_not_durable(saver: JournalSaver) -> None:
    """A fresh task id: nothing collides, so first-writer-wins cannot be what hides it."""
    thread = _tid("writes-not-durable")
    stale = await saver.aclaim_write_ownership(thread)
    cid = await _aput(stale, thread)
    await saver.aclaim_write_ownership(thread)
    await _refused(lambda: stale.aput_writes(_config(thread, cid), [("ch", "stale")],
                                             str(uuid.uuid4())))
    assert await _writes(saver, thread, cid) == []


@pytest.mark.parametrize("channel", ["ch", "__resume__"])
async def test_a_superseded_owner_cannot_displace_the_current_owners_write(
    saver: JournalSaver, channel: str,
) -> None:
    """The collision itself: same checkpoint, same task id. A regular channel folds
    first-writer-wins, ``__resume__`` (a human's answer to an interrupt) last-writer-wins:
    the stale write must lose on both."""
    thread = _tid("displace")
    stale = await saver.aclaim_write_ownership(thread)
    cid = await _aput(stale, thread)
    current = await saver.aclaim_write_ownership(thread)
    task = str(uuid.uuid4())
    await current.aput_writes(_config(thread, cid), [(channel, "current")], task)
    await _refused(lambda: stale.aput_writes(_config(thread, cid), [(channel, "stale")], task))
    assert [w[2] for w in await _writes(saver, thread, cid) if w[1] == channel] == ["current"]


async def test_a_superseded_owner_stays_superseded(saver: JournalSaver) -> None:
    thread = _tid("stays")
    stale = await saver.aclaim_write_ownership(thread)
    first = await _aput(stale, thread)
    await saver.aclaim_write_ownership(thread)
    await _refused(lambda: _aput(stale, thread, step=1))
    await _refused(lambda: _aput(stale, thread, step=2))
    await _refused(lambda: stale.aput_writes(_config(thread, first), [("ch", "x")], "t"))
    assert await _ids(saver, thread) == [first]


async def test_ownership_is_per_thread(saver: JournalSaver) -> None:
    one, two = _tid("one"), _tid("two")
    owner_one = await saver.aclaim_write_ownership(one)
    await saver.aclaim_write_ownership(two)
    cid = await _aput(owner_one, one, step=1)
    assert await _tip(saver, one) == cid
    await owner_one.acheck_write_ownership()


async def test_the_new_owner_can_write_after_superseding(saver: JournalSaver) -> None:
    thread = _tid("takeover")
    old = await saver.aclaim_write_ownership(thread)
    c1 = await _aput(old, thread)
    new = await saver.aclaim_write_ownership(thread)
    c2 = await _aput(new, thread, parent=c1, step=1)
    await new.aput_writes(_config(thread, c2), [("ch", "recovered")], str(uuid.uuid4()))
    assert await _tip(saver, thread) == c2
    assert [w[2] for w in await _writes(saver, thread, c2)] == ["recovered"]


async def test_a_duplicate_put_writes_from_the_current_owner_is_not_a_refusal(
    saver: JournalSaver,
) -> None:
    """Idempotency and ownership are different axes: LangGraph re-sends a task's writes
    (same task id) and that must stay a success."""
    thread = _tid("duplicate")
    owner = await saver.aclaim_write_ownership(thread)
    cid = await _aput(owner, thread)
    task = str(uuid.uuid4())
    await owner.aput_writes(_config(thread, cid), [("ch", "v")], task)
    await owner.aput_writes(_config(thread, cid), [("ch", "v")], task)
    await owner.acheck_write_ownership()  # the owner lost nothing
    assert [w[2] for w in await _writes(saver, thread, cid)] == ["v"]  # folded once


async def test_reads_need_no_ownership(saver: JournalSaver, deployment: LocalDeployment) -> None:
    thread = _tid("reads")
    owner = await saver.aclaim_write_ownership(thread)
    cid = await _aput(owner, thread)
    with deployment.saver() as other:  # never claimed anything
        tup = await other.aget_tuple(_config(thread))
        assert tup is not None and tup.checkpoint["id"] == cid
        assert await _ids(other, thread) == [cid]
    # A superseded writer still reads (only its writes are fenced).
    await saver.aclaim_write_ownership(thread)
    tup = await owner.aget_tuple(_config(thread))
    assert tup is not None and tup.checkpoint["id"] == cid


# -- beyond the contract: the barrier, sync twins, deletes, the writer's scope ----------------


async def test_the_barrier_tells_a_superseded_owner_without_writing(
    saver: JournalSaver,
) -> None:
    thread = _tid("barrier")
    writer = await saver.aclaim_write_ownership(thread)
    await writer.acheck_write_ownership()
    await saver.aclaim_write_ownership(thread)
    await _refused(writer.acheck_write_ownership)
    with pytest.raises(errors.StaleWriteOwnerError, match="superseded by a claim made at"):
        writer.check_write_ownership()


def test_the_sync_twins(saver: JournalSaver) -> None:
    thread = _tid("sync")
    old = saver.claim_write_ownership(thread)
    c1 = _put(old, thread)
    old.put_writes(_config(thread, c1), [("ch", "a")], "task")
    old.check_write_ownership()
    new = saver.claim_write_ownership(thread)
    with pytest.raises(errors.StaleWriteOwnerError):
        _put(old, thread, parent=c1, step=1)
    with pytest.raises(errors.StaleWriteOwnerError):
        old.put_writes(_config(thread, c1), [("ch", "b")], "task2")
    with pytest.raises(errors.StaleWriteOwnerError):
        old.check_write_ownership()
    c2 = _put(new, thread, parent=c1, step=1)
    tup = saver.get_tuple(_config(thread))
    assert tup is not None and tup.checkpoint["id"] == c2
    first = saver.get_tuple(_config(thread, c1))
    assert first is not None and [w[2] for w in first.pending_writes or []] == ["a"]


def test_delete_thread_supersedes_every_owner(
    saver: JournalSaver, deployment: LocalDeployment,
) -> None:
    thread = _tid("deleted")
    writer = saver.claim_write_ownership(thread)
    _put(writer, thread)
    saver.delete_thread(thread)
    assert not any(i["SK"]["S"] == "O#" for i in partition(deployment, thread))
    with pytest.raises(errors.StaleWriteOwnerError, match="deleted"):
        _put(writer, thread, step=1)
    with pytest.raises(errors.StaleWriteOwnerError):
        writer.check_write_ownership()
    assert saver.get_tuple(_config(thread)) is None
    # The thread id can be claimed and written again.
    again = saver.claim_write_ownership(thread)
    cid = _put(again, thread)
    tup = saver.get_tuple(_config(thread))
    assert tup is not None and tup.checkpoint["id"] == cid


def test_prune_keeps_the_owner(saver: JournalSaver) -> None:
    thread = _tid("prune")
    writer = saver.claim_write_ownership(thread)
    c1 = _put(writer, thread, values={"a": 1})
    c2 = _put(writer, thread, parent=c1, step=1, values={"a": 2})
    saver.prune([thread])
    writer.check_write_ownership()
    c3 = _put(writer, thread, parent=c2, step=2, values={"a": 3})
    assert [t.checkpoint["id"] for t in saver.list(_config(thread))] == [c3, c2]


def test_a_writer_writes_only_its_own_thread(saver: JournalSaver) -> None:
    mine, other = _tid("mine"), _tid("other")
    writer = saver.claim_write_ownership(mine)
    with pytest.raises(errors.JournalError, match="cannot write thread") as info:
        _put(writer, other)
    assert not isinstance(info.value, errors.StaleWriteOwnerError)
    assert not getattr(info.value, MARKER, False)
    assert saver.get_tuple(_config(other)) is None
    cid = _put(saver, other)  # the saver itself stays unfenced
    with pytest.raises(errors.JournalError, match="cannot write thread"):
        writer.put_writes(_config(other, cid), [("ch", "x")], "task")


def test_an_invalid_thread_id_is_refused_before_any_request(saver: JournalSaver) -> None:
    with pytest.raises(errors.InvalidKeyError):
        saver.claim_write_ownership("")
    with pytest.raises(errors.InvalidKeyError):
        saver.claim_write_ownership("x" * 3000)


def test_a_writer_survives_with_allowlist_and_a_claim_on_a_writer(saver: JournalSaver) -> None:
    thread = _tid("allowlist")
    writer = saver.claim_write_ownership(thread)
    clone = writer.with_allowlist([("tests.integration.test_write_ownership", "Nothing")])
    assert clone is not writer and type(clone) is type(writer)
    c1 = _put(clone, thread)
    successor = writer.claim_write_ownership(thread)  # a writer can claim too
    with pytest.raises(errors.StaleWriteOwnerError):
        _put(clone, thread, parent=c1, step=1)
    _put(successor, thread, parent=c1, step=1)


def test_closing_a_writer_leaves_its_saver_open(saver: JournalSaver) -> None:
    thread = _tid("close")
    with saver.claim_write_ownership(thread) as writer:
        _put(writer, thread)
    _put(saver, thread)  # the saver's pools still run
    assert len(list(saver.list(_config(thread)))) == 2


# -- large records: chunks of a refused record do not stay ------------------------------------


def _big_values() -> dict[str, Any]:
    return {"blob": os.urandom(150_000).hex()}  # well above a 64 KB item budget, chunked


def test_a_superseded_chunked_put_writes_nothing(deployment: LocalDeployment) -> None:
    thread = _tid("chunks")
    with deployment.saver(max_item_bytes=64 * 1024) as saver:
        stale = saver.claim_write_ownership(thread)
        c1 = _put(stale, thread, values=_big_values())
        chunks = [i for i in _saver_items(deployment, thread) if i["kind"]["S"] == "P"]
        assert chunks, "setup: the record was expected to be chunked"
        saver.claim_write_ownership(thread)
        with pytest.raises(errors.StaleWriteOwnerError):
            _put(stale, thread, parent=c1, step=1, values=_big_values())
        after = [i for i in _saver_items(deployment, thread) if i["kind"]["S"] == "P"]
        assert sorted(i["SK"]["S"] for i in after) == sorted(i["SK"]["S"] for i in chunks)
        assert [t.checkpoint["id"] for t in saver.list(_config(thread))] == [c1]


def test_chunks_written_before_a_takeover_are_deleted_when_the_commit_is_refused(
    deployment: LocalDeployment,
) -> None:
    """The race the read before the chunks cannot close: the claim lands between the
    chunks and the commit. The transaction refuses the commit; the chunks go again."""
    thread = _tid("chunk-race")
    session = deployment.session()
    taken: list[int] = []

    def take_over(**_: Any) -> None:
        if not taken:  # the first fenced commit of this session
            taken.append(1)
            with deployment.saver() as rival:
                rival.claim_write_ownership(thread)

    session.events.register("before-send.dynamodb.TransactWriteItems", take_over)
    with deployment.saver(boto3_session=session, max_item_bytes=64 * 1024) as saver:
        stale = saver.claim_write_ownership(thread)
        with pytest.raises(errors.StaleWriteOwnerError):
            _put(stale, thread, values=_big_values())
        assert taken == [1]
        left = [i["SK"]["S"] for i in _saver_items(deployment, thread)]
        assert left == ["O#"], f"the refused record left items behind: {left}"


# -- transactions: conflicts are re-sent, and every cancellation is translated -----------------


def _canceled(codes: list[str], times: int, sent: list[int]) -> Any:
    """A before-send hook answering the first ``times`` requests with a
    TransactionCanceledException whose reasons are ``codes`` (as DynamoDB sends it when
    another transaction holds an item: emulators do not reproduce that)."""
    from botocore.awsrequest import AWSResponse

    class _Raw:
        def stream(self, **_: Any) -> Any:
            yield b""

    def handler(**kwargs: Any) -> Any:
        sent.append(1)
        if len(sent) > times:
            return None  # over HTTP
        body = json.dumps({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": "Transaction cancelled, please refer cancellation reasons for "
                       f"specific reasons [{', '.join(codes)}]",
            "CancellationReasons": [{"Code": c} for c in codes],
        }).encode()
        resp = AWSResponse(kwargs["request"].url, 400, {"x-amzn-requestid": "t"}, _Raw())
        resp._content = body
        return resp

    return handler


def _session_with(deployment: LocalDeployment, event: str, handler: Any) -> boto3.session.Session:
    session = deployment.session()
    session.events.register(event, handler)
    return session


def test_a_transaction_conflict_is_re_sent(deployment: LocalDeployment) -> None:
    thread = _tid("conflict")
    sent: list[int] = []
    session = _session_with(deployment, "before-send.dynamodb.TransactWriteItems",
                            _canceled(["TransactionConflict", "None"], 2, sent))
    with deployment.saver(boto3_session=session) as saver:
        writer = saver.claim_write_ownership(thread)
        cid = _put(writer, thread)
        assert len(sent) == 3  # two cancelled, then the real one
        tup = saver.get_tuple(_config(thread))
        assert tup is not None and tup.checkpoint["id"] == cid


def test_conflicts_beyond_the_retries_are_a_transient_error(
    deployment: LocalDeployment, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from checkpoint_journal._core.store import DynamoJournalStore

    monkeypatch.setattr(DynamoJournalStore, "FENCED_RETRIES", 2)
    thread = _tid("conflict-max")
    sent: list[int] = []
    session = _session_with(deployment, "before-send.dynamodb.TransactWriteItems",
                            _canceled(["None", "TransactionConflict"], 10**6, sent))
    with deployment.saver(boto3_session=session) as saver:
        writer = saver.claim_write_ownership(thread)
        with pytest.raises(errors.TransientError, match="cancelled 3 times"):
            _put(writer, thread)
        assert len(sent) == 3
        assert saver.get_tuple(_config(thread)) is None


def test_another_cancellation_is_a_journal_error(deployment: LocalDeployment) -> None:
    thread = _tid("cancel-other")
    sent: list[int] = []
    session = _session_with(deployment, "before-send.dynamodb.TransactWriteItems",
                            _canceled(["None", "ValidationError"], 1, sent))
    with deployment.saver(boto3_session=session) as saver:
        writer = saver.claim_write_ownership(thread)
        with pytest.raises(errors.JournalError, match="ValidationError") as info:
            _put(writer, thread)
        assert not isinstance(info.value, (errors.StaleWriteOwnerError, errors.TransientError))
        assert len(sent) == 1  # not re-sent


def test_a_claim_conflicting_with_a_fenced_write_is_re_sent(deployment: LocalDeployment) -> None:
    """DynamoDB refuses a PutItem on an item a transaction holds (TransactionConflict-
    Exception), and botocore does not retry that; the claim does."""
    from botocore.awsrequest import AWSResponse

    class _Raw:
        def stream(self, **_: Any) -> Any:
            yield b""

    sent: list[int] = []

    def conflict_once(**kwargs: Any) -> Any:
        sent.append(1)
        if len(sent) > 1:
            return None
        body = json.dumps({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
            "message": "Transaction is ongoing for the item",
        }).encode()
        resp = AWSResponse(kwargs["request"].url, 400, {"x-amzn-requestid": "t"}, _Raw())
        resp._content = body
        return resp

    thread = _tid("claim-conflict")
    session = _session_with(deployment, "before-send.dynamodb.PutItem", conflict_once)
    with deployment.saver(boto3_session=session) as saver:
        writer = saver.claim_write_ownership(thread)
        assert len(sent) == 2
        writer.check_write_ownership()


def test_a_retried_fenced_commit_that_had_succeeded_is_a_success(
    deployment: LocalDeployment,
) -> None:
    """An attempt whose answer was lost is re-sent; the commit item is then there, with
    this very content: the write succeeded. DynamoDB answers the re-send from its
    ClientRequestToken; emulators evaluate the conditions again, which this reproduces."""
    thread = _tid("retried")
    # A fixed clock: the same put twice then makes the very same item (the time of
    # writing is part of the event).
    with deployment.saver(clock=lambda: 1_700_000_000.0) as saver:
        writer = saver.claim_write_ownership(thread)
        cp = _checkpoint({"a": 1})
        config = _config(thread)
        writer.put(config, cp, {"source": "loop", "step": 0}, {"a": "1"})
        writer.put(config, cp, {"source": "loop", "step": 0}, {"a": "1"})
        # Different content under the same id is a conflict, not a success.
        cp2 = dict(cp, channel_values={"a": 2})
        with pytest.raises(errors.ConflictError) as info:
            writer.put(config, cp2, {"source": "loop", "step": 0}, {"a": "1"})
        assert not isinstance(info.value, errors.StaleWriteOwnerError)


def test_a_retried_put_through_a_writer_is_accepted_as_through_the_saver(
    saver: JournalSaver,
) -> None:
    """A put re-sent with the same arguments later (its first answer lost) stands, fenced
    as unfenced: the saver plans it again at the first attempt's time."""
    thread = _tid("re-put")
    writer = saver.claim_write_ownership(thread)
    cp = _checkpoint({"a": 1})
    first = writer.put(_config(thread), cp, {"source": "loop", "step": 0}, {"a": "1"})
    again = writer.put(_config(thread), cp, {"source": "loop", "step": 0}, {"a": "1"})
    assert again == first
    assert [t.checkpoint["id"] for t in saver.list(_config(thread))] == [cp["id"]]


# -- a real graph through a writer ------------------------------------------------------------


def test_a_graph_runs_through_a_writer_and_a_superseded_run_stops(saver: JournalSaver) -> None:
    thread = _tid("graph")
    config = {"configurable": {"thread_id": thread}}
    first = build_chat(saver.claim_write_ownership(thread))
    first.invoke({"messages": ["m0"]}, config, durability="sync")
    second = build_chat(saver.claim_write_ownership(thread))  # a retried worker takes over
    second.invoke({"messages": ["m1"]}, config, durability="sync")
    tip = saver.get_tuple(config)
    assert tip is not None
    with pytest.raises(errors.StaleWriteOwnerError):
        first.invoke({"messages": ["late"]}, config, durability="sync")
    after = saver.get_tuple(config)
    assert after is not None and after.checkpoint["id"] == tip.checkpoint["id"]
    state = build_chat(saver).get_state(config)
    assert state.values["messages"] == ["m0", "echo:m0", "m1", "echo:m1"]


async def test_an_interrupted_run_resumed_by_a_new_owner(saver: JournalSaver) -> None:
    """A worker stops at an interrupt; a retried worker takes over and resumes; the old
    one, thawed, tries to resume with another answer and is refused: the human's answer
    the new owner stored stays."""
    thread = _tid("resume")
    config = {"configurable": {"thread_id": thread}}
    old = build_approval(await saver.aclaim_write_ownership(thread))
    await old.ainvoke({"messages": ["refund please"]}, config, durability="sync")
    new = build_approval(await saver.aclaim_write_ownership(thread))
    done = await new.ainvoke(Command(resume={"approved": True}), config, durability="sync")
    assert done["approved"] is True
    with pytest.raises(errors.StaleWriteOwnerError):
        await old.ainvoke(Command(resume={"approved": False}), config, durability="sync")
    state = await build_approval(saver).aget_state(config)
    assert state.values["approved"] is True and state.next == ()


# -- the unfenced saver writes exactly as before ----------------------------------------------


def test_unfenced_writes_stay_one_put_item_and_fenced_ones_one_transaction(
    deployment: LocalDeployment,
) -> None:
    sent: list[str] = []
    session = deployment.session()
    session.events.register(
        "before-send.dynamodb",
        lambda event_name, **_: sent.append(event_name.rsplit(".", 1)[-1]))
    with deployment.saver(boto3_session=session) as saver:
        thread = _tid("requests")
        cid = _put(saver, thread)
        saver.put_writes(_config(thread, cid), [("ch", 1)], "task")
        assert sent == ["PutItem", "PutItem"]
        sent.clear()
        writer = saver.claim_write_ownership(thread)
        assert sent == ["PutItem"]  # the claim
        sent.clear()
        cid2 = _put(writer, thread, parent=cid, step=1)
        writer.put_writes(_config(thread, cid2), [("ch", 1)], "task")
        assert sent == ["TransactWriteItems", "TransactWriteItems"]


# -- pure pieces ------------------------------------------------------------------------------


def test_the_owner_key_is_outside_the_journal() -> None:
    sk = _keys.owner_sk()
    assert sk == "O#"
    with pytest.raises(ValueError):
        _keys.parse_sk(sk)
    assert _keys.owner(sk) is None and _keys.namespace_of(sk) is None
    assert _keys.namespaces(["O#", "J##x"]) == [""]
    assert _keys.KIND_OWNER not in {_keys.KIND_CHECKPOINT, _keys.KIND_WRITES, _keys.KIND_BLOBS,
                                    _keys.KIND_CHUNK, _keys.KIND_TOMBSTONE, _keys.KIND_VIEW,
                                    _keys.KIND_HEAD, _keys.KIND_INDEX, _keys.KIND_REMOVAL}


def test_the_stale_error_carries_the_marker_and_survives_pickling() -> None:
    exc = errors.StaleWriteOwnerError("t-1", "superseded by a claim made at x")
    assert errors.StaleWriteOwnerError.is_stale_write_owner_error is True
    assert isinstance(exc, errors.JournalError)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is errors.StaleWriteOwnerError
    assert (back.thread_id, back.detail, str(back)) == (exc.thread_id, exc.detail, str(exc))
    assert not getattr(errors.ConflictError("x"), MARKER, False)


def test_a_cancelled_transaction_is_translated_with_its_reasons() -> None:
    import botocore.exceptions

    reasons = [{"Code": "ConditionalCheckFailed", "Item": {"PK": {"S": "T#a"}}},
               {"Code": "None"}]
    err = botocore.exceptions.ClientError(
        {"Error": {"Code": "TransactionCanceledException", "Message": "m"},  # type: ignore[typeddict-item]
         "CancellationReasons": reasons}, "TransactWriteItems")
    got = aws.translate(err, service=aws.DYNAMODB, resource="tbl", what="append")
    assert isinstance(got, aws.TransactionCanceled) and isinstance(got, errors.JournalError)
    assert (got.code(0), got.code(1), got.code(2)) == ("ConditionalCheckFailed", "None", "None")
    assert got.item(0) == {"PK": {"S": "T#a"}} and got.item(1) is None
