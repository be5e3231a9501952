"""Issue 11 against both local backends: a retried put is accepted, odd inputs are stored
exactly or refused clearly, ``check()`` says what it checked, S3 trouble falls back to
the journal, deletes are final, and ``verify`` always finishes its report.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from checkpoint_journal import JournalSaver
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import seal as _seal
from checkpoint_journal._core.chain import Hasher
from checkpoint_journal.cli.verify import verify
from checkpoint_journal.errors import ConflictError, NotConfiguredError
from checkpoint_journal.local import LocalDeployment
from tests.integration.tables import partition


def _root(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}


def _cp(values: dict[str, Any], version: str = "1") -> Any:
    cp = empty_checkpoint()
    cp["channel_values"] = values
    cp["channel_versions"] = {k: version for k in values}
    return cp


def _journal(dep: LocalDeployment, thread: str) -> list[dict[str, Any]]:
    """The saver's items of a thread (the projector adds its own in the background)."""
    return [i for i in partition(dep, thread) if i["kind"]["S"] in ("C", "W", "B", "P")]


# -- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [10, 600_000], ids=["one item", "chunked"])
def test_a_retried_put_with_the_same_arguments_is_accepted(deployment: LocalDeployment,
                                                          size: int) -> None:
    """The first attempt landed but its caller never learned it (a timeout, a crash):
    the same put again, in the same process or a new one, succeeds and changes nothing."""
    thread = f"retry-{uuid.uuid4().hex[:8]}"
    cp = _cp({"v": os.urandom(size)})
    args = (_root(thread), cp, {"step": 1, "source": "loop"}, {"v": "1"})
    with deployment.saver() as first:
        stored = first.put(*args)
        before = _journal(deployment, thread)
        assert first.put(*args) == stored  # the same saver
    with deployment.saver() as restarted:
        assert restarted.put(*args) == stored  # a new process: nothing remembered
        assert _journal(deployment, thread) == before
        got = restarted.get_tuple(stored)
        assert got is not None and got.checkpoint["channel_values"] == cp["channel_values"]
        # Other content under the same checkpoint id is still a conflict (I1).
        other = dict(cp, channel_values={"v": b"other"})
        with pytest.raises(ConflictError, match="already exists with different content"):
            restarted.put(_root(thread), other, {"step": 1, "source": "loop"}, {"v": "1"})
    assert _journal(deployment, thread) == before


# -- inputs ---------------------------------------------------------------------------------


def test_metadata_dynamodb_cannot_index_is_stored_and_returned_exactly(
        deployment: LocalDeployment) -> None:
    thread = f"md-{uuid.uuid4().hex[:8]}"
    deep: Any = "leaf"
    for _ in range(40):
        deep = {"k": deep}
    metadata = {"step": 1, "tiny": 1e-300, "huge": 1e200, "deep": deep, "run_id": "r" * 3000,
                "wide_int": 2**63 - 1}
    with deployment.saver() as saver:
        # Large enough to be chunked: a refused commit would leave its chunks behind.
        stored = saver.put(_root(thread), _cp({"v": os.urandom(600_000)}), metadata, {"v": "1"})
        got = saver.get_tuple(stored)
        assert got is not None
        assert {k: got.metadata[k] for k in metadata} == metadata
        # The 3,000-character run id is indexed by its hash: delete_for_runs finds it.
        saver.delete_for_runs(["r" * 3000])
        assert saver.get_tuple(_root(thread)) is None


def test_check_says_what_it_checked_and_refuses_a_foreign_table(
        deployment: LocalDeployment) -> None:
    with deployment.saver() as saver:
        found = saver.check()
    assert found["keys"] == "PK (S, hash), SK (S, range)"
    assert found["stream"].startswith("NEW_IMAGE")
    assert found["bucket"].startswith(deployment.bucket)
    ddb = deployment.client("dynamodb")
    name = f"foreign-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    try:
        with deployment.saver() as s, JournalSaver(
                name, endpoint_url=deployment.endpoint_url,
                boto3_session=deployment.session()) as foreign:
            assert s.check()["table"] == deployment.table_name
            with pytest.raises(NotConfiguredError, match="needs PK"):
                foreign.check()
    finally:
        ddb.delete_table(TableName=name)


# -- S3 -------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_s3_reads_from_the_journal(deployment: LocalDeployment,
                                               caplog: pytest.LogCaptureFixture) -> None:
    thread = f"s3down-{uuid.uuid4().hex[:8]}"
    big = os.urandom(60_000)  # offloaded by the projector
    with deployment.saver() as saver:
        stored = saver.put(_root(thread), _cp({"big": big, "small": "s"}), {"step": 1},
                           {"big": "1", "small": "1"})
    deployment.drain(timeout=60)
    dead = f"http://127.0.0.1:{_closed_port()}"
    with deployment.saver(s3_endpoint_url=dead, max_attempts=1) as saver:
        got = saver.get_tuple(stored)
        assert got is not None and got.checkpoint["channel_values"] == {"big": big, "small": "s"}
        assert [t.config for t in saver.list(_root(thread))] == [stored]
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "reading the journal instead" in said and deployment.bucket in said
    assert "S3" in said and "DynamoDB endpoint" not in said


# -- deletes ---------------------------------------------------------------------------------


def test_a_put_in_flight_during_delete_thread_stays_deleted(deployment: LocalDeployment) -> None:
    """A put that took its time before the tombstone and landed after the deletes is
    swept before delete_thread returns: nothing hidden stays in clear."""
    thread = f"late-{uuid.uuid4().hex[:8]}"
    with deployment.saver() as saver:
        stored = saver.put(_root(thread), _cp({"v": "a"}), {"step": 1}, {"v": "1"})
    import time as _time

    early = _time.time() - 5  # the in-flight put's clock: before the delete's tombstone
    with deployment.saver(clock=lambda: early) as late, deployment.saver() as deleter:
        ddb = deleter._ddb
        landed: list[Any] = []

        def land(**_: Any) -> None:
            # Once the deletes are sent, the late put arrives.
            if not landed:
                landed.append(late.put(stored, _cp({"v": "late"}, "2"), {"step": 2}, {"v": "2"}))

        ddb.meta.events.register("before-call.dynamodb.BatchWriteItem", land)
        try:
            deleter.delete_thread(thread)
        finally:
            ddb.meta.events.unregister("before-call.dynamodb.BatchWriteItem", land)
        assert landed
        assert deleter.get_tuple(_root(thread)) is None
    # The sweep, not the projector, removed what the late put left: right after the
    # delete, no saver item but the tombstone; once the projector has run, nothing else.
    assert _journal(deployment, thread) == []
    deployment.drain(timeout=60)
    journal = [i["SK"]["S"] for i in partition(deployment, thread)]
    assert journal == [_keys.tombstone_sk("")]  # the tombstone alone
    tomb = partition(deployment, thread)[0]
    assert "expires_at" not in tomb  # no TTL configured: it outlives everything it hides


# -- verify ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["moto", "dynamodb-local"])
def quiet(request: pytest.FixtureRequest) -> Iterator[LocalDeployment]:
    """A deployment without stream handlers, for damage planted on purpose: on the
    session's, the projector would meet it and fail its batch for every later test."""
    with LocalDeployment(backend=request.param, handlers=False) as dep:
        yield dep


def test_verify_finishes_its_report_whatever_an_item_holds(quiet: LocalDeployment) -> None:
    deployment = quiet
    thread = f"odd-{uuid.uuid4().hex[:8]}"
    with deployment.saver() as saver:
        stored = saver.put(_root(thread), _cp({"v": "a"}), {"step": 1}, {"v": "1"})
        saver.put(stored, _cp({"v": "b"}, "2"), {"step": 2}, {"v": "2"})
    item = next(i for i in partition(deployment, thread)
                if i["SK"]["S"] == _keys.checkpoint_sk("", stored["configurable"]["checkpoint_id"]))
    odd = _seal.sealed({**item, "fp": {"S": "ffffffffffffffff"}})  # a schema no one knows
    deployment.client("dynamodb").put_item(TableName=deployment.table_name, Item=odd)
    report = verify(deployment.client("dynamodb"), deployment.table_name, hasher=Hasher(None),
                    thread_id=thread)
    assert report.outcome == "damaged"
    problems = {(f.problem, f.checkpoint_id) for f in report.findings}
    assert ("unreadable", stored["configurable"]["checkpoint_id"]) in problems
    assert report.counts["checkpoint events (table)"] == 1  # the other one was checked
