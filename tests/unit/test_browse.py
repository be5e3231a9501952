"""The browsing commands' pure parts: ids and times, value summaries and diffs, who wrote
a checkpoint, thread rows from a partition's keys, and text layout."""

from __future__ import annotations

import decimal
import io
import time
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Interrupt

from checkpoint_journal._core.fold import CheckpointEvent, FoldedWrite, Namespace
from checkpoint_journal._core.keys import (
    checkpoint_sk,
    head_sk,
    thread_pk,
    tombstone_sk,
    writes_sk,
)
from checkpoint_journal.cli import browse
from checkpoint_journal.cli import render as text
from checkpoint_journal.cli.detail import describe_change, writers

SERDE = JsonPlusSerializer()


def test_uuid6_time_is_langgraphs_clock() -> None:
    before = int(time.time() * 1000)
    cid = str(uuid6(clock_seq=3))
    after = int(time.time() * 1000)
    ms = browse.uuid6_ms(cid)
    assert ms is not None and before - 1 <= ms <= after + 1
    assert browse.uuid6_ms("not-a-uuid") is None
    assert browse.uuid6_ms("6fa459ea-ee8a-3ca4-894e-db77e160355e") is None  # version 3
    assert browse.iso_ms(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"


def test_node_of_task_paths() -> None:
    assert browse.node_of("~__pregel_pull, reply") == "reply"
    assert browse.node_of("~__pregel_pull, __start__") == "__start__"
    assert browse.node_of("~__pregel_push, ~__pregel_pull, a, 0000000002") is None
    assert browse.node_of("~__interrupt__, 0000000000") is None
    assert browse.node_of("") is None


def test_jsonable() -> None:
    assert browse.jsonable(decimal.Decimal("3")) == 3
    assert browse.jsonable(decimal.Decimal("2.5")) == 2.5
    assert browse.jsonable(b"\x00\x01") == {"$bytes": "AAE="}
    assert browse.jsonable(Interrupt(value={"q": 1}, id="i1")) == {
        "value": {"q": 1}, "id": "i1", "response_schema": None}
    message = browse.jsonable(AIMessage(content="hi", id="m1"))
    assert message["content"] == "hi" and message["type"] == "ai"
    assert browse.jsonable(float("nan")) == "nan"
    assert browse.jsonable({1: (1, 2)}) == {"1": [1, 2]}
    assert browse.jsonable(object()).startswith("<object")


def test_short_cuts_long_values_and_says_how_long() -> None:
    assert browse.short(["a", "b"]) == '["a", "b"]'
    cut = browse.short(["x" * 1000], 60)
    assert len(cut) <= 60 and cut.endswith("(list of 1 item, 1,004 chars)")
    assert browse.short("line one\nline two") == '"line one\\nline two"'


@pytest.mark.parametrize(
    ("old", "new", "summary", "kind"),
    [
        (["a"], ["a", "b", "c"], 'appended 2 items: ["b", "c"]', "list"),
        (["a", "b"], ["a"], 'removed the last 1 item: ["b"]', "list"),
        (["a", "b"], ["x", "b"], "list of 2 -> 2 items, 1 item replaced in place", "list"),
        ("hello", "hello world", 'appended 6 chars: " world"', "str"),
        ("abc", "xyz", '"abc" -> "xyz"', "str"),
        ({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}, "keys +c ~b", "dict"),
        (1, 2, "1 -> 2", "value"),
        ([1], [1], "same value, new version", "same"),
    ],
)
def test_describe_change(old: Any, new: Any, summary: str, kind: str) -> None:
    got, detail = describe_change(old, new)
    assert got == summary
    assert detail["kind"] == kind


def test_load_reports_encrypted_values() -> None:
    value, error = browse.load(SERDE, ("msgpack+aesgcm", b"\x01\x02"))
    assert value is None and error is not None
    assert "EncryptedSerializer" in error and "'aesgcm'" in error
    value, error = browse.load(SERDE, SERDE.dumps_typed({"a": 1}))
    assert (value, error) == ({"a": 1}, None)


def _event(cid: str, parent: str | None, md: dict[str, Any], **kw: Any) -> CheckpointEvent:
    return CheckpointEvent(
        thread_id="t", checkpoint_ns="", checkpoint_id=cid, parent_checkpoint_id=parent,
        written_at_ms=0, checkpoint=kw.get("checkpoint", SERDE.dumps_typed({})),
        metadata=SERDE.dumps_typed(md), blobs={}, size=0, channel_versions={},
    )


def _write(task: str, path: str, channel: str, idx: int) -> FoldedWrite:
    return FoldedWrite(task, channel, SERDE.dumps_typed(None), path, idx)


def test_writers_from_pending_writes_versions_seen_and_metadata() -> None:
    ns = Namespace()
    ns.writes["p"] = [
        _write("t1", "~__pregel_pull, reply", "messages", 0),
        _write("t2", "~__pregel_pull, ask", "__interrupt__", -3),  # interrupted: no result
        _write("t3", "~__interrupt__, 0000000000", "messages", 0),  # an update_state
    ]
    loop = _event("c", "p", {"source": "loop", "step": 1})
    assert writers(ns, loop, {"source": "loop"}, SERDE) == (["reply"], "pending_writes")
    assert writers(ns, loop, {"source": "update"}, SERDE) == ([], "update_state")
    assert writers(ns, loop, {"source": "input"}, SERDE) == (["__input__"], "input")
    assert writers(ns, loop, {"writes": {"b": {}, "a": {}}}, SERDE) == (
        ["a", "b"], "metadata.writes")

    # durability="exit" saves no pending writes: versions_seen tells who ran.
    quiet = Namespace()
    seen0 = {"__input__": {}, "__start__": {"__start__": "1"}}
    seen1 = {**seen0, "reply": {"branch:to:reply": "2"}, "__interrupt__": {"x": "1"}}
    quiet.checkpoints["p"] = _event("p", None, {}, checkpoint=SERDE.dumps_typed(
        {"versions_seen": seen0}))
    child = _event("c", "p", {}, checkpoint=SERDE.dumps_typed({"versions_seen": seen1}))
    assert writers(quiet, child, {"source": "loop"}, SERDE) == (
        ["reply"], "versions_seen")


def _item(sk: str, written_at: int, **attrs: Any) -> dict[str, Any]:
    item = {"PK": {"S": thread_pk("t")}, "SK": {"S": sk}, "written_at": {"N": str(written_at)}}
    item.update(attrs)
    return item


def test_summarise_partition_counts_visible_checkpoints() -> None:
    a, b, c = "1f000000-0000-6000-8000-00000000000a", "1f000000-0000-6000-8000-00000000000b", \
        "1f000000-0000-6000-8000-00000000000c"
    items = [
        _item(checkpoint_sk("", a), 100, md={"M": {"step": {"N": "-1"}}}),
        _item(checkpoint_sk("", b), 200, md={"M": {"step": {"N": "0"}}}),
        _item(writes_sk("", b, "task", "u"), 250),
        _item(checkpoint_sk("", c), 300, expires_at={"N": "1"}),  # expired: not counted
        _item(checkpoint_sk("sub:1", a), 150),
        _item(head_sk(""), 250, latest={"S": b}, ts={"S": "000000000000250"}),
    ]
    row = browse.summarise_partition("t", items, now_s=time.time())
    assert row is not None
    assert (row.checkpoints, row.namespaces, row.step, row.latest_checkpoint_id) == (
        3, ["", "sub:1"], 0, b)
    assert row.last_activity_ms == 250  # the pending write came last

    deleted = [_item(checkpoint_sk("", a), 100), _item(tombstone_sk(""), 500)]
    assert browse.summarise_partition("t", deleted, now_s=time.time()) is None


def test_table_aligns_and_colours_only_when_asked() -> None:
    plain = text.table(["A", "NUM"], [["x", "1"], ["long", "100"]], text.Style(), right=(1,))
    assert plain == ["A     NUM", "x       1", "long  100"]
    coloured = text.table(["A", "NUM"], [[text.Style(True).red("x"), "1"]], text.Style(True),
                          right=(1,))
    assert "\x1b[31mx\x1b[0m    1" in coloured[1]  # padding ignores the colour codes


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color() -> None:
    assert text.use_colour(_Tty(), {})
    assert not text.use_colour(_Tty(), {"NO_COLOR": "1"})
    assert not text.use_colour(_Tty(), {"TERM": "dumb"})
    assert not text.use_colour(io.StringIO(), {})


def test_progress_only_on_a_terminal_and_after_a_while() -> None:
    pipe = io.StringIO()
    p = text.Progress(pipe, delay=0)
    p("working")
    p.close()
    assert pipe.getvalue() == ""
    tty = _Tty()
    p = text.Progress(tty, delay=0)
    p("working")
    p.close()
    assert "working" in tty.getvalue() and tty.getvalue().endswith("\r\x1b[K")


def test_human_bytes() -> None:
    assert [text.human_bytes(n) for n in (None, 12, 2048, 5 * 1024 * 1024)] == [
        "-", "12 B", "2.0 KiB", "5.0 MiB"]
