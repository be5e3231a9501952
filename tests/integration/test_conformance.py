"""langgraph-checkpoint-conformance at FULL (all eight capabilities), over HTTP against
the local deployment, on both backends."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from checkpoint_journal import JournalSaver
from checkpoint_journal.local import LocalDeployment


async def test_conformance_full(deployment: LocalDeployment) -> None:
    @checkpointer_test(name=f"JournalSaver[{deployment.backend}]")
    async def journal_saver() -> AsyncGenerator[JournalSaver, None]:
        saver = deployment.saver()
        yield saver
        saver.close()

    failures: list[str] = []

    def on_result(cap: str, test: str, passed: bool, error: str | None) -> None:
        if not passed:
            failures.append(f"{cap}/{test}: {error}")

    report = await validate(journal_saver, progress=ProgressCallbacks(on_test_result=on_result))
    report.print_report()
    assert failures == []
    assert report.conformance_level() == "FULL"
    passed = sum(r.tests_passed for r in report.results.values())
    assert passed == 81
