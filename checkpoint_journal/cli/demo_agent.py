"""The demo's customer-support agent: a LangGraph graph of plain, deterministic Python
nodes (keyword classification, an in-code order table, a fake payment gateway), no LLM
and no network. ``demo`` runs it on the embedded deployment and narrates what the
checkpointer does.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt

__all__ = [
    "APPROVAL_THRESHOLD",
    "ORDERS",
    "GatewayDown",
    "NodeLog",
    "PaymentGateway",
    "SupportState",
    "build_graph",
]

# The whole "order system": enough variety for a status question, a refund that needs
# approval (above the threshold) and one that does not.
ORDERS: dict[str, dict[str, Any]] = {
    "A1001": {"item": "espresso machine", "total": 189.00, "status": "shipped",
              "carrier": "UPS 1Z999AA10123456784", "eta": "Thursday"},
    "A1002": {"item": "blender", "total": 249.00, "status": "delivered on Monday",
              "carrier": "DHL 4052611", "eta": None},
    "A1003": {"item": "mug set", "total": 35.00, "status": "delivered on Tuesday",
              "carrier": "USPS 9400111899", "eta": None},
}
# Refunds above this many dollars need a human's approval.
APPROVAL_THRESHOLD = 100.00

_ORDER_ID = re.compile(r"\bA\d{4}\b")
_REFUND_WORDS = ("refund", "broken", "return", "money back")
_ETA_WORDS = ("when", "arrive")
_STATUS_WORDS = ("where", "status", "track")


class SupportState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    turn: int
    intent: str
    order_id: str | None
    order: dict[str, Any] | None
    refund_amount: float
    needs_approval: bool
    approved: bool | None
    refund_id: str | None
    return_label: str | None
    reply: str


class NodeFn(Protocol):
    # A Protocol, not a Callable: LangGraph's add_node matches on the parameter name.
    def __call__(self, state: SupportState) -> dict[str, Any]: ...


class GatewayDown(RuntimeError):
    """The simulated payment gateway dropped the connection."""


@dataclass
class PaymentGateway:
    """A fake payment gateway; ``outages`` is how many next calls fail."""

    outages: int = 0
    refunds: list[tuple[str, float]] = field(default_factory=list)

    def refund(self, order_id: str, amount: float) -> str:
        if self.outages > 0:
            self.outages -= 1
            raise GatewayDown(f"payment gateway timed out refunding order {order_id}")
        self.refunds.append((order_id, amount))
        return f"RF-{order_id}-{len(self.refunds):03d}"


@dataclass
class NodeLog:
    """Counts node executions (started) and successful returns (finished), so the demo
    can prove which nodes ran again after a crash."""

    started: Counter[str] = field(default_factory=Counter)
    finished: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        return self.started.copy(), self.finished.copy()


def _last_human_text(state: SupportState) -> str:
    for msg in reversed(state.get("messages", [])):
        if isinstance(msg, HumanMessage):
            return str(msg.content)
    return ""


def classify(state: SupportState) -> dict[str, Any]:
    text = _last_human_text(state).lower()
    if any(w in text for w in _REFUND_WORDS):
        intent = "refund"
    elif any(w in text for w in _ETA_WORDS):
        intent = "eta"
    elif any(w in text for w in _STATUS_WORDS):
        intent = "status"
    else:
        intent = "other"
    found = _ORDER_ID.search(text.upper())
    # No order id in this message: the one from an earlier turn, read from the checkpoint.
    order_id = found.group(0) if found else state.get("order_id")
    # Per-turn fields are reset so a turn never sees the previous turn's refund.
    return {"turn": state.get("turn", 0) + 1, "intent": intent, "order_id": order_id,
            "refund_amount": 0.0, "needs_approval": False, "approved": None,
            "refund_id": None, "return_label": None}


def lookup_order(state: SupportState) -> dict[str, Any]:
    order_id = state.get("order_id")
    order = ORDERS.get(order_id) if order_id else None
    amount = float(order["total"]) if order and state.get("intent") == "refund" else 0.0
    return {"order": order, "refund_amount": amount}


def check_refund(state: SupportState) -> dict[str, Any]:
    return {"needs_approval": state.get("refund_amount", 0.0) > APPROVAL_THRESHOLD}


def human_approval(state: SupportState) -> dict[str, Any]:
    # interrupt() saves the question with the checkpoint and stops the run; on resume
    # LangGraph runs this node again and interrupt() returns the human's answer.
    decision = interrupt({
        "question": "Approve this refund?",
        "order_id": state.get("order_id"),
        "amount": state.get("refund_amount"),
        "threshold": APPROVAL_THRESHOLD,
    })
    return {"approved": bool(decision.get("approved"))}


def create_return_label(state: SupportState) -> dict[str, Any]:
    return {"return_label": f"RMA-{state.get('order_id')}-{state.get('turn', 0)}"}


def draft_reply(state: SupportState) -> dict[str, Any]:
    text = _reply_text(state)
    return {"reply": text, "messages": [AIMessage(content=text)]}


def _reply_text(state: SupportState) -> str:
    order, oid = state.get("order"), state.get("order_id")
    intent = state.get("intent")
    if intent == "other":
        return "I can help with where an order is, or with a refund. What do you need?"
    if order is None:
        return f"I could not find order {oid!r}; could you check the number?"
    if intent == "status":
        return f"Your {order['item']} (order {oid}) is {order['status']} with {order['carrier']}."
    if intent == "eta":
        if order["eta"]:
            return f"Order {oid} should arrive {order['eta']}."
        return f"Order {oid} was {order['status']}."
    amount = state.get("refund_amount", 0.0)
    if state.get("needs_approval") and not state.get("approved"):
        return f"A manager reviewed the ${amount:.2f} refund for order {oid} and declined it."
    approved = " A manager approved it." if state.get("needs_approval") else ""
    return (f"Refunded ${amount:.2f} for your {order['item']} ({state.get('refund_id')}); "
            f"return label {state.get('return_label')} is on its way.{approved}")


# Refunding and the return label are independent: they run in parallel, in one step.
_REFUND_STEPS = ["issue_refund", "create_return_label"]


def _after_lookup(state: SupportState) -> str:
    refund = state.get("intent") == "refund" and state.get("order")
    return "check_refund" if refund else "draft_reply"


def _after_check(state: SupportState) -> str | list[str]:
    return "human_approval" if state.get("needs_approval") else _REFUND_STEPS


def _after_approval(state: SupportState) -> str | list[str]:
    return _REFUND_STEPS if state.get("approved") else "draft_reply"


def _counted(name: str, fn: NodeFn, log: NodeLog) -> NodeFn:
    def node(state: SupportState) -> dict[str, Any]:
        log.started[name] += 1
        update = fn(state)
        log.finished[name] += 1
        return update

    return node


def build_graph(
    checkpointer: BaseCheckpointSaver[Any],
    *,
    gateway: PaymentGateway | None = None,
    log: NodeLog | None = None,
) -> Any:
    """The support agent, compiled on ``checkpointer``.

    ``gateway`` and ``log`` live outside the graph, like a real payment service and
    metrics would, so that they survive a "process" (graph and saver) being replaced.
    """
    gateway = gateway if gateway is not None else PaymentGateway()
    log = log if log is not None else NodeLog()

    def issue_refund(state: SupportState) -> dict[str, Any]:
        amount = state.get("refund_amount", 0.0)
        return {"refund_id": gateway.refund(str(state.get("order_id")), amount)}

    nodes: dict[str, NodeFn] = {
        "classify": classify, "lookup_order": lookup_order, "check_refund": check_refund,
        "human_approval": human_approval, "issue_refund": issue_refund,
        "create_return_label": create_return_label, "draft_reply": draft_reply,
    }
    g = StateGraph(SupportState)
    for name, fn in nodes.items():
        g.add_node(name, _counted(name, fn, log))
    g.add_edge(START, "classify")
    g.add_edge("classify", "lookup_order")
    g.add_conditional_edges("lookup_order", _after_lookup, ["check_refund", "draft_reply"])
    g.add_conditional_edges("check_refund", _after_check,
                            ["human_approval", "issue_refund", "create_return_label"])
    g.add_conditional_edges("human_approval", _after_approval,
                            ["issue_refund", "create_return_label", "draft_reply"])
    # draft_reply waits for both parallel branches.
    g.add_edge(["issue_refund", "create_return_label"], "draft_reply")
    g.add_edge("draft_reply", END)
    return g.compile(checkpointer=checkpointer)
