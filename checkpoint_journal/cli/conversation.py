"""How ``show`` and ``diff`` read a chat: a channel value that is a list of chat messages
is laid out as turns (role, text, tool calls, tool results), and two message lists are
compared message by message.

Messages are recognised by what they are, never by the channel's name: langchain-core
``BaseMessage`` objects (what the strict serde rebuilds from a ``messages`` channel), their
dict forms (``{"type": "human", "content": ...}``, as ``model_dump`` gives them), the
OpenAI-style ``{"role": "user", "content": ...}`` and langchain's serialized
``{"lc": 1, "type": "constructor", ...}``. A list is a conversation only when every item is
a message; anything else keeps the plain rendering.

Pure. Colour comes through :class:`Paint` (``render.Style`` is one), so that this module
needs nothing from ``render``, which imports it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.messages import BaseMessage

from checkpoint_journal.cli.browse import jsonable, short

# A turn's text is cut after this many wrapped lines: enough for a paragraph, while a
# 200-turn chat stays readable (``--json`` always has the whole text).
MAX_LINES = 6
# Messages shown per conversation, the latest ones; a long chat keeps its recent turns
# on the screen and says how many earlier ones it left out.
MAX_TURNS = 40
# The role column: "assistant" and two spaces.
ROLE_WIDTH = 11

# LangChain's message types (``BaseMessage.type``) and OpenAI's roles, as the roles shown.
_TYPE_ROLES = {"human": "user", "ai": "assistant", "tool": "tool", "function": "tool",
               "system": "system", "chat": "chat", "remove": "remove"}
_ROLE_ROLES = {"user": "user", "assistant": "assistant", "system": "system",
               "developer": "system", "tool": "tool", "function": "tool"}
_CLASS_TYPES = {"HumanMessage": "human", "AIMessage": "ai", "ToolMessage": "tool",
                "FunctionMessage": "function", "SystemMessage": "system",
                "ChatMessage": "chat", "RemoveMessage": "remove"}
# langgraph.graph.message.REMOVE_ALL_MESSAGES, spelled out (stored data, not an API).
_REMOVE_ALL = "__remove_all__"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SGR = re.compile(r"\x1b\[[0-9;]*m")


class Paint(Protocol):
    """The colours a renderer offers (``render.Style``)."""

    def bold(self, text: str) -> str: ...
    def dim(self, text: str) -> str: ...
    def green(self, text: str) -> str: ...
    def red(self, text: str) -> str: ...
    def yellow(self, text: str) -> str: ...
    def cyan(self, text: str) -> str: ...


# -- recognising messages ----------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    name: str
    args: Any
    id: str | None
    error: str | None = None
    """Why the model's call could not be parsed (an ``invalid_tool_calls`` entry)."""


@dataclass(frozen=True)
class Turn:
    """One chat message, as shown."""

    role: str
    """``user``, ``assistant``, ``tool``, ``system``; a ``ChatMessage``'s own role; or
    ``remove`` (a ``RemoveMessage``, as a pending write carries it)."""
    text: str
    """The content's text; non-text content blocks as ``[type]``."""
    id: str | None = None
    name: str | None = None
    """The author's name; for a tool result, the tool's."""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    status: str | None = None
    """A tool result's ``success`` or ``error``."""


def _opt(value: Any) -> str | None:
    """A name or id from the message, printable (see :func:`clean`)."""
    return None if value is None or value == "" else clean(str(value))


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text of its content blocks with
    every other block as ``[type]`` (an image is not text)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and isinstance(block.get("text"), str):
                parts.append(block["text"])
            elif isinstance(block, Mapping):
                parts.append(f"[{block.get('type', 'block')}]")
            else:
                parts.append(short(block, 60))
        return "\n".join(parts)
    return short(content, 200)


def _args(raw: Any) -> Any:
    """OpenAI gives a call's arguments as a JSON string."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _tool_calls(d: Mapping[str, Any]) -> tuple[ToolCall, ...]:
    out: list[ToolCall] = []
    for c in d.get("tool_calls") or ():
        if not isinstance(c, Mapping):
            continue
        fn = c.get("function")
        if isinstance(fn, Mapping):  # OpenAI: {"id", "type": "function", "function": {...}}
            out.append(ToolCall(_opt(fn.get("name")) or "?", _args(fn.get("arguments")),
                                _opt(c.get("id"))))
        else:
            out.append(ToolCall(_opt(c.get("name")) or "?", c.get("args"), _opt(c.get("id"))))
    for c in d.get("invalid_tool_calls") or ():
        if isinstance(c, Mapping):
            out.append(ToolCall(_opt(c.get("name")) or "?", c.get("args"), _opt(c.get("id")),
                                error=str(c.get("error") or "not a valid call")))
    return tuple(out)


def _lc_type(type_: str) -> str | None:
    """``human`` for ``human`` or ``HumanMessageChunk``; None for any other string."""
    if type_ in _TYPE_ROLES:
        return type_
    if type_.endswith("MessageChunk"):
        return _CLASS_TYPES.get(type_.removesuffix("Chunk"))
    return None


def _from_dict(d: Mapping[str, Any]) -> Turn | None:
    if d.get("lc") == 1 and d.get("type") == "constructor":
        path, kwargs = d.get("id"), d.get("kwargs")
        if isinstance(path, list) and path and isinstance(kwargs, Mapping):
            name = str(path[-1])
            type_ = _CLASS_TYPES.get(name) or _CLASS_TYPES.get(name.removesuffix("Chunk"))
            if type_ is not None:
                return _from_dict({**kwargs, "type": type_})
        return None
    type_ = d.get("type")
    kind = _lc_type(type_) if isinstance(type_, str) else None
    if kind is not None and "content" in d:
        role = _TYPE_ROLES[kind]
        if kind == "chat":
            own = _opt(d.get("role")) or "chat"
            role = _ROLE_ROLES.get(own, own)
    else:
        own_role = d.get("role")
        if not (isinstance(own_role, str) and own_role in _ROLE_ROLES
                and ("content" in d or "tool_calls" in d)):
            return None
        role = _ROLE_ROLES[own_role]
    return Turn(
        role=role, text=content_text(d.get("content")), id=_opt(d.get("id")),
        name=_opt(d.get("name")), tool_calls=_tool_calls(d),
        tool_call_id=_opt(d.get("tool_call_id")), status=_opt(d.get("status")),
    )


def as_turn(value: Any) -> Turn | None:
    """The message ``value`` is, as a turn; None when it is not a chat message."""
    if isinstance(value, BaseMessage):
        data = jsonable(value)
        return _from_dict(data) if isinstance(data, Mapping) else None
    if isinstance(value, Mapping):
        return _from_dict(value)
    return None


def as_conversation(value: Any) -> list[Turn] | None:
    """A value as turns: a non-empty list of messages (every item one), or one message;
    None for anything else."""
    if isinstance(value, (list, tuple)):
        if not value:
            return None
        turns = [as_turn(v) for v in value]
        return None if any(t is None for t in turns) else [t for t in turns if t]
    turn = as_turn(value)
    return None if turn is None else [turn]


def _messages(value: Any) -> tuple[list[Turn], list[Any]] | None:
    """The turns of a list that is a conversation or empty, and its messages as JSON
    data; None when it is neither (None itself is no messages)."""
    if value is None:
        return [], []
    if not isinstance(value, (list, tuple)):
        return None
    turns = [as_turn(v) for v in value]
    if any(t is None for t in turns):
        return None
    return [t for t in turns if t is not None], [jsonable(v) for v in value]


# -- comparing two message lists ---------------------------------------------------------


@dataclass(frozen=True)
class MessageChange:
    change: str
    """``added``, ``removed`` or ``changed``."""
    index: int
    """Where the message is in the new list (in the old one for ``removed``)."""
    turn: Turn
    message: Any
    """The message as JSON data (for ``changed``, as it is now)."""
    before_index: int | None = None
    before: Any = None
    """``changed``: the message as it was, JSON data."""
    fields: tuple[str, ...] = ()
    """``changed``: the message's fields that differ (``content``, ``tool_calls``...)."""
    matched_by: str | None = None
    """``changed``: ``id``, or ``position`` for messages without one."""


@dataclass(frozen=True)
class MessageDiff:
    from_length: int
    to_length: int
    changes: tuple[MessageChange, ...]
    """Removed messages first (in their old order), then the changed and added ones in
    the new list's order."""
    unchanged: int

    def count(self, change: str) -> int:
        return sum(1 for c in self.changes if c.change == change)

    def summary(self) -> str:
        parts = [f"{self.count(k)} {k}" for k in ("added", "changed", "removed")
                 if self.count(k)]
        return (f"{self.from_length} -> {self.to_length} messages: "
                + (", ".join(parts) or "none changed"))

    def doc(self) -> dict[str, Any]:
        """The ``--json`` form (``detail.messages`` of a diff's change)."""

        def one(c: MessageChange) -> dict[str, Any]:
            return {"index": c.index, "id": c.turn.id, "role": c.turn.role, "message": c.message}

        return {
            "from_length": self.from_length, "to_length": self.to_length,
            "unchanged": self.unchanged,
            "added": [one(c) for c in self.changes if c.change == "added"],
            "removed": [one(c) for c in self.changes if c.change == "removed"],
            "changed": [{"from_index": c.before_index, "to_index": c.index, "id": c.turn.id,
                         "matched_by": c.matched_by, "role": c.turn.role,
                         "fields": list(c.fields), "from": c.before, "to": c.message}
                        for c in self.changes if c.change == "changed"],
        }


def _ids(turns: Sequence[Turn]) -> dict[str, int]:
    """id -> index of its first message (a repeated id matches by position instead)."""
    out: dict[str, int] = {}
    for i, t in enumerate(turns):
        if t.id is not None and t.id not in out:
            out[t.id] = i
    return out


def diff_messages(old: Any, new: Any) -> MessageDiff | None:
    """How message list ``old`` became ``new`` (None or ``[]`` for no messages): messages
    matched by id, those without one (or with a repeated id) by position. None when
    either side is not a list of messages, or both are empty."""
    a, b = _messages(old), _messages(new)
    if a is None or b is None or not (a[0] or b[0]):
        return None
    (ta, ja), (tb, jb) = a, b
    ids_a, ids_b = _ids(ta), _ids(tb)
    pairs: dict[int, tuple[int, str]] = {}  # new index -> (old index, matched by)
    for mid, j in ids_b.items():
        if mid in ids_a:
            pairs[j] = (ids_a[mid], "id")
    keyed_a = set(ids_a.values())
    keyed_b = set(ids_b.values())
    for j in range(min(len(ta), len(tb))):
        if j not in keyed_b and j not in keyed_a and j not in pairs:
            pairs[j] = (j, "position")
    matched_a = {i for i, _ in pairs.values()}
    removed = [MessageChange("removed", i, ta[i], ja[i])
               for i in range(len(ta)) if i not in matched_a]
    rest: list[MessageChange] = []
    unchanged = 0
    for j in range(len(tb)):
        if j not in pairs:
            rest.append(MessageChange("added", j, tb[j], jb[j]))
            continue
        i, how = pairs[j]
        if ja[i] == jb[j]:
            unchanged += 1
            continue
        before, after = ja[i], jb[j]
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            fields = tuple(sorted(k for k in set(before) | set(after)
                                  if before.get(k) != after.get(k)))
        else:
            fields = ()
        rest.append(MessageChange("changed", j, tb[j], after, i, before, fields, how))
    return MessageDiff(len(ta), len(tb), tuple(removed + rest), unchanged)


# -- laying turns out --------------------------------------------------------------------


def display_width(text: str) -> int:
    """Columns a string takes on a terminal: colour codes take none, wide East Asian
    characters two."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
               for c in _SGR.sub("", text))


def clean(text: str) -> str:
    """Text safe to print: stored text is data, so a control character (an escape
    sequence would drive the terminal) is shown escaped; tabs become spaces."""
    text = text.replace("\r\n", "\n").replace("\t", "    ")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _split_word(word: str, width: int) -> int:
    """How many characters of ``word`` fit in ``width`` columns (at least one)."""
    used = 0
    for n, c in enumerate(word):
        used += display_width(c)
        if used > width:
            return max(n, 1)
    return len(word)


def wrap(text: str, width: int) -> list[tuple[str, int]]:
    """``text`` in lines of at most ``width`` columns, broken at spaces (a longer word is
    split), each with the offset in ``text`` where it ends. Newlines are kept, runs of
    spaces become one, a paragraph's indentation is kept on each of its lines."""
    width = max(width, 8)
    out: list[tuple[str, int]] = []
    start = 0
    for para in text.split("\n"):
        body = para.lstrip(" ")
        lead = " " * min(len(para) - len(body), width // 2)
        room = width - len(lead)
        line, line_w, line_end = "", 0, start + len(para) - len(body)
        for m in re.finditer(r"\S+", para):
            word, at = m.group(), start + m.start()
            while word:
                w = display_width(word)
                sep = 1 if line else 0
                if line_w + sep + w <= room:
                    line, line_w = line + " " * sep + word, line_w + sep + w
                    line_end = at + len(word)
                    break
                if line:
                    out.append((lead + line, line_end))
                    line, line_w = "", 0
                    continue
                n = _split_word(word, room)
                out.append((lead + word[:n], at + n))
                word, at = word[n:], at + n
        out.append((lead + line if line else "", line_end if line else start + len(para)))
        start += len(para) + 1
    return out


def text_lines(text: str, width: int, paint: Paint, max_lines: int = MAX_LINES) -> list[str]:
    """Text wrapped to ``width``, cut after ``max_lines`` lines with a note of how much
    was cut."""
    text = clean(text).strip()
    if not text:
        return []
    lines = wrap(text, width)
    if len(lines) <= max_lines:
        return [line for line, _ in lines]
    shown = lines[:max_lines]
    rest = len(text[shown[-1][1]:].strip())
    note = f"… {rest:,} more characters (--json has all {len(text):,})"
    return [line for line, _ in shown] + [paint.dim(line) for line, _ in wrap(note, width)]


def _call_text(call: ToolCall, width: int) -> str:
    """``name(key=value, ...)``, compact, cut to ``width``."""
    if isinstance(call.args, Mapping):
        inner = ", ".join(f"{k}={json.dumps(jsonable(v), ensure_ascii=False)}"
                          for k, v in call.args.items())
    else:
        inner = "" if call.args is None else short(call.args, 10 ** 6)
    text = clean(f"{call.name}({inner})")
    if display_width(text) <= width:
        return text
    suffix = f"…) ({len(inner):,} chars of args)"
    return text[: max(len(call.name) + 4, width - len(suffix))] + suffix


_ROLE_PAINT: dict[str, str] = {"user": "green", "assistant": "cyan", "tool": "yellow",
                               "system": "dim", "remove": "red", "interrupt": "yellow"}


def _role(role: str, paint: Paint) -> str:
    colour: Callable[[str], str] = getattr(paint, _ROLE_PAINT.get(role, "bold"))
    label = role if len(role) < ROLE_WIDTH else role[: ROLE_WIDTH - 2] + "…"
    return colour(label) + " " * (ROLE_WIDTH - len(label))


def _layout(label: str, body: list[str], paint: Paint, *, indent: str, mark: str) -> list[str]:
    body = body or [paint.dim("(empty)")]
    pad = indent + " " * display_width(mark) + " " * ROLE_WIDTH
    return [(indent + mark + label + body[0]).rstrip()] + [(pad + b).rstrip() for b in body[1:]]


def turn_lines(turn: Turn, paint: Paint, width: int, *, indent: str = "  ", mark: str = "",
               max_lines: int = MAX_LINES) -> list[str]:
    """One message: its role, then (a tool result's tool, call id and status) its text
    wrapped and cut, and an assistant's tool calls, one per line. ``mark`` (``+ ``...)
    goes before the role."""
    room = max(width - len(indent) - display_width(mark) - ROLE_WIDTH, 20)
    body: list[str] = []
    if turn.role == "tool":
        status = turn.status or ""
        head = [paint.cyan(turn.name or "tool")]
        if turn.tool_call_id:
            head.append(paint.dim(f"call {turn.tool_call_id}"))
        if status:
            head.append(paint.red(status) if status == "error" else paint.dim(status))
        body.append(" · ".join(head))
    elif turn.role == "remove":
        target = "every message" if turn.id == _REMOVE_ALL else f"message {turn.id}"
        body.append(paint.red(f"removes {target}"))
    elif turn.name:
        body.append(paint.dim(f"({turn.name})"))
    if turn.role != "remove":
        body += text_lines(turn.text, room, paint, max_lines)
    for call in turn.tool_calls:
        if call.error is not None:
            body.append(paint.red(f"✗ {call.name}: {short(call.error, room - 8)}"))
            continue
        tail = f"  {call.id}" if call.id else ""
        text = _call_text(call, room - 2 - len(tail))
        body.append("→ " + text + paint.dim(tail))
    return _layout(_role(turn.role, paint), body, paint, indent=indent, mark=mark)


def conversation_lines(turns: Sequence[Turn], paint: Paint, width: int, *,
                       indent: str = "  ", max_turns: int = MAX_TURNS) -> list[str]:
    """The latest ``max_turns`` messages as turns, saying how many earlier ones are not
    shown."""
    lines: list[str] = []
    if len(turns) > max_turns:
        hidden = len(turns) - max_turns
        lines.append(indent + paint.dim(
            f"… {hidden:,} earlier message{'s' if hidden != 1 else ''} not shown "
            "(--json has them all)"))
        turns = turns[-max_turns:]
    for t in turns:
        lines += turn_lines(t, paint, width, indent=indent)
    return lines


# -- interrupts ----------------------------------------------------------------------------


def _expected(value: Any) -> str:
    """What ``Command(resume=...)`` should carry for one interrupt's value."""
    if isinstance(value, Mapping) and "action_requests" in value:
        # langchain's HumanInTheLoopMiddleware: one decision per action request.
        allowed: list[str] = []
        for cfg in value.get("review_configs") or ():
            if isinstance(cfg, Mapping):
                allowed += [str(d) for d in cfg.get("allowed_decisions") or ()
                            if str(d) not in allowed]
        kinds = "|".join(allowed) or "approve|edit|reject"
        n = len(value.get("action_requests") or ())
        return f'{{"decisions": [{{"type": "{kinds}"}}, …]}} (one per action, {n})'
    items = value if isinstance(value, (list, tuple)) else [value]
    if items and all(isinstance(i, Mapping) and "action_request" in i for i in items):
        # langgraph.prebuilt's HumanInterrupt: one HumanResponse per request.
        flags = (("accept", "allow_accept"), ("edit", "allow_edit"),
                 ("response", "allow_respond"), ("ignore", "allow_ignore"))
        cfg = items[0].get("config") or {}
        kinds = "|".join(k for k, f in flags if isinstance(cfg, Mapping) and cfg.get(f))
        return f'[{{"type": "{kinds or "accept"}", "args": …}}]'
    return "<value>"


def resume_hint(pending: Sequence[tuple[str | None, Any]]) -> str:
    """What resuming takes, for the pending interrupts' ``(id, value)``: LangGraph runs
    each interrupted node again and its ``interrupt()`` returns the resume value; with
    several interrupts pending, the values go in a map by interrupt id."""
    if not pending:
        return ""
    if len(pending) == 1:
        return (f"resume: graph.invoke(Command(resume={_expected(pending[0][1])}), config);"
                " interrupt() returns it")
    inner = ", ".join(f'"{i or "?"}": {_expected(v)}' for i, v in pending)
    return f"resume: graph.invoke(Command(resume={{{inner}}}), config): one value per id"


def interrupt_lines(node: str | None, value: Any, error: str | None, paint: Paint, width: int,
                    *, indent: str = "  ", hint: str = "") -> list[str]:
    """A pending interrupt as the conversation's last turn: who waits, for what, and
    (``hint``) what resuming takes."""
    room = max(width - len(indent) - ROLE_WIDTH, 20)
    body = [paint.cyan(clean(node)) + " is waiting" if node else "waiting"]
    if error is not None:
        body.append(paint.red(f"<{error}>"))
    else:
        text = value if isinstance(value, str) else json.dumps(
            jsonable(value), ensure_ascii=False, separators=(", ", ": "))
        body += text_lines(text, room, paint)
    if hint:
        body += [paint.dim(line) for line, _ in wrap(hint, room)]
    return _layout(_role("interrupt", paint), body, paint, indent=indent, mark="")


def diff_lines(md: MessageDiff, paint: Paint, width: int, *, indent: str = "  ") -> list[str]:
    """A message diff as turns: ``+`` added ones whole, ``~`` changed ones as they are
    now with the fields that changed, ``-`` removed ones in short."""
    lines: list[str] = []
    for c in md.changes:
        if c.change == "added":
            lines += turn_lines(c.turn, paint, width, indent=indent, mark=paint.green("+ "))
            continue
        if c.change == "removed":
            lines += turn_lines(c.turn, paint, width, indent=indent, mark=paint.red("- "),
                                max_lines=2)
            continue
        lines += turn_lines(c.turn, paint, width, indent=indent, mark=paint.yellow("~ "),
                            max_lines=3)
        what = c.turn.id if c.matched_by == "id" else f"#{c.before_index}"
        moved = "" if c.before_index == c.index else f", now #{c.index}"
        lines.append(indent + "  " + " " * ROLE_WIDTH + paint.dim(
            f"message {what}{moved}: changed {', '.join(c.fields) or 'value'}"))
    return lines
