"""The bench's results, its tables and its targets (pure: no I/O).

Every number in the block of docs/benchmark.md comes from a :class:`Results` of the run
that writes it; :mod:`bench.readme` puts these tables in the block with the prose that
names what they are.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.batch import BatchResult, Invocation
from bench.counting import PhaseStats, RequestCounter
from bench.load import LoadResult, summarize

JOURNAL_LIVE = "JournalSaver, projector caught up"
JOURNAL_BARE = "JournalSaver, no projector"
JOURNAL_AFTER = "JournalSaver, no projector, then one projector pass"
DYNAMODB = "DynamoDBSaver"
MEMORY = "InMemorySaver"

# The targets, JournalSaver / DynamoDBSaver over the same 12-turn run.
TARGET_REQUESTS_RATIO = 0.4
TARGET_BYTES_RATIO = 0.1
TARGET_TOTAL_BYTES_RATIO = 0.2
"""Bytes written by the saver and the projector together."""
TARGET_GET_STATE_DDB_REQUESTS = 1
"""DynamoDB requests of ``get_state``; S3 GETs of offloaded values come on top."""
TARGET_HISTORY_REQUESTS = 5
"""Every request of the full ``get_state_history``, S3 GETs included."""
# DESIGN §7: "a 100-record batch in well under a second locally". Judged on one
# 100-record event handed to the handler directly, without simulated round trips
# (``bench.batch``): the slowest of its first deliveries must stay below this; "well
# under" a second is read as half of it.
TARGET_PROJECTOR_S_PER_100 = 0.5

PHASES = ("run", "get_state", "history")


@dataclass
class SaverResult:
    name: str
    counter: RequestCounter
    prefix: str = ""
    """Of this result's phase names in ``counter`` (two results may share a saver)."""
    final: tuple[Any, ...] = ()
    history: list[tuple[Any, ...]] = field(default_factory=list)

    def phase(self, name: str) -> PhaseStats:
        return self.counter.stats(self.prefix + name)


@dataclass
class ProjectorRun:
    """The projector's share of one JournalSaver configuration."""

    stats: PhaseStats
    """Its requests and bytes; ``wall_s`` is the time spent in the handler/projection."""
    invocations: int
    records: int


@dataclass
class Results:
    args: argparse.Namespace
    argv: list[str]
    savers: list[SaverResult]
    live: ProjectorRun
    """The real handler through the stream runner, during the 12 turns."""
    one_pass: ProjectorRun
    """The projector's logic over the finished thread, once (no stream runner)."""
    offloaded_objects: int
    """Objects in the blob bucket of the projector-on deployment after the run."""
    batching_window_s: float
    batch_size: int
    batch: BatchResult
    """One 100-record event, handed to the real handler directly (``bench.batch``)."""
    load: LoadResult | None

    def saver(self, name: str) -> SaverResult:
        return next(r for r in self.savers if r.name == name)


# -- formatting -------------------------------------------------------------------------


def fmt_bytes(n: int) -> str:
    if n >= 1_000_000:
        return f"{n:,} ({n / 1e6:.2f} MB)"
    if n >= 1_000:
        return f"{n:,} ({n / 1e3:.1f} kB)"
    return f"{n:,}"


def short_bytes(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} MB"
    if n >= 1_000:
        return f"{n / 1e3:.1f} kB"
    return f"{n} B"


def fmt_s(s: float) -> str:
    if math.isnan(s):
        return "n/a"
    return f"{s:.2f} s" if s >= 1 else f"{s * 1000:.0f} ms"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def verdict(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def op_name(op: str) -> str:
    service, operation = op.split(".", 1)
    return operation if service == "dynamodb" else f"{service.upper()} {operation}"


def ops(stats: PhaseStats) -> str:
    """``1 Query + 2 S3 GetObject``: requests by operation, most frequent first."""
    if not stats.requests:
        return "none"
    # DynamoDB before S3, then the most frequent first.
    parts = sorted(
        stats.requests.items(), key=lambda kv: (not kv[0].startswith("dynamodb."), -kv[1], kv[0])
    )
    return " + ".join(f"{n:,} {op_name(op)}" for op, n in parts)


def by_kind(stats: PhaseStats) -> str:
    """``view 145.5 kB (60 puts); ...``: bytes written by item kind, largest first."""
    parts = sorted(stats.written_by_kind.items(), key=lambda kv: (-kv[1], kv[0]))
    return "; ".join(
        f"{kind} {short_bytes(n)} ({stats.writes_by_kind[kind]:,})" for kind, n in parts
    ) or "none"


def ddb_requests(stats: PhaseStats) -> int:
    return sum(n for op, n in stats.requests.items() if op.startswith("dynamodb."))


def s3_gets(stats: PhaseStats) -> int:
    return stats.requests.get("s3.GetObject", 0)


# -- tables -----------------------------------------------------------------------------


def agent_table(res: Results) -> str:
    turns = res.args.turns
    n_history = len(res.savers[0].history)
    lines = [
        f"| saver | requests ({turns}-turn run) | requests (get_state) "
        f"| requests (history, {n_history} checkpoints) | bytes written ({turns}-turn run) "
        "| bytes sent (all phases) | bytes received (all phases) "
        "| wall time (run) | wall time (get_state + history) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res.savers:
        if r.name == JOURNAL_AFTER:
            continue
        run, gs, hist = (r.phase(p) for p in PHASES)
        lines.append(
            f"| {r.name} | {run.total_requests:,} | {gs.total_requests:,} "
            f"| {hist.total_requests:,} | {fmt_bytes(run.bytes_written)} "
            f"| {fmt_bytes(sum(r.phase(p).total_bytes for p in PHASES))} "
            f"| {fmt_bytes(sum(r.phase(p).total_received for p in PHASES))} "
            f"| {fmt_s(run.wall_s)} | {fmt_s(gs.wall_s + hist.wall_s)} |"
        )
    return "\n".join(lines)


def reads_table(res: Results) -> str:
    lines = [
        "| saver | get_state: requests by operation | received "
        "| full history: requests by operation | received |",
        "|---|---|---:|---|---:|",
    ]
    for r in res.savers:
        if r.name == MEMORY:
            continue
        gs, hist = r.phase("get_state"), r.phase("history")
        lines.append(
            f"| {r.name} | {ops(gs)} | {short_bytes(gs.total_received)} "
            f"| {ops(hist)} | {short_bytes(hist.total_received)} |"
        )
    return "\n".join(lines)


def bytes_read_table(res: Results) -> str:
    """Bytes read (response bodies of GetItem, Query, BatchGetItem, S3 GetObject, ...)
    per operation of the agent: the run (each invoke reads the thread's latest
    checkpoint), ``get_state`` and the full history; each with its ratio to
    DynamoDBSaver's."""
    turns = res.args.turns
    dyn = res.saver(DYNAMODB)
    phases = ("run", "get_state", "history")
    names = (f"{turns}-turn run", "get_state", "full history")
    lines = [
        "| saver | " + " | ".join(f"bytes read ({n}) | vs {DYNAMODB}" for n in names) + " |",
        "|---|" + "---:|---:|" * len(phases),
    ]
    for r in res.savers:
        if r.name == MEMORY:
            continue
        cells = []
        for p in phases:
            if r.name == JOURNAL_AFTER and p == "run":
                cells += ["(same run as above)", ""]
                continue
            n, d = r.phase(p).bytes_read, dyn.phase(p).bytes_read
            cells += [fmt_bytes(n), "—" if r is dyn else f"{ratio(n, d):.3f}x"]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def projector_table(res: Results) -> str:
    turns = res.args.turns
    live, one = res.live, res.one_pass
    journal = res.saver(JOURNAL_LIVE).phase("run")
    dynamo = res.saver(DYNAMODB).phase("run")
    total_req = journal.total_requests + live.stats.total_requests
    total_bytes = journal.bytes_written + live.stats.bytes_written
    lines = [
        "| who | requests | by operation | bytes written | written by item kind (bytes, requests) "
        "| time |",
        "|---|---:|---|---:|---|---:|",
        f"| projector, during the {turns}-turn run ({live.invocations} invocations, "
        f"{live.records} stream records) | {live.stats.total_requests:,} | {ops(live.stats)} "
        f"| {fmt_bytes(live.stats.bytes_written)} | {by_kind(live.stats)} "
        f"| {fmt_s(live.stats.wall_s)} busy |",
        f"| JournalSaver, the {turns}-turn run (agent side) | {journal.total_requests:,} "
        f"| {ops(journal)} | {fmt_bytes(journal.bytes_written)} | {by_kind(journal)} "
        f"| {fmt_s(journal.wall_s)} |",
        f"| **JournalSaver + projector, {turns}-turn run** "
        f"| **{total_req:,}** | {ratio(total_req, dynamo.total_requests):.2f}x "
        f"{DYNAMODB}'s requests "
        f"| **{fmt_bytes(total_bytes)}** | {ratio(total_bytes, dynamo.bytes_written):.3f}x "
        f"{DYNAMODB}'s bytes written | |",
        f"| DynamoDBSaver, the {turns}-turn run | {dynamo.total_requests:,} | {ops(dynamo)} "
        f"| {fmt_bytes(dynamo.bytes_written)} | | {fmt_s(dynamo.wall_s)} |",
        f"| for comparison: one projector pass over the finished thread (no stream runner) "
        f"| {one.stats.total_requests:,} | {ops(one.stats)} | {fmt_bytes(one.stats.bytes_written)} "
        f"| {by_kind(one.stats)} | {fmt_s(one.stats.wall_s)} |",
    ]
    return "\n".join(lines)


def spread(values: Iterable[int], fmt: Callable[[int], str] = "{:,}".format) -> str:
    """``98``, or ``96 to 98`` when the values differ."""
    vs = sorted(values)
    return fmt(vs[0]) if vs[0] == vs[-1] else f"{fmt(vs[0])} to {fmt(vs[-1])}"


def fmt_rtt(inv: Invocation) -> str:
    return f"{inv.rtt_s * 1000:g} ms"


def batch_table(res: Results) -> str:
    """Each call of the handler on the 100-record event."""
    b = res.batch
    rows: list[tuple[str, Invocation]] = [
        ("first delivery, the handler's first call", b.first_cold),
        *(
            (f"first delivery, warm handler, fresh copy {i + 1} of {len(b.first_warm)}", inv)
            for i, inv in enumerate(b.first_warm)
        ),
        ("repeat delivery (all views current)", b.repeat),
        ("warm-up: repeat delivery, the second handler's first call", b.warm_up_rtt),
        ("repeat delivery (all views current)", b.repeat_rtt),
        ("first delivery, warm handler, fresh copy", b.first_rtt),
    ]
    lines = [
        "| invocation | simulated round trip | time | requests | by operation "
        "| bytes written (by item kind: bytes, requests) | bytes received |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for label, inv in rows:
        st = inv.stats
        rtt = fmt_rtt(inv) if inv.rtt_s else "none"
        lines.append(
            f"| {label} | {rtt} | {fmt_s(inv.seconds)} | {st.total_requests:,} | {ops(st)} "
            f"| {fmt_bytes(st.bytes_written)}: {by_kind(st)} "
            f"| {short_bytes(st.total_received)} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    what: str
    live: str
    bare: str
    ok: bool


def targets(res: Results) -> list[Target]:
    live, bare, dyn = (res.saver(n) for n in (JOURNAL_LIVE, JOURNAL_BARE, DYNAMODB))
    drun = dyn.phase("run")
    out: list[Target] = []

    def run_ratio(r: SaverResult, attr: str, target: float) -> tuple[str, bool]:
        a, b = getattr(r.phase("run"), attr), getattr(drun, attr)
        q = ratio(a, b)
        return f"{q:.3f}x ({a:,} / {b:,})", q <= target

    lv, lok = run_ratio(live, "total_requests", TARGET_REQUESTS_RATIO)
    bv, bok = run_ratio(bare, "total_requests", TARGET_REQUESTS_RATIO)
    out.append(Target(
        f"{res.args.turns}-turn run: requests ≤ {TARGET_REQUESTS_RATIO}x {DYNAMODB}'s",
        lv, f"{bv}: {verdict(bok)}", lok,
    ))
    lv, lok = run_ratio(live, "bytes_written", TARGET_BYTES_RATIO)
    bv, bok = run_ratio(bare, "bytes_written", TARGET_BYTES_RATIO)
    out.append(Target(
        f"{res.args.turns}-turn run: bytes written ≤ {TARGET_BYTES_RATIO}x {DYNAMODB}'s",
        lv, f"{bv}: {verdict(bok)}", lok,
    ))
    saver_b, proj_b = live.phase("run").bytes_written, res.live.stats.bytes_written
    q = ratio(saver_b + proj_b, drun.bytes_written)
    out.append(Target(
        f"{res.args.turns}-turn run: bytes written by the saver and the projector together "
        f"≤ {TARGET_TOTAL_BYTES_RATIO}x {DYNAMODB}'s",
        f"{q:.3f}x (({saver_b:,} + {proj_b:,}) / {drun.bytes_written:,})",
        "n/a (nothing projected)", q <= TARGET_TOTAL_BYTES_RATIO,
    ))

    def get_state(r: SaverResult) -> tuple[str, bool]:
        st = r.phase("get_state")
        ok = (
            ddb_requests(st) <= TARGET_GET_STATE_DDB_REQUESTS
            and s3_gets(st) <= res.offloaded_objects
            and st.total_requests == ddb_requests(st) + s3_gets(st)
        )
        return ops(st), ok

    lv, lok = get_state(live)
    bv, bok = get_state(bare)
    out.append(Target(
        f"`get_state`: {TARGET_GET_STATE_DDB_REQUESTS} DynamoDB request, plus at most one "
        f"S3 GET per offloaded value ({res.offloaded_objects} in the bucket)",
        lv, f"{bv}: {verdict(bok)}", lok,
    ))

    def history(r: SaverResult) -> tuple[str, bool]:
        st = r.phase("history")
        return f"{st.total_requests} ({ops(st)})", st.total_requests <= TARGET_HISTORY_REQUESTS

    lv, lok = history(live)
    bv, bok = history(bare)
    out.append(Target(
        f"full `get_state_history` ({len(live.history)} checkpoints): ≤ "
        f"{TARGET_HISTORY_REQUESTS} requests, S3 GETs included",
        lv, f"{bv}: {verdict(bok)}", lok,
    ))
    b = res.batch
    per100 = ratio(res.live.stats.wall_s, res.live.records) * 100
    rtt_part = res.live.stats.total_requests * res.args.rtt_ms / 1000
    info = (
        f"the stream runner's batches during the {res.args.turns}-turn run, "
        f"{fmt_s(per100)} per 100 records ({fmt_s(res.live.stats.wall_s)} busy for "
        f"{res.live.records} records in {res.live.invocations} invocations, "
        f"{fmt_s(rtt_part)} of it simulated round trips)"
    )
    if res.load is not None:
        s = summarize(res.load)
        info += (
            f"; under load, {fmt_s(ratio(s['busy_s'], res.load.probe.records) * 100)} per "
            f"100 records (median invocation {fmt_s(s['invocation_p50_s'])} for a mean "
            f"batch of {s['batch_mean']:.0f}, round trips included)"
        )
    firsts = [*b.no_rtt_first, b.first_rtt]
    out.append(Target(
        f"DESIGN §7: the projector handles a {b.records}-record batch in well under "
        f"1 s locally (verdict: under {TARGET_PROJECTOR_S_PER_100:g} s for the slowest of "
        f"{len(b.no_rtt_first)} first deliveries of one {b.records}-record stream event "
        "to the handler, no simulated round trip)",
        f"slowest **{fmt_s(b.slowest_s)}** of {len(b.no_rtt_first)} first deliveries "
        f"without simulated round trip (the handler's first call "
        f"{fmt_s(b.first_cold.seconds)}, then warm: "
        f"{', '.join(fmt_s(i.seconds) for i in b.first_warm)}); each "
        f"{spread(i.stats.total_requests for i in firsts)} requests, "
        f"{spread((i.stats.bytes_written for i in firsts), short_bytes)} written, "
        f"{spread((i.stats.total_received for i in firsts), short_bytes)} received. With "
        f"the simulated {fmt_rtt(b.first_rtt)} round trip on each of its requests: "
        f"{fmt_s(b.first_rtt.seconds)}. Repeat delivery (all views current): "
        f"{fmt_s(b.repeat.seconds)}, {fmt_s(b.repeat_rtt.seconds)} with the round trip "
        f"({b.repeat.stats.total_requests} requests). For information, not the verdict: "
        f"{info}",
        "n/a", b.slowest_s < TARGET_PROJECTOR_S_PER_100,
    ))
    if res.load is not None:
        s = summarize(res.load)
        growth = s["last_p50"] - s["first_p50"]
        out.append(Target(
            "DESIGN §7: projector lag stays bounded under sustained load (median lag of "
            "the last quarter's puts exceeds the first quarter's by less than one batching "
            "window)",
            f"{fmt_s(s['first_p50'])} → {fmt_s(s['last_p50'])} (+{fmt_s(max(growth, 0.0))}, "
            f"window {fmt_s(res.load.batching_window_s)})"
            + ("" if res.load.drained else f"; backlog not drained in {fmt_s(res.load.drain_s)}"),
            "n/a",
            growth < res.load.batching_window_s and res.load.drained and not res.load.unseen,
        ))
    return out


def targets_table(res: Results) -> str:
    lines = [
        f"| target | {JOURNAL_LIVE} | {JOURNAL_BARE} | verdict (projector caught up) |",
        "|---|---|---|---|",
    ]
    for t in targets(res):
        lines.append(f"| {t.what} | {t.live} | {t.bare} | {verdict(t.ok)} |")
    return "\n".join(lines)


def load_table(load: LoadResult) -> str:
    s = summarize(load)
    p = load.probe
    st = load.status
    rows = [
        ("writers × run time", f"{load.writers} × {fmt_s(load.duration_s)}: "
         f"{load.conversations} conversations (new thread each, up to {load.turns_per_thread} "
         f"turns), {load.turns} turns, {load.checkpoints:,} checkpoints acknowledged"),
        ("agent requests", f"{load.writer_stats.total_requests:,} ({ops(load.writer_stats)})"),
        ("stream records", f"{st.records_read:,} read by the runner, {st.records_filtered:,} "
         f"filtered out (the projector's own items), {p.records:,} delivered to the projector "
         f"in {p.invocations} invocations (mean batch {s['batch_mean']:.0f}, "
         f"{st.records_dead_lettered} to the failure queue)"),
        ("offered load", f"{s['records_per_s_offered']:.1f} records/s "
         "(delivered records / writers' run time)"),
        ("projector throughput", f"**{s['records_per_busy_s']:.1f} records per busy second** "
         f"({p.records:,} records / {fmt_s(s['busy_s'])} in the handler; invocation median "
         f"{fmt_s(s['invocation_p50_s'])}, longest {fmt_s(s['invocation_max_s'])}); busy "
         f"{s['utilisation']:.0%} of the time from the start to the end of the drain"),
        ("projector requests", f"{p.stats.total_requests:,} ({ops(p.stats)}), "
         f"{p.stats.total_requests / max(p.records, 1):.2f} per record; "
         f"{fmt_bytes(p.stats.bytes_written)} written ({by_kind(p.stats)})"),
        ("lag, put acknowledged → view item exists", f"p50 **{fmt_s(s['lag_p50'])}**, p95 "
         f"**{fmt_s(s['lag_p95'])}**, max **{fmt_s(s['lag_max'])}** over {len(load.lags):,} "
         f"puts ({load.unseen} never seen)"),
        ("lag, first → last quarter of the puts", f"p50 {fmt_s(s['first_p50'])} → "
         f"{fmt_s(s['last_p50'])}, p95 {fmt_s(s['first_p95'])} → {fmt_s(s['last_p95'])}"),
        ("backlog when the writers stopped", f"`drain` took {fmt_s(load.drain_s)}"
         if load.drained else f"**not drained** after {fmt_s(load.drain_s)} (timeout)"),
        ("batching", f"window {fmt_s(load.batching_window_s)}, batch size {load.batch_size} "
         "(template.yaml's values, as Lambda would use them); lag resolution: one poll pass "
         f"≈ {fmt_s(load.poll_pass_s)}"),
    ]
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def breakdown_table(res: Results) -> str:
    """Every saver's and projector's requests by phase and operation (stdout only)."""
    lines = [
        "| who | phase | operation | requests | retries | error responses "
        "| request bytes | response bytes |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    groups: list[tuple[str, list[tuple[str, PhaseStats]]]] = [
        (r.name, [(p, r.phase(p)) for p in ("setup", *PHASES)]) for r in res.savers
    ]
    groups.append(("projector (stream runner)", [("run", res.live.stats)]))
    groups.append(("projector (one pass)", [("after run", res.one_pass.stats)]))
    groups.append((f"projector ({res.batch.records}-record event)", [
        ("first delivery, first call", res.batch.first_cold.stats),
        ("first delivery, simulated round trip", res.batch.first_rtt.stats),
        ("repeat delivery", res.batch.repeat.stats),
    ]))
    if res.load is not None:
        groups.append(("load: agents", [("load", res.load.writer_stats)]))
        groups.append(("load: projector", [("load", res.load.probe.stats)]))
    for who, phases in groups:
        for p, st in phases:
            for op in sorted(st.requests):
                lines.append(
                    f"| {who} | {p} | {op} | {st.requests[op]:,} | {st.retries[op]:,} "
                    f"| {st.errors[op]:,} | {st.bytes_sent[op]:,} "
                    f"| {st.bytes_received[op]:,} |"
                )
        if not any(st.total_requests for _, st in phases):
            lines.append(f"| {who} | all | (no requests) | 0 | 0 | 0 | 0 | 0 |")
    return "\n".join(lines)
