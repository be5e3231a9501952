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

    from checkpoint_journal import _keys

    saver = _saver()
    thread = f"e2e-view-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread}}
    graphs.build_chat(saver).invoke({"messages": ["fold me"]}, config)
    latest = saver.get_tuple(config)
    assert latest is not None
    key = {"PK": {"S": _keys.thread_pk(thread)},
           "SK": {"S": _keys.view_sk("", latest.config["configurable"]["checkpoint_id"])}}
    deadline = time.monotonic() + 180  # batching window, cold start, IteratorAge
    while "Item" not in saver._ddb.get_item(
        TableName=saver.table_name, Key=key, ConsistentRead=True
    ):
        assert time.monotonic() < deadline, "the projector did not fold the checkpoint in 180 s"
        time.sleep(2)
    assert saver.get_tuple(config) == latest
    saver.delete_thread(thread)
