"""``checkpoint-journal threads / history / show / diff`` against the local deployment.

One deployment per backend (module scope), three threads written by real LangGraph
graphs and folded by the real projector (``drain``): an encrypted one first, then a
two-turn chat whose knowledge base (~100 KB of random hex) the projector offloads to S3,
then an approval that stops at an interrupt. The commands run in-process through
``main`` with the environment that ``checkpoint-journal local`` prints. A tool-calling
agent (LangGraph's prebuilt one, on a scripted chat model) runs on the session's moto
deployment for what ``show`` and ``diff`` make of a conversation.
"""

from __future__ import annotations

import datetime
import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.prebuilt import create_react_agent
from langgraph.types import Command, interrupt

from checkpoint_journal.local import LocalDeployment
from tests.integration.cli_runner import Result, run_cli
from tests.integration.graphs import build_approval, build_chat
from tests.integration.test_projector import kb_text
from tests.integration.test_saver_behaviour import AesGcmCipher

BACKENDS = ["moto", "dynamodb-local"]


@dataclass
class World:
    dep: LocalDeployment
    secret: str
    chat: str
    approval: str
    kb: str
    chat_ids: list[str]
    """Checkpoint ids newest first, as LangGraph's get_state_history gives them."""
    approval_ids: list[str]


def _ids(graph: Any, thread: str) -> list[str]:
    cfg = {"configurable": {"thread_id": thread}}
    return [s.config["configurable"]["checkpoint_id"] for s in graph.get_state_history(cfg)]


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    run = uuid.uuid4().hex[:8]
    secret, chat, approval = f"secret-{run}", f"chat-{run}", f"approval-{run}"
    kb = kb_text(100_000)
    with LocalDeployment(backend=request.param) as dep:
        with dep.saver(serde=EncryptedSerializer(AesGcmCipher(os.urandom(32)))) as enc:
            build_chat(enc).invoke({"messages": ["my pin is 1234"]},
                                   {"configurable": {"thread_id": secret}})
        with dep.saver() as saver:
            graph = build_chat(saver)
            cfg = {"configurable": {"thread_id": chat}}
            graph.invoke({"messages": ["hello"], "notes": [kb]}, cfg)
            graph.invoke({"messages": ["again"]}, cfg)
            approve = build_approval(saver)
            approve.invoke({"messages": ["refund please"]},
                           {"configurable": {"thread_id": approval}})
            chat_ids, approval_ids = _ids(graph, chat), _ids(approve, approval)
        dep.drain(timeout=30)  # the projector's views, S3 objects and ThreadIndex heads
        yield World(dep, secret, chat, approval, kb, chat_ids, approval_ids)


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Any:
    """``cli("show", thread)``: main() with the environment `checkpoint-journal local`
    prints (pass env=... to change it), returning exit code, stdout and stderr."""

    def call(*argv: str, env: dict[str, str | None] | None = None) -> Result:
        return run_cli(world.dep, monkeypatch, capsys, argv, env, unset=["NO_COLOR"])

    return call


# -- threads --------------------------------------------------------------------------------


def test_threads_newest_first_with_counts(world: World, cli: Any) -> None:
    r = cli("threads", "--json")
    assert r.code == 0, r.err
    rows = r.json()["threads"]
    assert [t["thread_id"] for t in rows] == [world.approval, world.chat, world.secret]
    by_id = {t["thread_id"]: t for t in rows}
    assert by_id[world.chat]["checkpoints"] == 6  # two turns: input, __start__, reply each
    assert by_id[world.approval]["checkpoints"] == 3  # stopped at the interrupt
    assert by_id[world.secret]["checkpoints"] == 3
    assert all(t["namespaces"] == 1 and t["namespace_names"] == [""] for t in rows)
    assert by_id[world.chat]["step"] == 4 and by_id[world.approval]["step"] == 1
    assert by_id[world.chat]["latest_checkpoint_id"] == world.chat_ids[0]
    assert by_id[world.approval]["latest_checkpoint_id"] == world.approval_ids[0]
    stamps = [t["last_activity_ms"] for t in rows]
    assert stamps == sorted(stamps, reverse=True)
    assert rows[0]["last_activity"].endswith("Z")

    text = cli("threads", "--limit", "2")
    assert text.code == 0 and text.err == ""
    lines = text.out.splitlines()
    assert lines[0].split()[:3] == ["THREAD", "LAST", "ACTIVITY"]
    assert [line.split()[0] for line in lines[1:]] == [world.approval, world.chat]
    assert lines[1].split()[3:6] == ["3", "1", "1"]  # checkpoints, namespaces, step
    assert lines[2].split()[3:6] == ["6", "1", "4"]
    assert "\x1b[" not in text.out  # not a terminal: no colour


def test_connection_flags_instead_of_the_environment(world: World, cli: Any) -> None:
    dep = world.dep
    r = cli("threads", "--json", "--table", dep.table_name, "--bucket", dep.bucket,
            "--endpoint-url", dep.endpoint_url, "--region", dep.region_name, env={
                "CHECKPOINT_JOURNAL_TABLE": None, "CHECKPOINT_JOURNAL_BUCKET": None,
                "AWS_ENDPOINT_URL_DYNAMODB": None, "AWS_REGION": None,
                "AWS_DEFAULT_REGION": None,
            })
    assert r.code == 0, r.err
    assert len(r.json()["threads"]) == 3


# -- history --------------------------------------------------------------------------------


def test_history_lists_checkpoints_newest_first(world: World, cli: Any) -> None:
    r = cli("history", world.chat, "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert (doc["thread_id"], doc["checkpoint_ns"]) == (world.chat, "")
    rows = doc["checkpoints"]
    assert [c["checkpoint_id"] for c in rows] == world.chat_ids
    assert [c["step"] for c in rows] == [4, 3, 2, 1, 0, -1]
    assert [c["source"] for c in rows] == ["loop", "loop", "input", "loop", "loop", "input"]
    # LangGraph 1.x: the nodes come from the parent's pending writes (their task paths).
    assert [c["written_by"] for c in rows] == [
        ["reply"], ["__start__"], ["__input__"], ["reply"], ["__start__"], ["__input__"]]
    assert [c["written_by_from"] for c in rows] == [
        "pending_writes", "pending_writes", "input"] * 2
    assert [c["parent_checkpoint_id"] for c in rows] == world.chat_ids[1:] + [None]
    for c in rows:
        created = datetime.datetime.fromisoformat(c["created_at"].replace("Z", "+00:00"))
        written = datetime.datetime.fromisoformat(c["written_at"].replace("Z", "+00:00"))
        assert abs((written - created).total_seconds()) < 30
        assert c["stored_bytes"]["journal"] > 0 and c["stored_bytes"]["view"] > 0
    # The first turn's input (and the __start__ write carrying it) hold the 100 KB.
    assert rows[-1]["stored_bytes"]["journal"] > 100_000
    assert rows[0]["stored_bytes"]["journal"] < 10_000

    text = cli("history", world.chat, "--limit", "2")
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert "2 of 6" in lines[0]
    assert lines[1].split()[:4] == ["CHECKPOINT", "STEP", "SOURCE", "WRITTEN"]
    assert [line.split()[:4] for line in lines[2:]] == [
        [world.chat_ids[0], "4", "loop", "reply"],
        [world.chat_ids[1], "3", "loop", "__start__"],
    ]


def test_history_shows_the_interrupt(world: World, cli: Any) -> None:
    rows = cli("history", world.approval, "--json").json()["checkpoints"]
    assert [c["checkpoint_id"] for c in rows] == world.approval_ids
    assert rows[0]["interrupts"] == 1 and rows[0]["pending_writes"] == 1
    text = cli("history", world.approval).out
    assert "1 write, 1 interrupt" in text.splitlines()[2]


# -- show -----------------------------------------------------------------------------------


def test_show_values_and_where_they_are_stored(world: World, cli: Any) -> None:
    r = cli("show", world.chat, "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["checkpoint_id"] == world.chat_ids[0]
    assert doc["metadata"]["step"] == 4 and doc["metadata"]["source"] == "loop"
    values = doc["values"]
    assert values["messages"]["value"] == ["hello", "echo:hello", "again", "echo:again"]
    assert values["turns"]["value"] == 2
    assert values["notes"]["value"] == [world.kb]  # --json: whole
    assert values["messages"]["stored"]["view"] == "inline"
    notes = values["notes"]["stored"]
    assert notes["view"] == "s3"
    assert notes["s3_key"].startswith("blobs/")
    assert notes["s3_uri"] == f"s3://{world.dep.bucket}/{notes['s3_key']}"
    head = world.dep.client("s3").head_object(Bucket=world.dep.bucket, Key=notes["s3_key"])
    assert head["ContentLength"] == notes["s3_bytes"]
    # Written with the first turn's checkpoint, referenced by every later one.
    assert notes["journal_checkpoint_id"] == world.chat_ids[4]
    assert values["messages"]["stored"]["journal_checkpoint_id"] == world.chat_ids[0]
    assert doc["pending_writes"] == [] and doc["interrupts"] == []

    text = cli("show", world.chat)
    assert text.code == 0, text.err
    assert notes["s3_uri"] in text.out
    assert world.kb[:30] in text.out and world.kb not in text.out  # cut on a terminal
    assert "list of 1 item, 100,004 chars" in text.out
    assert '["hello", "echo:hello", "again", "echo:again"]' in text.out


def test_show_pending_writes_and_interrupt(world: World, cli: Any) -> None:
    doc = cli("show", world.approval, "--json").json()
    assert doc["checkpoint_id"] == world.approval_ids[0]
    (write,) = doc["pending_writes"]
    assert (write["channel"], write["node"]) == ("__interrupt__", "approval")
    (interrupt,) = doc["interrupts"]
    assert interrupt["value"] == {"question": "approve?", "turn": 1}
    assert interrupt["node"] == "approval" and not interrupt["resumed"]
    assert interrupt["id"]

    # An older checkpoint by id prefix: the reply node's results are its pending writes.
    older = cli("show", world.chat, world.chat_ids[1][:30], "--json").json()
    assert older["checkpoint_id"] == world.chat_ids[1]
    assert {(w["node"], w["channel"]) for w in older["pending_writes"]} == {
        ("reply", "messages"), ("reply", "turns")}

    text = cli("show", world.approval).out
    assert "interrupts (1)" in text and "pending" in text
    assert '{"question": "approve?", "turn": 1}' in text
    assert "__interrupt__" in text


def test_show_reports_values_it_cannot_deserialize(world: World, cli: Any) -> None:
    r = cli("show", world.secret, "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert set(doc["values"]) == {"messages", "turns"}
    for v in doc["values"].values():
        assert v["value"] is None and "EncryptedSerializer" in v["error"]
    assert "EncryptedSerializer" in doc["metadata_error"]
    assert doc["metadata"]["step"] == 1  # from the plain md attribute
    text = cli("show", world.secret)
    assert text.code == 0 and text.out.count("EncryptedSerializer") >= 2
    # Task paths are not encrypted: history still says which node wrote what.
    rows = cli("history", world.secret, "--json").json()["checkpoints"]
    assert rows[0]["written_by"] == ["reply"]


# -- diff -----------------------------------------------------------------------------------


def test_diff_reports_the_channels_that_changed(world: World, cli: Any) -> None:
    latest, before = world.chat_ids[0], world.chat_ids[1]
    r = cli("diff", world.chat, before, latest, "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert (doc["from"]["checkpoint_id"], doc["to"]["checkpoint_id"]) == (before, latest)
    changes = {c["channel"]: c for c in doc["changes"]}
    assert changes["messages"]["change"] == "changed"
    assert changes["messages"]["detail"]["appended"] == ["echo:again"]
    assert changes["turns"]["detail"] == {"kind": "value", "from": 1, "to": 2}
    assert "notes" in doc["unchanged"] and "notes" not in changes

    first = cli("diff", world.chat, world.chat_ids[-1], latest, "--json").json()
    kinds = {c["channel"]: c["change"] for c in first["changes"]}
    assert kinds["notes"] == kinds["messages"] == kinds["turns"] == "added"
    assert kinds["__start__"] == "removed"

    text = cli("diff", world.chat, before, latest)
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert any(line.split()[:3] == ["~", "messages", "changed"] and "appended 1 item" in line
               for line in lines)
    assert any(line.split()[:3] == ["~", "turns", "changed"] and "1 -> 2" in line
               for line in lines)
    assert "unchanged: notes" in text.out


# -- exit codes -----------------------------------------------------------------------------


def test_not_found_exits_3(world: World, cli: Any) -> None:
    for argv in (
        ("show", "no-such-thread"),
        ("history", "no-such-thread", "--json"),
        ("history", world.chat, "--ns", "no-such-ns"),
        ("show", world.chat, "ffffffff"),
        ("diff", world.chat, world.chat_ids[0], "ffffffff"),
    ):
        r = cli(*argv)
        assert r.code == 3, (argv, r)
        assert r.out == "" and r.err.startswith("checkpoint-journal: ")
        assert "Traceback" not in r.err
    assert "its namespaces: ''" in cli("history", world.chat, "--ns", "x").err


def test_missing_table_exits_2_and_a_missing_one_exits_1(world: World, cli: Any) -> None:
    r = cli("threads", env={"CHECKPOINT_JOURNAL_TABLE": None})
    assert r.code == 2
    assert "no table: pass --table or set CHECKPOINT_JOURNAL_TABLE" in r.err
    r = cli("show", world.chat, "--table", "no-such-table")
    assert r.code == 1
    assert "'no-such-table' was not found" in r.err and "Traceback" not in r.err


def test_usage_errors_exit_2(world: World, cli: Any) -> None:
    for argv in (["history"], ["threads", "--limit", "0"], ["diff", world.chat, "x"]):
        with pytest.raises(SystemExit) as exit_:
            cli(*argv)
        assert exit_.value.code == 2
    r = cli("show", world.chat, world.chat_ids[0][:4])  # every id shares this prefix
    assert r.code == 2 and "matches 6 checkpoints" in r.err


# -- a tool-calling agent, read as a conversation -------------------------------------------


class _ScriptedModel(FakeMessagesListChatModel):
    """A chat model that answers from its script; the agent binds its tools to it."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id}: blender, $249.00, delivered on Monday"


@tool
def refund(order_id: str, amount: float) -> str:
    """Refund an order, once a manager has approved it."""
    decision = interrupt({"question": "Approve this refund?", "amount": amount})
    return f"refunded ${amount:.2f} for {order_id}" if decision["approved"] else "declined"


_FINAL = ("Done: $249.00 is on its way back to your card, and a return label for the "
          "blender is in your inbox. Anything else I can help with today? ") * 5


def _agent(saver: Any) -> Any:
    script = [
        AIMessage("", id="ai-1", tool_calls=[
            {"name": "lookup_order", "args": {"order_id": "A1002"}, "id": "call_lookup"}]),
        AIMessage("Found it. Asking a manager to approve the refund.", id="ai-2",
                  tool_calls=[{"name": "refund", "args": {"order_id": "A1002", "amount": 249.0},
                               "id": "call_refund"}]),
        AIMessage(_FINAL, id="ai-3"),
    ]
    with warnings.catch_warnings():  # moved to langchain.agents; it still routes tool
        warnings.simplefilter("ignore")  # calls through Send, as create_agent does
        return create_react_agent(_ScriptedModel(responses=script), [lookup_order, refund],
                                  checkpointer=saver)


def test_show_and_diff_read_a_tool_calling_agent_as_a_conversation(
    moto_deployment: LocalDeployment, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dep, thread = moto_deployment, f"agent-{uuid.uuid4().hex[:8]}"
    cfg = {"configurable": {"thread_id": thread}}

    def cli(*argv: str) -> Result:
        r = run_cli(dep, monkeypatch, capsys, argv, unset=["NO_COLOR"])
        assert r.code == 0, r.err
        return r

    with dep.saver() as saver:
        agent = _agent(saver)
        agent.invoke({"messages": [HumanMessage("Please refund order A1002, it arrived broken.",
                                                id="h-1")]}, cfg)
        waiting = agent.get_state(cfg).config["configurable"]["checkpoint_id"]

        # Stopped at the refund tool's interrupt: who waits, for what, how to resume.
        shown = cli("show", thread).out
        lines = [line.rstrip() for line in shown.splitlines()]
        assert "  step    3 (loop), written by agent" in lines
        turns = lines[lines.index("values (2 channels)"):lines.index("pending writes (1)")]
        assert [line.split()[0] for line in turns if line.startswith("    ") and line[4] != " "
                ] == ["user", "assistant", "tool", "assistant", "interrupt"]
        assert "    user       Please refund order A1002, it arrived broken." in lines
        assert '    assistant  → lookup_order(order_id="A1002")  call_lookup' in lines
        tool_at = lines.index("    tool       lookup_order · call call_lookup · success")
        assert lines[tool_at + 1].strip() == "order A1002: blender, $249.00, delivered on Monday"
        assert '→ refund(order_id="A1002", amount=249.0)  call_refund' in shown
        assert "    interrupt  tools is waiting" in lines
        assert '{"question": "Approve this refund?", "amount": 249.0}' in shown
        assert "resume: graph.invoke(Command(resume=<value>), config)" in shown
        assert any(line.split()[:2] == ["pending", "tools"] for line in lines)
        assert "additional_kwargs" not in shown  # no message as raw JSON
        assert lines[0].startswith(f"checkpoint {waiting} ")

        agent.invoke(Command(resume={"approved": True}), cfg)
        ids = _ids(agent, thread)

    # The tool node runs as Send tasks: its checkpoints are labelled with the node.
    history = cli("history", thread).out.splitlines()
    assert [line.split()[3] for line in history[2:]] == [
        "agent", "tools", "agent", "tools", "agent", "__start__", "__input__"]

    # After the resume: the messages the diff says were added, as turns.
    diff = cli("diff", thread, waiting, ids[0]).out.splitlines()
    assert any(line.split()[:3] == ["~", "messages", "changed"]
               and line.endswith("4 -> 6 messages: 2 added") for line in diff)
    added = [line.strip() for line in diff if line.lstrip().startswith("+ ")]
    assert len(added) == 2 and added[0] == "+ tool       refund · call call_refund · success"
    assert added[1].startswith("+ assistant  Done: $249.00 is on its way back to your card")
    assert "refunded $249.00 for A1002" in "\n".join(diff)
    assert any("more characters (--json has all" in line for line in diff)  # cut
    changes = cli("diff", thread, waiting, ids[0], "--json").json()["changes"]
    messages = next(c for c in changes if c["channel"] == "messages")["detail"]
    assert [m["role"] for m in messages["messages"]["added"]] == ["tool", "assistant"]
    assert messages["messages"]["added"][1]["id"] == "ai-3"
    assert messages["messages"]["added"][1]["message"]["content"] == _FINAL  # whole
    assert messages["messages"]["removed"] == messages["messages"]["changed"] == []
    assert len(messages["appended"]) == 2  # the list diff's keys are still there
