"""Every LangGraph feature that needs a checkpointer, on real graphs, compared with
LangGraph's own InMemorySaver as the reference, on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from checkpoint_journal.local import LocalDeployment

from . import graphs

DURABILITIES = ["sync", "async", "exit"]
SCENARIOS: dict[str, Callable[..., list[Any]]] = {
    "multi_turn": graphs.scenario_multi_turn,
    "interrupt": graphs.scenario_interrupt,
    "subgraph": graphs.scenario_subgraph,
    "time_travel": graphs.scenario_time_travel,
}


@pytest.mark.parametrize("durability", DURABILITIES)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_matches_in_memory_saver(
    deployment: LocalDeployment, name: str, durability: str
) -> None:
    scenario = SCENARIOS[name]
    thread = f"{name}-{durability}-{uuid.uuid4()}"
    with deployment.saver() as saver:
        ours = scenario(saver, thread, durability)
    reference = scenario(InMemorySaver(), thread, durability)
    assert ours == reference


ASYNC_SCENARIOS = {
    "interrupt": graphs.ascenario_interrupt,
    "subgraph": graphs.ascenario_subgraph,
}


@pytest.mark.parametrize("durability", DURABILITIES)
@pytest.mark.parametrize("name", list(ASYNC_SCENARIOS))
async def test_async_scenario_matches_in_memory_saver(
    deployment: LocalDeployment, name: str, durability: str
) -> None:
    scenario = ASYNC_SCENARIOS[name]
    thread = f"a-{name}-{durability}-{uuid.uuid4()}"
    saver = deployment.saver()
    ours = await scenario(saver, thread, durability)
    reference = await scenario(InMemorySaver(), thread, durability)
    assert ours == reference
    saver.close()


def test_multi_turn_state_survives_a_new_saver(deployment: LocalDeployment) -> None:
    """A second process (here: a fresh saver with fresh clients) sees the thread."""
    thread = f"durable-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread}}
    with deployment.saver() as first:
        graphs.build_chat(first).invoke({"messages": ["one"]}, config)
    with deployment.saver() as second:
        graph = graphs.build_chat(second)
        result = graph.invoke({"messages": ["two"]}, config)
    assert result["messages"] == ["one", "echo:one", "two", "echo:two"]
    assert result["turns"] == 2


def test_interrupt_resumed_by_another_worker(deployment: LocalDeployment) -> None:
    thread = f"hitl-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread}}
    from langgraph.types import Command

    with deployment.saver() as worker_a:
        paused = graphs.build_approval(worker_a).invoke({"messages": ["refund"]}, config)
    assert paused["__interrupt__"][0].value == {"question": "approve?", "turn": 1}
    with deployment.saver() as worker_b:
        graph = graphs.build_approval(worker_b)
        assert graph.get_state(config).next == ("approval",)
        done = graph.invoke(Command(resume={"approved": True}), config)
    assert done["approved"] is True
    assert done["notes"] == ["decided:{'approved': True}"]
