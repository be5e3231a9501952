"""The benchmark workload: a deterministic customer-support agent (no LLM, no network).

Every saver runs the *same* graph on the *same* inputs, so the request counts differ only
because of how each saver stores and reads checkpoints. Everything is deterministic:
message ids are explicit (``add_messages`` would otherwise mint random UUIDs, and the
final states could not be compared across savers), the knowledge base comes from a
fixed-seed PRNG, and no node looks at the clock.

State:
    messages        the conversation (``add_messages`` reducer), grows by 2 per turn;
    ticket          a small dict, rewritten by every node;
    knowledge_base  a LARGE value (``kb_size`` characters of base64 of random bytes),
                    set once by the first turn's input and never written again. This is
                    the channel that separates "store what changed" from "store
                    everything at every step".

Per turn: the input (a human message), then three nodes: triage -> lookup -> respond.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import StateSnapshot

__all__ = [
    "THREAD_ID",
    "SupportState",
    "build_graph",
    "knowledge_base",
    "snapshot_key",
    "turn_inputs",
]

THREAD_ID = "customer-42"

# The customer's side of the conversation; cycled when --turns exceeds its length.
_CUSTOMER_LINES: tuple[str, ...] = (
    "Hi, my order #1042 hasn't arrived yet.",
    "It was supposed to arrive last Tuesday.",
    "The tracking page says 'label created' only.",
    "Can you check with the carrier?",
    "I'm also being charged twice on my card.",
    "Both charges are for 59.90 EUR.",
    "Can you refund the duplicate charge?",
    "And can I change the delivery address?",
    "The new address is 12 Harbour Street.",
    "How long will the refund take?",
    "OK, please escalate the delivery issue.",
    "Thanks, that's all for now.",
)

# Keyword -> (category, priority): the triage "model".
_RULES: tuple[tuple[str, str, str], ...] = (
    ("charge", "billing", "high"),
    ("refund", "billing", "high"),
    ("escalate", "delivery", "urgent"),
    ("address", "account", "normal"),
    ("arrive", "delivery", "normal"),
    ("tracking", "delivery", "normal"),
    ("carrier", "delivery", "normal"),
    ("thanks", "closing", "low"),
)


class SupportState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    ticket: dict[str, Any]
    knowledge_base: str


def knowledge_base(size: int) -> str:
    """``size`` characters of base64 of fixed-seed random bytes.

    Random bytes so no compressor can shrink the value to nothing; note that base64
    carries 6 bits of entropy per 8-bit character, so gzip/zstd still take ~25% off.
    """
    raw = random.Random(0).randbytes(size * 3 // 4 + 3)
    return base64.b64encode(raw).decode("ascii")[:size]


def turn_inputs(turns: int, kb: str) -> list[SupportState]:
    """The input of each turn. Only the first one carries the knowledge base."""
    inputs: list[SupportState] = []
    for i in range(turns):
        line = _CUSTOMER_LINES[i % len(_CUSTOMER_LINES)]
        inp: SupportState = {"messages": [HumanMessage(content=line, id=f"human-{i}")]}
        if i == 0:
            inp["knowledge_base"] = kb
            inp["ticket"] = {"id": "T-1042", "status": "open", "kb_refs": []}
        inputs.append(inp)
    return inputs


def _last_human(state: SupportState) -> str:
    for m in reversed(state.get("messages", [])):
        if isinstance(m, HumanMessage):
            return str(m.content)
    return ""


def _turn(state: SupportState) -> int:
    return sum(isinstance(m, HumanMessage) for m in state.get("messages", []))


def triage(state: SupportState) -> SupportState:
    """Classify the latest customer message (keyword rules stand in for an LLM)."""
    text = _last_human(state).lower()
    category, priority = next(
        ((c, p) for kw, c, p in _RULES if kw in text), ("general", "normal")
    )
    ticket = dict(state["ticket"])
    ticket.update(category=category, priority=priority, turns=_turn(state))
    return {"ticket": ticket}


def lookup(state: SupportState) -> SupportState:
    """Retrieve an "article" from the knowledge base: reads the large channel, never
    writes it, so only the ticket changes."""
    kb = state["knowledge_base"]
    query = _last_human(state).encode()
    digest = hashlib.sha256(query + kb[:4096].encode()).digest()
    offset = int.from_bytes(digest[:4], "big") % max(1, len(kb) - 64)
    ticket = dict(state["ticket"])
    ticket["kb_refs"] = [*ticket.get("kb_refs", []), f"KB-{offset}:{kb[offset:offset + 16]}"]
    return {"ticket": ticket}


def respond(state: SupportState) -> SupportState:
    """Answer the customer; close the ticket on the closing message."""
    ticket = dict(state["ticket"])
    n = _turn(state)
    if ticket.get("category") == "closing":
        ticket["status"] = "resolved"
    answer = (
        f"[{ticket['id']} | {ticket.get('category')} / {ticket.get('priority')}] "
        f"Thanks for your message. I checked {ticket['kb_refs'][-1].split(':')[0]} "
        f"and updated your case (turn {n})."
    )
    return {"messages": [AIMessage(content=answer, id=f"ai-{n - 1}")], "ticket": ticket}


def build_graph() -> StateGraph[SupportState]:
    """START -> triage -> lookup -> respond -> END (compile with a checkpointer)."""
    g: StateGraph[SupportState] = StateGraph(SupportState)
    g.add_node("triage", triage)
    g.add_node("lookup", lookup)
    g.add_node("respond", respond)
    g.add_edge(START, "triage")
    g.add_edge("triage", "lookup")
    g.add_edge("lookup", "respond")
    g.add_edge("respond", END)
    return g


def snapshot_key(snap: StateSnapshot) -> tuple[Any, ...]:
    """What must be identical across savers for one StateSnapshot.

    Checkpoint ids, task ids, timestamps and channel versions legitimately differ
    (uuid6 / saver-specific version strings), so they are left out. The values, the
    next nodes, the step and source, and each pending task's name and result (which
    come back from the saver's stored pending writes) must match.
    """
    tasks: Sequence[Any] = snap.tasks
    return (
        snap.values,
        snap.next,
        snap.metadata.get("step") if snap.metadata else None,
        snap.metadata.get("source") if snap.metadata else None,
        tuple((t.name, t.result) for t in tasks),
    )
