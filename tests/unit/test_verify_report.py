"""``verify`` finishes its report whatever a thread holds: a thread whose check fails
midway is a finding (``unreadable``), never a "thread not found" or an abort."""

from __future__ import annotations

from typing import Any

import pytest

from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import seal as _seal
from checkpoint_journal._core.chain import Hasher
from checkpoint_journal.cli import verify as _verify
from tests.unit.conftest import TABLE


def test_a_thread_whose_check_fails_is_reported_not_lost(
        aws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    _, ddb = aws
    for thread in ("broken", "fine"):
        ddb.put_item(TableName=TABLE, Item=_seal.sealed({
            "PK": {"S": _keys.thread_pk(thread)}, "SK": {"S": "H#"}, "kind": {"S": "H"}}))
    real = _verify.check_thread

    def check(report: Any, hasher: Any, thread_id: str, items: Any) -> Any:
        if thread_id == "broken":
            raise KeyError("removed")  # what a record decoded from damaged bytes can raise
        return real(report, hasher, thread_id, items)

    monkeypatch.setattr(_verify, "check_thread", check)
    report = _verify.verify(ddb, TABLE, hasher=Hasher(None), thread_id="broken")
    assert report.outcome == "damaged"
    (finding,) = report.findings
    assert (finding.problem, finding.thread_id) == ("unreadable", "broken")
    assert "could not finish" in finding.detail
    # Every thread: the broken one reported, the others still checked.
    everything = _verify.verify(ddb, TABLE, hasher=Hasher(None))
    assert [f.thread_id for f in everything.findings] == ["broken"]
    assert "fine" in everything.threads
