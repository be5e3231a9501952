"""``show`` and ``diff`` on chat messages (``cli/conversation.py`` and its use in
``render``): messages recognised by type in every stored form, laid out as turns (text
wrapped and cut, tool calls, tool results, interrupts), compared by id; and the node that
a Send task (a tool node) ran, named from the checkpoint's pending Sends."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.load import dumpd
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.types import Send

from checkpoint_journal._core.fold import CheckpointEvent, FoldedWrite, Namespace
from checkpoint_journal._core.serde import StrictSerializer
from checkpoint_journal.cli import conversation as chat
from checkpoint_journal.cli import render
from checkpoint_journal.cli.detail import (
    Detail,
    Shown,
    ShownInterrupt,
    Stored,
    TaskNodes,
    diff,
    task_node,
    writers,
)

SERDE = StrictSerializer()
PLAIN = render.Style()

CHAT = [
    SystemMessage("You are a support agent.", id="s-1"),
    HumanMessage("Where is order A1001?", id="h-1"),
    AIMessage("", id="ai-1", tool_calls=[
        {"name": "lookup_order", "args": {"order_id": "A1001", "full": True}, "id": "call_1"}]),
    ToolMessage("shipped with UPS", tool_call_id="call_1", name="lookup_order", id="t-1"),
    AIMessage("Your order shipped with UPS.", id="ai-2"),
]


# -- recognising messages ------------------------------------------------------------------


def _turn(message: Any) -> chat.Turn:
    turn = chat.as_turn(message)
    assert turn is not None
    return turn


def _roles(value: Any) -> list[str] | None:
    turns = chat.as_conversation(value)
    return None if turns is None else [t.role for t in turns]


def test_messages_are_recognised_in_every_stored_form() -> None:
    roles = ["system", "user", "assistant", "tool", "assistant"]
    assert _roles(CHAT) == roles
    assert _roles([m.model_dump() for m in CHAT]) == roles  # {"type": "human", ...}
    assert _roles([dumpd(m) for m in CHAT]) == roles  # langchain's serialized form
    openai = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c9", "type": "function",
             "function": {"name": "describe", "arguments": '{"detail": "high"}'}}]},
        {"role": "tool", "tool_call_id": "c9", "content": "a cat"},
    ]
    turns = chat.as_conversation(openai)
    assert turns is not None and [t.role for t in turns] == ["system", "user", "assistant", "tool"]
    assert turns[1].text == "What is this?\n[image_url]"
    assert turns[2].tool_calls == (chat.ToolCall("describe", {"detail": "high"}, "c9"),)
    assert turns[3].tool_call_id == "c9"
    assert _roles(AIMessageChunk("partial")) == ["assistant"]  # one message: one turn
    assert _roles([RemoveMessage(id="h-1")]) == ["remove"]


@pytest.mark.parametrize("value", [
    [], ["hello", "echo:hello"], [HumanMessage("hi"), "not a message"],
    {"type": "text", "text": "a content block"}, {"role": "admin", "content": "x"},
    {"type": "human"},  # no content: not a message
])
def test_anything_else_is_not_a_conversation(value: Any) -> None:
    assert chat.as_conversation(value) is None


# -- laying turns out ----------------------------------------------------------------------


def test_wrap_breaks_at_spaces_splits_long_words_and_counts_wide_characters() -> None:
    assert chat.wrap("aaa bbb ccc", 8) == [("aaa bbb", 7), ("ccc", 11)]
    assert chat.wrap("abcdefghijkl", 8) == [("abcdefgh", 8), ("ijkl", 12)]
    assert [line for line, _ in chat.wrap("日本語のテキスト", 8)] == ["日本語の", "テキスト"]
    assert [line for line, _ in chat.wrap("one\n\n  def f(x): return x", 12)] == [
        "one", "", "  def f(x):", "  return x"]


def test_turn_text_is_wrapped_to_the_width_and_cut_with_what_was_cut() -> None:
    text = " ".join(f"word{i:03d}" for i in range(200))  # 1,599 characters
    lines = chat.turn_lines(chat.Turn("user", text), PLAIN, 60)
    assert all(render.display_width(line) <= 60 for line in lines)
    assert lines[0].startswith("  user       word000 word001")
    assert all(line.startswith(" " * 13) for line in lines[1:])  # under the text column
    assert len(lines) == chat.MAX_LINES + 1
    shown = " ".join(line.strip() for line in lines[:-1]).removeprefix("user").strip()
    assert text.startswith(shown)
    cut = len(text) - len(shown) - 1  # the space after the last word shown
    assert lines[-1].strip() == f"… {cut:,} more characters (--json has all 1,599)"


def test_control_characters_in_a_message_cannot_drive_the_terminal() -> None:
    (line,) = chat.turn_lines(chat.Turn("tool", "\x1b[2Jgone"), PLAIN, 80)[1:]
    assert "\x1b" not in line and "\\x1b[2Jgone" in line
    named = {"role": "tool", "content": "x", "name": "f\x1b[8m", "tool_call_id": "c\x07",
             "status": "\x9b1m"}  # a dict form: nothing validated it
    head = chat.turn_lines(_turn(named), PLAIN, 80)[0]
    assert head == "  tool       f\\x1b[8m · call c\\x07 · \\x9b1m"
    (line,) = chat.interrupt_lines("node\x1b[2J", "ok?", None, PLAIN, 80)[:1]
    assert line == "  interrupt  node\\x1b[2J is waiting"


def test_tool_calls_and_tool_results() -> None:
    turns = chat.as_conversation(CHAT)
    assert turns is not None
    assert chat.turn_lines(turns[2], PLAIN, 80) == [
        '  assistant  → lookup_order(order_id="A1001", full=true)  call_1']
    assert chat.turn_lines(turns[3], PLAIN, 80) == [
        "  tool       lookup_order · call call_1 · success",
        "             shipped with UPS"]
    failed = ToolMessage("boom", tool_call_id="c2", name="refund", status="error")
    head = chat.turn_lines(_turn(failed), render.Style(True), 80)[0]
    assert "\x1b[31merror\x1b[0m" in head  # a failed tool call stands out
    invalid = AIMessage("", invalid_tool_calls=[
        {"name": "refund", "args": "{oops", "id": "c3", "error": "bad JSON",
         "type": "invalid_tool_call"}])
    assert chat.turn_lines(_turn(invalid), PLAIN, 80) == [
        "  assistant  ✗ refund: \"bad JSON\""]
    huge = AIMessage("", tool_calls=[{"name": "send", "args": {"body": "x" * 500}, "id": "c4"}])
    (line,) = chat.turn_lines(_turn(huge), PLAIN, 80)
    assert render.display_width(line) <= 80 and "(507 chars of args)" in line


def _stored() -> Stored:
    return Stored(10, "c", "inline", None, None, None)


def _detail(values: list[Shown], interrupts: list[ShownInterrupt],
            writes: tuple[Shown, ...] = ()) -> Detail:
    return Detail(
        thread_id="t", checkpoint_ns="", checkpoint_id="c", parent_checkpoint_id="p",
        created_ms=None, written_ms=0, metadata={"step": 3, "source": "loop"},
        metadata_error=None, written_by=["agent"], written_by_from="pending_writes",
        updated_channels=["messages"], values=values, pending_writes=list(writes),
        interrupts=interrupts, journal_bytes=100, view_bytes=None, checkpoint_error=None,
    )


def test_show_renders_messages_as_turns_ending_with_the_pending_interrupt() -> None:
    d = _detail(
        [Shown("messages", "msgpack", CHAT, None, _stored()),
         Shown("notes", "msgpack", ["a", "b"], None, _stored())],
        [ShownInterrupt("task1", "tools", "i-1", {"question": "Approve?", "amount": 249.0},
                        None, resumed=False)],
        (Shown("messages", "msgpack", [ToolMessage("ok", tool_call_id="c", name="f")], None,
               _stored(), task_id="task2", task_path="~__pregel_push, 0, 0", node="tools"),),
    )
    lines = render.detail_text(d, PLAIN, 100)
    at = lines.index("  messages  5 messages: 1 system, 1 user, 2 assistant, 1 tool")
    assert lines[at + 2:at + 11] == [
        "    system     You are a support agent.",
        "    user       Where is order A1001?",
        '    assistant  → lookup_order(order_id="A1001", full=true)  call_1',
        "    tool       lookup_order · call call_1 · success",
        "               shipped with UPS",
        "    assistant  Your order shipped with UPS.",
        "    interrupt  tools is waiting",
        '               {"question": "Approve?", "amount": 249.0}',
        "               resume: graph.invoke(Command(resume=<value>), config); interrupt() "
        "returns it",
    ]
    assert '  notes     ["a", "b"]' in lines  # other channels: as before
    pending = lines.index("pending writes (1)")
    assert lines[pending + 1] == "  tools  messages  1 message: 1 tool"
    assert lines[pending + 3:pending + 5] == ["    tool       f · call c · success",
                                              "               ok"]
    assert "additional_kwargs" not in "\n".join(lines)


def test_resuming_several_interrupts_or_a_human_review_says_what_it_takes() -> None:
    assert chat.resume_hint([("i-1", "a?"), ("i-2", "b?")]) == (
        'resume: graph.invoke(Command(resume={"i-1": <value>, "i-2": <value>}), config): '
        "one value per id")
    review = {"action_requests": [{"name": "refund", "args": {}}],
              "review_configs": [{"action_name": "refund",
                                  "allowed_decisions": ["approve", "reject"]}]}
    assert '{"decisions": [{"type": "approve|reject"}, …]} (one per action, 1)' in (
        chat.resume_hint([("i-1", review)]))
    inbox = [{"action_request": {"action": "send", "args": {}},
              "config": {"allow_accept": True, "allow_respond": True}}]
    assert '[{"type": "accept|response", "args": …}]' in chat.resume_hint([("i-1", inbox)])
    d = _detail([], [ShownInterrupt("t", "ask", "i-1", "ok?", None, resumed=True)])
    assert not any("resume:" in line for line in render.detail_text(d, PLAIN))  # done


# -- diff ----------------------------------------------------------------------------------


def test_messages_are_matched_by_id_then_by_position() -> None:
    old = [HumanMessage("hi", id="h-1"), AIMessage("draft", id="ai-1"),
           HumanMessage("no id, first"), AIMessage("gone", id="ai-x")]
    new = [HumanMessage("hi", id="h-1"), AIMessage("final answer", id="ai-1"),
           HumanMessage("no id, edited"), HumanMessage("more", id="h-2"),
           ToolMessage("r", tool_call_id="c", id="t-1")]
    md = chat.diff_messages(old, new)
    assert md is not None and md.unchanged == 1
    assert [(c.change, c.index, c.turn.text) for c in md.changes] == [
        ("removed", 3, "gone"),
        ("changed", 1, "final answer"), ("changed", 2, "no id, edited"),
        ("added", 3, "more"), ("added", 4, "r")]
    changed = [c for c in md.changes if c.change == "changed"]
    assert [(c.matched_by, c.before_index, c.fields) for c in changed] == [
        ("id", 1, ("content",)), ("position", 2, ("content",))]
    assert md.summary() == "4 -> 5 messages: 2 added, 2 changed, 1 removed"
    doc = md.doc()
    assert [a["id"] for a in doc["added"]] == ["h-2", "t-1"]
    assert doc["changed"][0]["from"]["content"] == "draft"
    assert doc["changed"][0]["to"]["content"] == "final answer"
    assert chat.diff_messages(["a"], ["a", "b"]) is None  # not messages: the list diff
    assert chat.diff_messages(None, [HumanMessage("x")]) is not None


def _event(cid: str, parent: str | None, versions: dict[str, str]) -> CheckpointEvent:
    return CheckpointEvent(
        thread_id="t", checkpoint_ns="", checkpoint_id=cid, parent_checkpoint_id=parent,
        written_at_ms=0, checkpoint=SERDE.dumps_typed({"channel_versions": versions}),
        metadata=SERDE.dumps_typed({"source": "loop"}), blobs={}, size=0,
        channel_versions=versions,
    )


def _namespace(channels: dict[str, dict[str, Any]]) -> Namespace:
    """Checkpoints a, b, c (in that order), each with ``channels[cid]``: channel -> value."""
    ns = Namespace()
    parent = None
    for cid in ("a", "b", "c"):
        versions = {ch: f"{cid}.{ch}" for ch in channels.get(cid, {})}
        for ch, value in channels.get(cid, {}).items():
            ns.blobs[(ch, versions[ch])].append((cid, SERDE.dumps_typed(value)))
        ns.checkpoints[cid] = _event(cid, parent, versions)
        parent = cid
    return ns


def test_diff_shows_the_added_messages_as_turns() -> None:
    class _Journal:  # what diff() reads of a browse.Journal
        thread_id, checkpoint_ns = "t", ""

        def __init__(self, ns: Namespace) -> None:
            self.ns = ns

        def find(self, ref: str) -> CheckpointEvent:
            return self.ns.checkpoints[ref]

    ns = _namespace({"a": {"messages": CHAT[:2], "turns": 1}, "b": {"messages": CHAT}})
    d = diff(_Journal(ns), "a", "b", SERDE)
    (change, removed) = sorted(d.changes, key=lambda c: c.channel)
    assert change.summary == "2 -> 5 messages: 3 added"
    assert len(change.detail["appended"]) == 3  # the list diff's keys stay
    assert [m["id"] for m in change.detail["messages"]["added"]] == ["ai-1", "t-1", "ai-2"]
    assert removed.channel == "turns" and removed.messages is None
    lines = render.diff_text(d, PLAIN, 80)
    row = next(i for i, line in enumerate(lines) if line.split()[:2] == ["~", "messages"])
    assert lines[row + 1:row + 5] == [
        '     + assistant  → lookup_order(order_id="A1001", full=true)  call_1',
        "     + tool       lookup_order · call call_1 · success",
        "                  shipped with UPS",
        "     + assistant  Your order shipped with UPS.",
    ]


# -- which node a checkpoint was written by ------------------------------------------------


def test_a_send_task_is_named_by_the_send_it_ran() -> None:
    sends = [Send("tools", {"call": 1}), Send("grade", {"doc": 2})]
    assert task_node("~__pregel_push, 0000000001, 0000000000", sends) == "grade"
    assert task_node("~__pregel_push, 0000000005, 0000000000", sends) is None
    assert task_node("~__pregel_pull, agent", []) == "agent"
    # A functional-API task is its caller's work.
    assert task_node("~__pregel_push, ~__pregel_pull, wf, 0000000000, 0000000001", []) == "wf"
    assert task_node("~__interrupt__, 0000000000", sends) is None  # update_state

    ns = _namespace({"a": {}, "b": {"__pregel_tasks": sends}, "c": {}})
    ns.writes["b"] = [FoldedWrite("t1", "messages", SERDE.dumps_typed([]),
                                  "~__pregel_push, 0000000000, 0000000000", 0),
                      FoldedWrite("t2", "docs", SERDE.dumps_typed([]),
                                  "~__pregel_push, 0000000001, 0000000000", 0)]
    nodes = TaskNodes(ns, SERDE)
    assert nodes("b", "~__pregel_push, 0000000000, 0000000000") == "tools"
    assert writers(ns, ns.checkpoints["c"], {"source": "loop"}, SERDE, nodes) == (
        ["grade", "tools"], "pending_writes")
    # durability="exit" saved no pending writes: the parent's Sends still say who ran.
    ns.writes.clear()
    assert writers(ns, ns.checkpoints["c"], {"source": "loop"}, SERDE) == (
        ["grade", "tools"], "tasks")
    # Sends that cannot be read (an encrypted value, say): the task stays "(send)".
    unreadable = _namespace({"a": {}, "b": {}, "c": {}})
    unreadable.writes["b"] = [FoldedWrite("t1", "messages", SERDE.dumps_typed([]),
                                          "~__pregel_push, 0000000000, 0000000000", 0)]
    assert writers(unreadable, unreadable.checkpoints["c"], {"source": "loop"}, SERDE) == (
        ["(send)"], "pending_writes")
