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
