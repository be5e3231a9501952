"""The long-conversation workload: a deterministic tool-calling chat agent (no LLM).

Each turn is one ``invoke`` with the user's message, then three nodes, each one
super-step, as a real tool-calling agent takes them:

    agent   an AIMessage with one tool call (``search_orders``);
    tool    the ToolMessage with the tool's result, ~1.5 KB of text;
    answer  the final AIMessage, ~1 KB of text.

So the ``messages`` channel grows by four messages (~2.7 KB of text) per turn, and a
saver that stores the whole channel at every step writes a quadratic amount.

The text is made of fixed-seed pseudo-random words from a 4,096-word vocabulary (itself
made of random syllables), so a compressor shrinks it about as much as it would shrink
prose, not to nothing. Message and tool-call ids are explicit, so the final states can
be compared across savers.

Two state variants, the same nodes:

- ``plain``: ``messages: Annotated[list[AnyMessage], add_messages]``;
- ``delta``: ``messages: Annotated[list[AnyMessage], DeltaChannel(fold_add_messages)]``,
  LangGraph's delta channel (beta): checkpoints store only a sentinel, and a full
  snapshot every ``snapshot_frequency`` updates (default 100, kept here: four updates a
  turn, so one snapshot every 25 turns); reads rebuild the value from ancestors' writes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

__all__ = [
    "ANSWER_CHARS",
    "MESSAGES_PER_TURN",
    "THREAD_ID",
    "TOOL_RESULT_CHARS",
    "VARIANTS",
    "Variant",
    "build_graph",
    "expected_messages",
    "fold_add_messages",
    "turn_input",
]

THREAD_ID = "long-conversation-1"
TOOL_RESULT_CHARS = 1536
ANSWER_CHARS = 1024
MESSAGES_PER_TURN = 4
TOOL_NAME = "search_orders"

Variant = Literal["plain", "delta"]
VARIANTS: tuple[Variant, ...] = ("plain", "delta")


# -- deterministic text -------------------------------------------------------------------


@lru_cache(maxsize=1)
def _vocabulary() -> tuple[str, ...]:
    rng = random.Random(12)
    syllables = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]
    words: set[str] = set()
    while len(words) < 4096:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))))
    return tuple(sorted(words))


def words(seed: str, chars: int) -> str:
    """About ``chars`` characters of pseudo-random words, the same for the same seed."""
    rng = random.Random(seed)
    vocab = _vocabulary()
    out: list[str] = []
    size = 0
    while size < chars:
        w = rng.choice(vocab)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:chars]


# -- messages -----------------------------------------------------------------------------


def turn_input(turn: int) -> dict[str, Any]:
    """The input of turn ``turn`` (0-based): the user's message."""
    text = f"Question {turn + 1}: " + words(f"user-{turn}", 120)
    return {"messages": [HumanMessage(content=text, id=f"human-{turn}")]}


def _tool_call_id(turn: int) -> str:
    return f"call-{turn:05d}"


def _agent_message(turn: int) -> AIMessage:
    return AIMessage(
        content="",
        id=f"ai-call-{turn}",
        tool_calls=[{
            "name": TOOL_NAME,
            "args": {"query": words(f"query-{turn}", 60), "limit": 5},
            "id": _tool_call_id(turn),
            "type": "tool_call",
        }],
    )


def _tool_message(turn: int) -> ToolMessage:
    return ToolMessage(
        content=words(f"tool-{turn}", TOOL_RESULT_CHARS),
        tool_call_id=_tool_call_id(turn),
        name=TOOL_NAME,
        id=f"tool-{turn}",
    )


def _answer_message(turn: int) -> AIMessage:
    return AIMessage(content=words(f"answer-{turn}", ANSWER_CHARS), id=f"ai-answer-{turn}")


def expected_messages(turns: int) -> list[AnyMessage]:
    """The ``messages`` channel after ``turns`` turns."""
    out: list[AnyMessage] = []
    for t in range(turns):
        out += [
            turn_input(t)["messages"][0], _agent_message(t), _tool_message(t),
            _answer_message(t),
        ]
    return out


# -- state and graph ----------------------------------------------------------------------

# The nodes' state is typed Any, not the TypedDict: StateGraph would add a node's annotated
# state type as a second schema, and the two variants' ``messages`` channels differ.


def fold_add_messages(state: Sequence[AnyMessage], writes: Sequence[Any]) -> list[AnyMessage]:
    """DeltaChannel's reducer: ``add_messages`` folded over a batch of writes, oldest
    first (batching-invariant, as DeltaChannel requires: add_messages is a merge by id)."""
    value: list[AnyMessage] = list(state)
    for write in writes:
        value = add_messages(value, write)  # type: ignore[arg-type,assignment]
    return value


class PlainState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


class DeltaState(TypedDict):
    messages: Annotated[list[AnyMessage], DeltaChannel(fold_add_messages)]


def _turn(state: Any) -> int:
    """The current turn (0-based): the number of user messages, minus one."""
    return sum(isinstance(m, HumanMessage) for m in state["messages"]) - 1


def agent(state: Any) -> dict[str, Any]:
    return {"messages": [_agent_message(_turn(state))]}


def tool(state: Any) -> dict[str, Any]:
    last = state["messages"][-1]
    if not isinstance(last, AIMessage) or not last.tool_calls:
        raise RuntimeError("tool node reached without a pending tool call")
    return {"messages": [_tool_message(_turn(state))]}


def answer(state: Any) -> dict[str, Any]:
    return {"messages": [_answer_message(_turn(state))]}


def build_graph(variant: Variant) -> StateGraph[Any]:
    """START -> agent -> tool -> answer -> END, with the variant's state."""
    schema: type[Any] = PlainState if variant == "plain" else DeltaState
    g: StateGraph[Any] = StateGraph(schema)
    g.add_node("agent", agent)
    g.add_node("tool", tool)
    g.add_node("answer", answer)
    g.add_edge(START, "agent")
    g.add_edge("agent", "tool")
    g.add_edge("tool", "answer")
    g.add_edge("answer", END)
    return g
