"""The long-conversation bench's results, tables and docs/benchmark.md block
(``python -m bench.long``).

Every number comes from the per-turn counters of the run that writes the block.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.docpage import BENCH_DOC, replace_block
from bench.long_workload import ANSWER_CHARS, MESSAGES_PER_TURN, TOOL_RESULT_CHARS
from bench.report import fmt_s, ratio, short_bytes

JOURNAL = "JournalSaver"
DYNAMODB = "DynamoDBSaver"
MEMORY = "InMemorySaver"
MEMORY_RTT = "InMemorySaver + round trip"
POSTGRES = "PostgresSaver"

ROOT = Path(__file__).resolve().parent.parent
PLOT = ROOT / "docs" / "long-conversation.png"
PLOT_LINK = "long-conversation.png"
"""The plot as the page links it: relative to docs/benchmark.md, next to it."""
START_MARK = "<!-- long:start -->"
END_MARK = "<!-- long:end -->"
EARLY_TURNS = 40
"""The issue's 40-turn figures, taken from the first turns of the same run."""


@dataclass
class Totals:
    """Counters of one saver (its stream handlers included), or a difference of two."""

    requests: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    s3_gets: int = 0
    handler_requests: int = 0
    projector_bytes: int = 0
    archiver_bytes: int = 0

    def __sub__(self, other: Totals) -> Totals:
        return Totals(*(a - b for a, b in zip(self._values(), other._values())))

    def __add__(self, other: Totals) -> Totals:
        return Totals(*(a + b for a, b in zip(self._values(), other._values())))

    def _values(self) -> tuple[int, ...]:
        return (self.requests, self.bytes_written, self.bytes_read, self.s3_gets,
                self.handler_requests, self.projector_bytes, self.archiver_bytes)


@dataclass
class TurnStat:
    totals: Totals
    """What the turn cost: its invoke, and the stream handlers' work it caused."""
    seconds: float
    """Wall time of the invoke (simulated round trips included; the drain is not)."""


@dataclass
class SaverRun:
    name: str
    variant: str
    planned_turns: int
    turns: list[TurnStat] = field(default_factory=list)
    stopped: str | None = None
    """Why the run stopped before ``planned_turns``, or None."""
    get_state: Totals = field(default_factory=Totals)
    get_state_s: float = 0.0
    messages: list[Any] = field(default_factory=list)
    size_note: str = ""

    @property
    def run_s(self) -> float:
        return sum(t.seconds for t in self.turns)

    def total(self, first: int | None = None) -> Totals:
        """The totals of the first ``first`` turns (all by default)."""
        out = Totals()
        for t in self.turns[:first]:
            out = out + t.totals
        return out

    def seconds(self, first: int | None = None) -> float:
        return sum(t.seconds for t in self.turns[:first])

    def per_turn_bytes(self) -> list[int]:
        return [t.totals.bytes_written for t in self.turns]


@dataclass
class LongResults:
    args: argparse.Namespace
    argv: list[str]
    runs: list[SaverRun]
    notes: list[str]

    def variant(self, name: str) -> list[SaverRun]:
        return [r for r in self.runs if r.variant == name]


# -- numbers ------------------------------------------------------------------------------


def tenths(values: list[int]) -> list[float]:
    """Mean of each tenth of ``values`` (fewer parts when there are fewer than 10)."""
    n = len(values)
    parts = min(10, n)
    bounds = [round(k * n / parts) for k in range(parts + 1)]
    return [sum(values[a:b]) / (b - a) for a, b in zip(bounds, bounds[1:]) if b > a]


def fmt_mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else short_bytes(n)


def fmt_kb(x: float) -> str:
    return f"{x / 1e3:.1f}"


# -- tables -------------------------------------------------------------------------------


def totals_table(res: LongResults, variant: str) -> str:
    runs = res.variant(variant)
    early = min(EARLY_TURNS, res.args.turns)
    lines = [
        f"| saver | turns | bytes written | of which stream handlers | requests (handlers "
        "included) "
        f"| run time | `get_state`: requests (S3 GETs) | `get_state`: bytes read "
        f"| `get_state`: time | at {early} turns: bytes written | at {early} turns: requests "
        f"| at {early} turns: run time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        t, e = r.total(), r.total(early)
        handlers = (
            f"{fmt_mb(t.projector_bytes + t.archiver_bytes)} (projector "
            f"{fmt_mb(t.projector_bytes)}, archiver {fmt_mb(t.archiver_bytes)})"
            if r.name == JOURNAL else "none"
        )
        gs = r.get_state
        read = fmt_mb(gs.bytes_read) if r.name in (JOURNAL, DYNAMODB) else "n/a"
        reached = len(r.turns) >= early
        lines.append(
            f"| {r.name} | {len(r.turns)}{'' if r.stopped is None else ' (stopped)'} "
            f"| {fmt_mb(t.bytes_written)} | {handlers} | {t.requests:,} | {fmt_s(r.run_s)} "
            f"| {gs.requests:,} ({gs.s3_gets}) | {read} | {fmt_s(r.get_state_s)} "
            f"| {fmt_mb(e.bytes_written) if reached else 'n/a'} "
            f"| {f'{e.requests:,}' if reached else 'n/a'} "
            f"| {fmt_s(r.seconds(early)) if reached else 'n/a'} |"
        )
    return "\n".join(lines)


def tenths_table(res: LongResults, variant: str) -> str:
    runs = res.variant(variant)
    width = max((len(tenths(r.per_turn_bytes())) for r in runs), default=0)
    lines = [
        "| saver | " + " | ".join(f"{k + 1}." for k in range(width))
        + " | last / first |",
        "|---|" + "---:|" * (width + 1),
    ]
    for r in runs:
        parts = tenths(r.per_turn_bytes())
        cells = [fmt_kb(x) for x in parts] + [""] * (width - len(parts))
        q = f"{parts[-1] / parts[0]:.2f}x" if parts and parts[0] else "n/a"
        lines.append(f"| {r.name} | " + " | ".join(cells) + f" | {q} |")
    return "\n".join(lines)


def comparison_text(res: LongResults, variant: str) -> str:
    runs = {r.name: r for r in res.variant(variant)}
    ours, dyn = runs.get(JOURNAL), runs.get(DYNAMODB)
    if ours is None or dyn is None:
        return ""
    n = min(len(ours.turns), len(dyn.turns))
    a, b = ours.total(n).bytes_written, dyn.total(n).bytes_written
    text = (f"Over the first {n} turns {JOURNAL} (stream handlers included) wrote "
            f"{ratio(a, b):.2f}x {DYNAMODB}'s bytes ({fmt_mb(a)} vs {fmt_mb(b)})")
    if len(ours.turns) >= EARLY_TURNS and len(dyn.turns) >= EARLY_TURNS and n != EARLY_TURNS:
        a40 = ours.total(EARLY_TURNS).bytes_written
        b40 = dyn.total(EARLY_TURNS).bytes_written
        text += f"; over the first {EARLY_TURNS}, {ratio(a40, b40):.2f}x"
    return text + "."


def ratio_table(res: LongResults) -> str:
    """Run time of the DeltaChannel run against the plain one, per saver that ran every
    turn of both ("" unless both variants ran)."""
    if not {"plain", "delta"} <= set(res.args.variants):
        return ""
    plain = {r.name: r for r in res.variant("plain") if r.stopped is None}
    delta = {r.name: r for r in res.variant("delta") if r.stopped is None}
    lines = ["| saver | plain run | delta run | delta / plain |", "|---|---:|---:|---:|"]
    for name, p in plain.items():
        d = delta.get(name)
        if d is None or not p.run_s:
            continue
        lines.append(f"| {name} | {fmt_s(p.run_s)} | {fmt_s(d.run_s)} "
                     f"| {d.run_s / p.run_s:.2f}x |")
    return "\n".join(lines) if len(lines) > 2 else ""


def settings_text(res: LongResults) -> list[str]:
    a = res.args
    return [
        f"**Workload.** A tool-calling chat agent, {a.turns} turns on one thread; each turn "
        f"is one `invoke` with the user's message, then the nodes agent (an AIMessage "
        f"with one tool call) → tool (a ToolMessage of {TOOL_RESULT_CHARS:,} characters) → "
        f"answer (an AIMessage of {ANSWER_CHARS:,} characters): {MESSAGES_PER_TURN} "
        "messages and 5 checkpoints per turn. Real langchain-core messages with explicit "
        "ids; the text is fixed-seed pseudo-random words from a 4,096-word vocabulary "
        "(zlib takes it to ~55%). `plain`: `messages: Annotated[list, add_messages]`; "
        "`delta`: `messages: Annotated[list, DeltaChannel(reducer)]` (LangGraph 1.2's "
        "beta delta channel, the reducer `add_messages` folded over the writes, default "
        "`snapshot_frequency` of 100 updates: a full snapshot every 25 turns). "
        "`durability=\"sync\"`. Every request is counted and delayed by a simulated "
        f"{a.rtt_ms:g} ms round trip; *run time* is the invokes' wall time.",
        f"**Savers.** {JOURNAL}: a `LocalDeployment()` (moto), defaults (zstd on); its "
        "stream runner calls the real projector and archiver handlers, their clients "
        "counted; after each turn the bench waits for `drain` (not timed) and counts the "
        "handlers' writes in that turn. "
        f"{DYNAMODB}: langgraph-checkpoint-aws 1.2.6, gzip compression on, S3 offload on, "
        f"its own table and bucket on the same moto server. {MEMORY}: no requests. "
        f"{MEMORY_RTT}: InMemorySaver with the simulated round trip added to each "
        "checkpointer call (`put`, `put_writes`, `get_tuple`, `list`, "
        "`get_delta_channel_history`), *requests* its calls: the floor of any saver that "
        "makes one request per call. "
        f"{POSTGRES} (langgraph-checkpoint-postgres): a throwaway local PostgreSQL 15 "
        "cluster (127.0.0.1, fsync off); *requests* are SQL statements (an `executemany` "
        "counts one per row, one simulated round trip per call), *bytes written* the "
        "bytes of the parameters of its INSERT / UPDATE / DELETE statements.",
        "**What the numbers are.** *bytes written*: request bodies of DynamoDB and S3 "
        "writes (DynamoDB's JSON sends binary base64-encoded, 4/3 of the stored size), "
        "stream handlers included for JournalSaver; *bytes read*: response bodies of "
        "reads. The per-tenth table gives the mean bytes written per turn (kB) in each "
        "tenth of the run; *last / first* is the growth from the first tenth to the "
        "last. Each saver's final `get_state` messages are checked against the expected "
        "conversation (so all savers end in the same state).",
    ]


def report_sections(res: LongResults) -> list[str]:
    """The tables and notes, in order (for stdout and docs/benchmark.md)."""
    out: list[str] = []
    for variant in res.args.variants:
        out += [f"**`{variant}` state: totals**", totals_table(res, variant),
                f"**`{variant}` state: bytes written per turn (kB), mean by tenth of the run**",
                tenths_table(res, variant)]
        if text := comparison_text(res, variant):
            out.append(text)
    if table := ratio_table(res):
        out += ["**Run time, `DeltaChannel` against `add_messages`** (LangGraph saves a "
                "checkpoint only once the `put_writes` of the DeltaChannel writes that "
                "produced it has returned, so each super-step of the delta run waits for "
                "one more round trip than the plain run, whatever the saver)", table]
    notes = [*res.notes]
    for r in res.runs:
        if r.stopped is not None:
            notes.append(f"{r.name} ({r.variant}): {r.stopped}; its figures are for the "
                         "turns it ran.")
        if r.size_note:
            notes.append(f"{r.name} ({r.variant}): {r.size_note} at the end.")
    if notes:
        out.append("**Notes.** " + " ".join(notes))
    return out


def command_line(argv: list[str]) -> str:
    return "python -m bench.long" + (" " + shlex.join(argv) if argv else "")


def print_report(res: LongResults) -> None:
    print(f"\n$ {command_line(res.argv)}\n")
    for part in report_sections(res):
        print(part + "\n")


# -- docs/benchmark.md and plot ---------------------------------------------------------------


def readme_block(res: LongResults, *, plot: bool) -> str:
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    parts = [
        START_MARK,
        "## Long conversations",
        "",
        f"_Generated {today} by `{command_line(res.argv)}`"
        + (" (`make bench`)" if not res.argv else "") + "._",
        "",
    ]
    for part in report_sections(res):
        parts += [part, ""]
    if plot:
        parts += ["![bytes per turn](" + PLOT_LINK + ")", ""]
    for para in settings_text(res):
        parts += [para, ""]
    parts.append(END_MARK)
    return "\n".join(parts)


def insert_block(text: str, block: str) -> str:
    """Replace the block between the markers; without markers, put it at the end of the
    page (docs/benchmark.md: its last section)."""
    return replace_block(text, START_MARK, END_MARK, block)


def write_outputs(res: LongResults, path: Path = BENCH_DOC) -> None:
    """The plot (if matplotlib is installed), then the block of docs/benchmark.md."""
    from bench.plot import plot_bytes_per_turn

    plotted = plot_bytes_per_turn(res, PLOT)
    if plotted:
        print(f"{PLOT.relative_to(ROOT)}: plot written.")
    else:
        print("matplotlib is not installed: no plot (pip install -e '.[bench]').")
    text = path.read_text(encoding="utf-8")
    path.write_text(insert_block(text, readme_block(res, plot=plotted)), encoding="utf-8")
    print(f"{path}: results written between {START_MARK} and {END_MARK}.")
