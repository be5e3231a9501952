"""Graphs and scenarios shared by the graph-level tests.

Each scenario drives a real LangGraph graph through a checkpointer and returns a
transcript of everything a user can observe (states, interrupts, history). The tests
run a scenario on JournalSaver and on LangGraph's InMemorySaver and compare the two.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt


class ChatState(TypedDict, total=False):
    messages: Annotated[list[str], operator.add]
    turns: int
    approved: bool | None
    notes: Annotated[list[str], operator.add]


def _reply(state: ChatState) -> dict[str, Any]:
    last = state["messages"][-1]
    return {"messages": [f"echo:{last}"], "turns": state.get("turns", 0) + 1}


def _approval(state: ChatState) -> dict[str, Any]:
    decision = interrupt({"question": "approve?", "turn": state.get("turns", 0)})
    return {"approved": bool(decision.get("approved")), "notes": [f"decided:{decision}"]}


class SubState(TypedDict, total=False):
    notes: Annotated[list[str], operator.add]


def _sub_step(state: SubState) -> dict[str, Any]:
    return {"notes": [f"sub:{len(state.get('notes', []))}"]}


def _sub_ask(state: SubState) -> dict[str, Any]:
    answer = interrupt("sub needs input")
    return {"notes": [f"sub-answer:{answer}"]}


def build_chat(checkpointer: BaseCheckpointSaver[Any]) -> Any:
    g = StateGraph(ChatState)
    g.add_node("reply", _reply)
    g.add_edge(START, "reply")
    g.add_edge("reply", END)
    return g.compile(checkpointer=checkpointer)


def build_approval(checkpointer: BaseCheckpointSaver[Any]) -> Any:
    g = StateGraph(ChatState)
    g.add_node("reply", _reply)
    g.add_node("approval", _approval)
    g.add_edge(START, "reply")
    g.add_edge("reply", "approval")
    g.add_edge("approval", END)
    return g.compile(checkpointer=checkpointer)


def build_with_subgraph(checkpointer: BaseCheckpointSaver[Any]) -> Any:
    sub = StateGraph(SubState)
    sub.add_node("step", _sub_step)
    sub.add_node("ask", _sub_ask)
    sub.add_edge(START, "step")
    sub.add_edge("step", "ask")
    sub.add_edge("ask", END)
    g = StateGraph(ChatState)
    g.add_node("reply", _reply)
    g.add_node("sub", sub.compile())
    g.add_edge(START, "reply")
    g.add_edge("reply", "sub")
    g.add_edge("sub", END)
    return g.compile(checkpointer=checkpointer)


def snapshot(state: Any) -> dict[str, Any]:
    """What a user sees of a StateSnapshot, without ids and timestamps."""
    return {
        "values": state.values,
        "next": tuple(state.next),
        "step": state.metadata.get("step") if state.metadata else None,
        "source": state.metadata.get("source") if state.metadata else None,
        "interrupts": [i.value for i in state.interrupts],
        "has_parent": state.parent_config is not None,
    }


def result(value: Any) -> Any:
    """An invoke result without interrupt ids (they derive from checkpoint ids)."""
    if isinstance(value, dict) and "__interrupt__" in value:
        value = {**value, "__interrupt__": [i.value for i in value["__interrupt__"]]}
    return value


def history(graph: Any, config: dict[str, Any]) -> list[dict[str, Any]]:
    return [snapshot(s) for s in graph.get_state_history(config)]


def scenario_multi_turn(cp: BaseCheckpointSaver[Any], thread: str, durability: str) -> list[Any]:
    graph = build_chat(cp)
    config = {"configurable": {"thread_id": thread}}
    out: list[Any] = []
    for i in range(3):
        out.append(result(graph.invoke({"messages": [f"m{i}"]}, config, durability=durability)))
    out.append(snapshot(graph.get_state(config)))
    out.append(history(graph, config))
    return out


def scenario_interrupt(cp: BaseCheckpointSaver[Any], thread: str, durability: str) -> list[Any]:
    graph = build_approval(cp)
    config = {"configurable": {"thread_id": thread}}
    out: list[Any] = [result(graph.invoke({"messages": ["refund please"]}, config, durability=durability))]
    out.append(snapshot(graph.get_state(config)))
    out.append(result(graph.invoke(Command(resume={"approved": True}), config, durability=durability)))
    out.append(snapshot(graph.get_state(config)))
    out.append(history(graph, config))
    return out


def scenario_subgraph(cp: BaseCheckpointSaver[Any], thread: str, durability: str) -> list[Any]:
    graph = build_with_subgraph(cp)
    config = {"configurable": {"thread_id": thread}}
    out: list[Any] = [result(graph.invoke({"messages": ["hi"]}, config, durability=durability))]
    state = graph.get_state(config, subgraphs=True)
    out.append(snapshot(state))
    out.append([snapshot(t.state) for t in state.tasks if t.state is not None])
    out.append(result(graph.invoke(Command(resume="yes"), config, durability=durability)))
    out.append(snapshot(graph.get_state(config)))
    out.append(history(graph, config))
    return out


def scenario_time_travel(cp: BaseCheckpointSaver[Any], thread: str, durability: str) -> list[Any]:
    """update_state, then fork from an earlier checkpoint and continue there."""
    graph = build_chat(cp)
    config = {"configurable": {"thread_id": thread}}
    for i in range(3):
        result(graph.invoke({"messages": [f"m{i}"]}, config, durability=durability))
    out: list[Any] = []
    graph.update_state(config, {"messages": ["edited"], "turns": 100})
    out.append(snapshot(graph.get_state(config)))
    states = list(graph.get_state_history(config))
    # The checkpoint after the first turn's reply: two messages, turns == 1.
    earlier = next(s for s in states if s.values.get("turns") == 1 and not s.next)
    fork_config = graph.update_state(earlier.config, {"messages": ["forked"]})
    out.append(result(graph.invoke({"messages": ["after-fork"]}, fork_config, durability=durability)))
    out.append(snapshot(graph.get_state(config)))
    out.append(len(list(graph.get_state_history(config))))
    # The old branch is still readable by its id.
    out.append(snapshot(graph.get_state(earlier.config)))
    return out


async def ascenario_interrupt(cp: BaseCheckpointSaver[Any], thread: str, durability: str) -> list[Any]:
    graph = build_approval(cp)
    config = {"configurable": {"thread_id": thread}}
    out: list[Any] = [result(await graph.ainvoke({"messages": ["refund please"]}, config, durability=durability))]
    out.append(snapshot(await graph.aget_state(config)))
    out.append(result(await graph.ainvoke(Command(resume={"approved": False}), config, durability=durability)))
    out.append(snapshot(await graph.aget_state(config)))
    out.append([snapshot(s) async for s in graph.aget_state_history(config)])
    return out


async def ascenario_subgraph(cp: BaseCheckpointSaver[Any], thread: str, durability: str) -> list[Any]:
    graph = build_with_subgraph(cp)
    config = {"configurable": {"thread_id": thread}}
    out: list[Any] = [result(await graph.ainvoke({"messages": ["hi"]}, config, durability=durability))]
    state = await graph.aget_state(config, subgraphs=True)
    out.append(snapshot(state))
    out.append(result(await graph.ainvoke(Command(resume="ok"), config, durability=durability)))
    out.append([snapshot(s) async for s in graph.aget_state_history(config)])
    return out
