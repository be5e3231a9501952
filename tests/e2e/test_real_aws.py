"""Against a deployed stack: the conformance suite and a resumable graph."""

from __future__ import annotations

import os
import uuid

from langgraph.checkpoint.conformance import checkpointer_test, validate

from checkpoint_journal import JournalSaver
from tests.integration import graphs


def _saver() -> JournalSaver:
    return JournalSaver(
        os.environ["CHECKPOINT_JOURNAL_TABLE"], bucket=os.environ["CHECKPOINT_JOURNAL_BUCKET"]
    )


def test_stack_is_reachable() -> None:
    _saver().check()


async def test_conformance_on_aws() -> None:
    @checkpointer_test(name="JournalSaver[aws]")
    async def factory():  # type: ignore[no-untyped-def]
        yield _saver()

    report = await validate(factory)
    report.print_report()
    # delete_for_runs reads an eventually consistent GSI; the rest must pass.
    assert all(r.passed for cap, r in report.results.items() if cap != "delete_for_runs")


def test_graph_resumes_with_a_new_saver() -> None:
    thread = f"e2e-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread}}
    graphs.build_chat(_saver()).invoke({"messages": ["one"]}, config)
    result = graphs.build_chat(_saver()).invoke({"messages": ["two"]}, config)
    assert result["turns"] == 2
    _saver().delete_thread(thread)


def test_the_deployed_projector_folds_a_new_checkpoint() -> None:
    """The stack's stream drives the projector: a new checkpoint gets its view item."""
    import time

    from checkpoint_journal._core import aws
    from checkpoint_journal._core import keys as _keys

    saver = _saver()
    thread = f"e2e-view-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread}}
    graphs.build_chat(saver).invoke({"messages": ["fold me"]}, config)
    latest = saver.get_tuple(config)
    assert latest is not None
    key = {"PK": {"S": _keys.thread_pk(thread)},
           "SK": {"S": _keys.view_sk("", latest.config["configurable"]["checkpoint_id"])}}
    ddb = aws.clients().dynamodb
    deadline = time.monotonic() + 180  # batching window, cold start, IteratorAge
    while "Item" not in ddb.get_item(TableName=saver.table_name, Key=key, ConsistentRead=True):
        assert time.monotonic() < deadline, "the projector did not fold the checkpoint in 180 s"
        time.sleep(2)
    assert saver.get_tuple(config) == latest
    saver.delete_thread(thread)


def test_the_deployed_archiver_archives_and_verify_proves_it() -> None:
    """The stack's archiver seals the thread's events into archive/, verify finds table
    and archive identical, and delete_thread shreds them."""
    import time

    from checkpoint_journal._core import aws
    from checkpoint_journal._core import chain as _chain
    from checkpoint_journal._core.archive_read import iter_archive
    from checkpoint_journal.cli import verify as _verify

    key = os.urandom(32).hex()
    saver = JournalSaver(os.environ["CHECKPOINT_JOURNAL_TABLE"],
                         bucket=os.environ["CHECKPOINT_JOURNAL_BUCKET"], chain_key=key)
    thread = f"e2e-audit-{uuid.uuid4()}"
    graphs.build_chat(saver).invoke({"messages": ["audit me"]},
                                    {"configurable": {"thread_id": thread}})
    hasher = _chain.Hasher(_chain.key_bytes(key))
    clients = aws.clients()
    deadline = time.monotonic() + 300  # the archiver's 60 s batching window, cold start
    while True:
        report = _verify.verify(clients.dynamodb, saver.table_name, hasher=hasher,
                                thread_id=thread, s3=clients.s3, bucket=saver.bucket)
        if report.counts["checkpoints matched table to archive"] == 3:
            break
        assert time.monotonic() < deadline, "the archiver did not archive the thread in 300 s"
        time.sleep(10)
    assert report.ok, [f.doc() for f in report.findings]
    saver.delete_thread(thread)
    states = {ev.state for ev in iter_archive(clients.s3, str(saver.bucket),
                                              dynamodb=clients.dynamodb,
                                              table=saver.table_name, thread_id=thread)}
    assert states <= {"shredded", "none"}, states
