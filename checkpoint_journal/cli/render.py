"""How the browsing commands print: aligned tables for people, one JSON document for
scripts, colour only on a terminal, progress only on a terminal's stderr (pure, apart
from ``Progress``, which writes to the stream it is given). A command's result is an
:class:`Outcome`, which ``main`` prints one way or the other.

The JSON documents' keys are part of the command line's contract: add keys, never rename
or drop one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from checkpoint_journal.cli import conversation as chat
from checkpoint_journal.cli.browse import ThreadRow, iso_ms, jsonable, short
from checkpoint_journal.cli.conversation import display_width
from checkpoint_journal.cli.detail import Detail, Diff, HistoryRow, Shown, Stored

# -- terminal ----------------------------------------------------------------------------


def use_colour(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set (https://no-color.org) or
    TERM=dumb."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@dataclass(frozen=True)
class Style:
    colour: bool = False

    def _sgr(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and text else text

    def bold(self, text: str) -> str:
        return self._sgr("1", text)

    def dim(self, text: str) -> str:
        return self._sgr("2", text)

    def green(self, text: str) -> str:
        return self._sgr("32", text)

    def red(self, text: str) -> str:
        return self._sgr("31", text)

    def yellow(self, text: str) -> str:
        return self._sgr("33", text)

    def cyan(self, text: str) -> str:
        return self._sgr("36", text)


@dataclass(frozen=True)
class Outcome:
    """What a reading command found, ready to print either way."""

    doc: Any
    """The ``--json`` document."""
    text: Callable[[Style, int], list[str]]
    """The lines for people, given the style and the terminal's width."""
    status: int = 0
    """The exit status (verify: 4 when it found problems)."""


class Progress:
    """A one-line status on a terminal's stderr for work that takes a while.

    Silent unless the stream is a terminal, and until ``delay`` seconds have passed (a
    quick command prints nothing); redrawn at most ten times a second; erased by
    ``close``. Never on stdout, which belongs to the result.
    """

    def __init__(self, stream: TextIO, *, delay: float = 0.5) -> None:
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self.stream = stream
        self.start = time.monotonic()
        self.delay = delay
        self.last = 0.0
        self.shown = False

    def __call__(self, message: str) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.start < self.delay or now - self.last < 0.1:
            return
        self.last = now
        self.shown = True
        self.stream.write("\r\x1b[K" + message + " …")
        self.stream.flush()

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], style: Style,
    *, right: Sequence[int] = (), colours: Sequence[Any] = (), indent: str = "",
) -> list[str]:
    """Aligned columns; ``right`` lists the right-aligned (numeric) columns, ``colours``
    a Style method (or None) per column. Cells may come coloured already."""
    widths = [display_width(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))

    def line(cells: Sequence[str], header: bool) -> str:
        out = []
        for i, cell in enumerate(cells):
            pad = " " * (widths[i] - display_width(cell))
            last = i == len(cells) - 1
            text = pad + cell if i in right else cell + ("" if last else pad)
            paint = style.bold if header else (colours[i] if i < len(colours) else None)
            out.append(paint(text) if paint else text)
        return (indent + "  ".join(out)).rstrip()

    return [line(headers, True)] + [line(r, False) for r in rows]


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024:
            break
    return f"{value:.1f} {unit}"


def when(ms: int | None) -> str:
    """``2025-01-31 12:00:00.123`` (UTC) for epoch milliseconds."""
    text = iso_ms(ms)
    return "-" if text is None else text.replace("T", " ").rstrip("Z")


def _ns(ns: str) -> str:
    return repr(ns) + (" (root)" if ns == "" else "")


# -- threads -----------------------------------------------------------------------------


def threads_doc(rows: Sequence[ThreadRow]) -> dict[str, Any]:
    return {"threads": [
        {
            "thread_id": r.thread_id,
            "last_activity": iso_ms(r.last_activity_ms),
            "last_activity_ms": r.last_activity_ms,
            "checkpoints": r.checkpoints,
            "namespaces": len(r.namespaces),
            "namespace_names": r.namespaces,
            "step": r.step,
            "latest_checkpoint_id": r.latest_checkpoint_id,
        }
        for r in rows
    ]}


def threads_text(rows: Sequence[ThreadRow], style: Style) -> list[str]:
    if not rows:
        return ["no threads (the list comes from the projector's ThreadIndex: is the "
                "projector deployed and caught up?)"]
    return table(
        ["THREAD", "LAST ACTIVITY (UTC)", "CHECKPOINTS", "NAMESPACES", "STEP",
         "LATEST CHECKPOINT"],
        [[r.thread_id, when(r.last_activity_ms), str(r.checkpoints), str(len(r.namespaces)),
          "-" if r.step is None else str(r.step), r.latest_checkpoint_id or "-"]
         for r in rows],
        style, right=(2, 3, 4), colours=(style.cyan, None, None, None, None, style.dim),
    )


# -- history -----------------------------------------------------------------------------


def history_doc(thread_id: str, ns: str, rows: Sequence[HistoryRow]) -> dict[str, Any]:
    return {
        "thread_id": thread_id,
        "checkpoint_ns": ns,
        "checkpoints": [
            {
                "checkpoint_id": r.checkpoint_id,
                "parent_checkpoint_id": r.parent_checkpoint_id,
                "step": r.step,
                "source": r.source,
                "written_by": r.written_by,
                "written_by_from": r.written_by_from,
                "created_at": iso_ms(r.created_ms),
                "written_at": iso_ms(r.written_ms),
                "stored_bytes": {"journal": r.journal_bytes, "view": r.view_bytes},
                "pending_writes": r.pending_writes,
                "interrupts": r.interrupts,
            }
            for r in rows
        ],
    }


def _written_by(names: Sequence[str], basis: str | None) -> str:
    if names:
        return ", ".join(names)
    if basis in ("update_state", "fork"):
        return f"({basis})"
    return "-"


def history_text(
    thread_id: str, ns: str, rows: Sequence[HistoryRow], total: int, style: Style
) -> list[str]:
    shown = f"newest {len(rows)} of {total}" if len(rows) < total else f"{total}"
    head = style.bold(f"thread {thread_id!r}, namespace {_ns(ns)}: {shown} checkpoint"
                      f"{'' if total == 1 else 's'}, newest first")

    def pending(r: HistoryRow) -> str:
        if not r.pending_writes:
            return ""
        text = f"{r.pending_writes} write{'' if r.pending_writes == 1 else 's'}"
        return text + (f", {r.interrupts} interrupt" if r.interrupts else "")

    return [head] + table(
        ["CHECKPOINT", "STEP", "SOURCE", "WRITTEN BY", "TIME (UTC)", "JOURNAL", "VIEW",
         "PENDING"],
        [[r.checkpoint_id, "-" if r.step is None else str(r.step), r.source or "-",
          _written_by(r.written_by, r.written_by_from), when(r.created_ms or r.written_ms),
          human_bytes(r.journal_bytes), human_bytes(r.view_bytes), pending(r)]
         for r in rows],
        style, right=(1, 5, 6),
        colours=(style.dim, None, None, style.cyan, None, None, None, style.yellow),
    )


# -- show --------------------------------------------------------------------------------


def _stored_doc(s: Stored) -> dict[str, Any]:
    return {
        "bytes": s.bytes,
        "journal_checkpoint_id": s.journal_checkpoint_id,
        "view": s.view,
        "s3_key": s.s3_key,
        "s3_uri": s.s3_uri,
        "s3_bytes": s.s3_bytes,
    }


def _shown_doc(v: Shown) -> dict[str, Any]:
    return {"type": v.type, "value": jsonable(v.value), "error": v.error,
            "stored": _stored_doc(v.stored)}


def detail_doc(d: Detail) -> dict[str, Any]:
    return {
        "thread_id": d.thread_id,
        "checkpoint_ns": d.checkpoint_ns,
        "checkpoint_id": d.checkpoint_id,
        "parent_checkpoint_id": d.parent_checkpoint_id,
        "created_at": iso_ms(d.created_ms),
        "written_at": iso_ms(d.written_ms),
        "written_by": d.written_by,
        "written_by_from": d.written_by_from,
        "updated_channels": d.updated_channels,
        "metadata": jsonable(d.metadata),
        "metadata_error": d.metadata_error,
        "checkpoint_error": d.checkpoint_error,
        "stored_bytes": {"journal": d.journal_bytes, "view": d.view_bytes},
        "values": {
            v.channel: {"version": jsonable(v.version), **_shown_doc(v)} for v in d.values
        },
        "pending_writes": [
            {"task_id": w.task_id, "task_path": w.task_path, "node": w.node,
             "channel": w.channel, **_shown_doc(w)}
            for w in d.pending_writes
        ],
        "interrupts": [
            {"id": i.id, "task_id": i.task_id, "node": i.node, "value": jsonable(i.value),
             "error": i.error, "resumed": i.resumed}
            for i in d.interrupts
        ],
    }


def _place(s: Stored, style: Style) -> str:
    """Where the projector keeps a copy of a value."""
    if s.view == "s3":
        return (style.cyan(s.s3_uri or f"S3 key {s.s3_key} (pass --bucket for the URI)")
                + f" ({human_bytes(s.s3_bytes)} stored)")
    if s.view == "inline":
        return "inline in the view"
    return "journal only (no view copy)"


def _where(s: Stored, style: Style) -> str:
    return (f"{human_bytes(s.bytes)} · {_place(s, style)} · "
            f"journal: checkpoint {s.journal_checkpoint_id}")


def _value(v: Shown, width: int, style: Style) -> str:
    if v.error is not None:
        return style.red(f"<{v.error}>")
    return short(v.value, width)


def _turns(v: Shown) -> list[chat.Turn] | None:
    """A value's chat messages, when it is one or a list of them."""
    return None if v.error is not None else chat.as_conversation(v.value)


def _counted(turns: Sequence[chat.Turn]) -> str:
    """``4 messages: 1 user, 2 assistant, 1 tool``."""
    roles: dict[str, int] = {}
    for t in turns:
        roles[t.role] = roles.get(t.role, 0) + 1
    return (f"{len(turns)} message{'' if len(turns) == 1 else 's'}: "
            + ", ".join(f"{n} {role}" for role, n in roles.items()))


def _pending_interrupts(d: Detail, style: Style, width: int, indent: str) -> list[str]:
    """The interrupts nobody has resumed yet, as the conversation's last turns."""
    pending = [i for i in d.interrupts if not i.resumed]
    hint = chat.resume_hint([(i.id, i.value) for i in pending])
    lines: list[str] = []
    for n, i in enumerate(pending):
        lines += chat.interrupt_lines(i.node, i.value, i.error, style, width, indent=indent,
                                      hint=hint if n == len(pending) - 1 else "")
    return lines


def detail_text(d: Detail, style: Style, width: int = 100) -> list[str]:
    """One checkpoint for people. A value (or pending write) that is a list of chat
    messages reads as the conversation's turns, the pending interrupts ending the first
    one; every other value is one cut line of JSON."""
    width = max(width, 60)
    lines = [style.bold(f"checkpoint {d.checkpoint_id}") +
             f"  thread {d.thread_id!r}  namespace {_ns(d.checkpoint_ns)}"]
    facts = [
        ("parent", d.parent_checkpoint_id or "-"),
        ("step", f"{d.metadata.get('step', '-')} ({d.metadata.get('source', '-')}), "
                 f"written by {_written_by(d.written_by, d.written_by_from)}"),
        ("time", f"{when(d.created_ms)} UTC (saved {when(d.written_ms)})"),
        ("stored", f"{human_bytes(d.journal_bytes)} in the journal, "
                   + (f"{human_bytes(d.view_bytes)} view item" if d.view_bytes is not None
                      else "no view item yet")),
    ]
    if d.updated_channels is not None:
        facts.append(("updated", ", ".join(d.updated_channels) or "-"))
    for name, text in facts:
        lines.append(f"  {name:<8}{text}")
    if d.checkpoint_error:
        lines.append("  " + style.red(d.checkpoint_error))

    lines += ["", style.bold("metadata")]
    if d.metadata_error:
        lines.append("  " + style.red(d.metadata_error) + " (showing the plain md attribute)")
    md_rows = [[str(k), short(v, width - 20)] for k, v in sorted(d.metadata.items())]
    lines += table(["KEY", "VALUE"], md_rows, style, indent="  ")[1:] or ["  -"]

    lines += ["", style.bold(f"values ({len(d.values)} channel{'s' if len(d.values) != 1 else ''})")]
    name_w = max([len(v.channel) for v in d.values] + [8])
    interrupts_shown = False
    for v in d.values:
        turns = _turns(v)
        lines.append(f"  {style.cyan(v.channel.ljust(name_w))}  " + (
            _value(v, width - name_w - 4, style) if turns is None else _counted(turns)))
        lines.append(f"  {' ' * name_w}  " + style.dim(f"{v.type}, {_where(v.stored, style)}"))
        if turns is not None:
            lines += chat.conversation_lines(turns, style, width, indent="    ")
            if not interrupts_shown:  # a pending interrupt ends the (first) conversation
                lines += _pending_interrupts(d, style, width, "    ")
                interrupts_shown = True

    lines += ["", style.bold(f"pending writes ({len(d.pending_writes)})")]
    heads = [f"{w.node or '-'}  {w.channel}" for w in d.pending_writes]
    head_w = max([display_width(h) for h in heads] + [8])
    for w, head in zip(d.pending_writes, heads):
        pad = " " * (head_w - display_width(head))
        turns = _turns(w)
        lines.append(f"  {style.cyan(w.node or '-')}  {w.channel}{pad}  " + (
            _value(w, width - head_w - 4, style) if turns is None else _counted(turns)))
        lines.append(f"  {' ' * head_w}  " + style.dim(
            f"task {w.task_id} · {w.type}, {human_bytes(w.stored.bytes)} · "
            f"{_place(w.stored, style)}"))
        if turns is not None:
            lines += chat.conversation_lines(turns, style, width, indent="    ")
    if not d.pending_writes:
        lines.append("  -")

    lines += ["", style.bold(f"interrupts ({len(d.interrupts)})")]
    for i in d.interrupts:
        state = "resumed" if i.resumed else "pending"
        value = style.red(f"<{i.error}>") if i.error else short(i.value, width - 40)
        lines.append(f"  {style.yellow(state)}  {style.cyan(i.node or '-')}  {value}"
                     + (style.dim(f"  id {i.id}") if i.id else ""))
    pending = [(i.id, i.value) for i in d.interrupts if not i.resumed]
    if pending:
        lines += ["  " + style.dim(line)
                  for line, _ in chat.wrap(chat.resume_hint(pending), width - 2)]
    if not d.interrupts:
        lines.append("  -")
    return lines


# -- diff --------------------------------------------------------------------------------


def diff_doc(d: Diff) -> dict[str, Any]:
    return {
        "thread_id": d.thread_id,
        "checkpoint_ns": d.checkpoint_ns,
        "from": {"checkpoint_id": d.from_id, "step": d.from_step},
        "to": {"checkpoint_id": d.to_id, "step": d.to_step},
        "changes": [
            {"channel": c.channel, "change": c.change, "summary": c.summary, "detail": c.detail}
            for c in d.changes
        ],
        "unchanged": d.unchanged,
    }


def diff_text(d: Diff, style: Style, width: int = 100) -> list[str]:
    """The changed channels, one row each; a list of chat messages also shows the
    messages added, changed and removed, as turns under its row."""
    width = max(width, 60)

    def step(s: int | None) -> str:
        return "" if s is None else f" (step {s})"

    lines = [style.bold(f"thread {d.thread_id!r}, namespace {_ns(d.checkpoint_ns)}"),
             f"  from {d.from_id}{step(d.from_step)}",
             f"  to   {d.to_id}{step(d.to_step)}"]
    marks = {"added": ("+", style.green), "removed": ("-", style.red),
             "changed": ("~", style.yellow)}
    rows = [[marks[c.change][1](marks[c.change][0]), c.channel, c.change, c.summary]
            for c in d.changes]
    if rows:
        laid = table(["", "CHANNEL", "CHANGE", "HOW"], rows, style, indent="  ",
                     colours=(None, style.cyan, None, None))[1:]
        for c, row in zip(d.changes, laid):
            lines.append(row)
            if c.messages is not None:
                lines += chat.diff_lines(c.messages, style, width, indent="     ")
    else:
        lines.append("  no channel changed")
    if d.unchanged:
        lines.append(style.dim(f"  unchanged: {', '.join(d.unchanged)}"))
    return lines
