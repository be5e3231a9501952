"""The support-agent benchmark's block of docs/benchmark.md: the tables of
:mod:`bench.report` and the prose that says how they were measured, between two markers
that a new run replaces (the rest of the page is left as it is).
"""

from __future__ import annotations

import datetime
import shlex
from collections.abc import Sequence
from pathlib import Path

from bench.batch import kinds_text
from bench.counting import KIND_NAMES
from bench.docpage import BENCH_DOC, write_block
from bench.report import (
    DYNAMODB,
    JOURNAL_AFTER,
    JOURNAL_BARE,
    JOURNAL_LIVE,
    MEMORY,
    Results,
    agent_table,
    batch_table,
    bytes_read_table,
    fmt_rtt,
    fmt_s,
    load_table,
    projector_table,
    reads_table,
    short_bytes,
    targets_table,
)
from checkpoint_journal._core import keys as _keys

START_MARK = "<!-- bench:start -->"
END_MARK = "<!-- bench:end -->"


# -- prose ------------------------------------------------------------------------------


def settings_text(res: Results, *, dynamodb_s3_note: str) -> list[str]:
    a = res.args
    out = [
        f"**Workload.** A 3-node support agent (triage → lookup → respond), {a.turns} turns "
        f"on one thread, then `get_state` and the full `get_state_history`; a "
        f"{a.kb_size:,}-character knowledge base (base64 of fixed-seed random bytes) is set "
        "on turn 1 and never written again. `durability=\"sync\"` (LangGraph's default is "
        "\"async\"; sync stores every step's writes before the next step, so the counts are "
        "deterministic). Every HTTP request (retries included) is counted and delayed by a "
        f"simulated {a.rtt_ms:g} ms round trip, the projector's too; InMemorySaver makes "
        "none. Local servers: moto on 127.0.0.1 (DynamoDB, its stream, S3), one per "
        "deployment. JournalSaver: defaults (zstd on).",
        f"**{JOURNAL_LIVE}.** A `LocalDeployment()` whose stream runner feeds the real "
        "projector handler (`checkpoint_journal.stream_handlers.projector`) from the "
        "table's stream, as the event source mapping of template.yaml does (batch size "
        f"{res.batch_size}, batching window {fmt_s(res.batching_window_s)}). The runner "
        "calls it through `set_handler_wrapper`: `make_handler(env, projector)` with the "
        "function's template environment and a `make_projector(env)` whose DynamoDB and "
        "S3 clients are counted; the runner's stream polling (DescribeStream, "
        "GetRecords), which Lambda does, is not counted. "
        "After each turn the bench waits for `drain` (outside the timed run), standing in "
        "for a user who answers more than one batching window later, so each turn's "
        "records are one batch and the next turn starts from a caught-up view. The "
        "reads follow the last drain.",
        f"**{JOURNAL_BARE}.** `LocalDeployment(handlers=False)`: the journal only; reads fold "
        "it. The same table is then projected once by the projector's logic "
        "(`make_projector`, `project` on the thread's namespace, counted the same way: "
        "the \"one projector pass\" row), and read again (the reads table's "
        f"\"{JOURNAL_AFTER}\" row): the bench fails unless those reads return what the "
        "ones before did.",
        f"**{DYNAMODB}.** langgraph-checkpoint-aws 1.2.6, `enable_checkpoint_compression=True`, "
        f"`s3_offload_config` set ({dynamodb_s3_note}); table as in the package's sample "
        "CloudFormation template. It runs on the projector-less deployment, and so "
        f"does {MEMORY}.",
    ]
    b = res.batch
    kb_threads = (
        f"the {b.kb_size:,}-character knowledge base on {b.history_with_kb}"
    )
    out.append(
        f"**One {b.records}-record batch** (the §7 verdict). A fresh "
        "`LocalDeployment(handlers=False)` (moto, no stream runner). History: "
        f"{b.history_threads} conversations of {b.history_turns} turns each ({kb_threads}), "
        "written by an uncounted JournalSaver without simulated round trips, then "
        "projected by the projector's logic, as a caught-up projector leaves them. Then "
        f"one turn on each of {b.history_threads + b.new_threads} threads, alternating: "
        f"turn {b.history_turns + 1} of the {b.history_threads} ongoing conversations and "
        f"the first turn of {b.new_threads} new ones (the knowledge base on "
        f"{b.new_with_kb}: values to offload). The table's stream ({b.shards} shard(s)) "
        "is read from TRIM_HORIZON with the `dynamodbstreams` client; each record is made "
        "Lambda-shaped by the stream runner's `to_stream_record` and kept if template.yaml's "
        "FilterCriteria pass it (INSERT/MODIFY of an item of kind C, W, B or X, or REMOVE; "
        f"the runner's filter code). Those turns wrote {b.written} such records; the "
        f"event is the first {b.records} of them in stream order "
        f"({kinds_text(b.record_kinds)}; {short_bytes(b.event_bytes)} of JSON; "
        f"{b.namespaces} namespaces, {b.new_namespaces} of them new; "
        f"{b.checkpoints_to_project} checkpoints without a view), the batch an event "
        f"source mapping of BatchSize {res.batch_size} delivers next. The "
        f"{b.trimmed_items} items written after the {b.records}th record are deleted, so "
        "the table holds what it held when that record was written (the handler projects "
        "whole namespaces and would fold them too): that state, "
        f"{b.table_items} items and {b.objects} objects, is the *fresh copy*. The real "
        "handler, `make_handler(env, make_projector(env))` with the function's "
        "environment (template.yaml's variables, TABLE_NAME and BUCKET_NAME among them, "
        "then `dep.aws_env()`) and a Lambda context as the runner builds it, is called in "
        "this process with the event (built beforehand) and timed from the call to its "
        "return; a RequestCounter on the projector's clients counts its requests. "
        "Without simulated round trips: the handler's first call, on the fresh copy; a "
        "repeat delivery of the same event; then "
        f"{len(b.first_warm)} more first deliveries, each after the table and bucket were "
        "restored to the fresh copy and compared with it item by item. With the simulated "
        f"{fmt_rtt(b.first_rtt)} round trip on every projector request: a second handler, "
        "warmed up by one repeat delivery, then a repeat delivery and a first delivery on "
        "a fresh copy. After each first delivery every checkpoint in the table has its "
        "view item (checked), and no invocation reported a failed record. moto answers "
        "from threads of the same Python process (same GIL), so its own time is part of "
        "these figures. The target's verdict is the slowest first delivery without "
        "simulated round trips; the per-100-record figures of the stream runner during "
        "the run and under load (batches of other sizes, round trips included) are shown "
        "for information."
    )
    if res.load is not None:
        ld = res.load
        # The keys as the code spells them, with placeholders for the parts.
        view_key = _keys.view_sk("{ns}", "{checkpoint_id}")
        thread_key = _keys.thread_pk("{thread}")
        out.append(
            f"**Sustained load.** A fresh `LocalDeployment()` with the stream runner and "
            f"the real projector as above (template window {fmt_s(ld.batching_window_s)}, "
            f"batch size {ld.batch_size}). {ld.writers} writer threads run the same agent "
            f"({ld.kb_size:,}-character knowledge base, {ld.turns_per_thread} turns per "
            f"conversation, a new thread id per conversation, no pause) for "
            f"{a.load_seconds:g} s, each finishing the turn it is in; then `drain`. A "
            "poller reads the view key of every acknowledged put (strongly consistent "
            f"BatchGetItem of `{view_key}` in partition `{thread_key}`, uncounted, no "
            "simulated round trip) until the view item exists. Writers, moto, the "
            "runner, the projector and the poller share one Python process and its GIL, "
            "so the throughput is a floor for a Lambda with its own CPU. The stream had "
            f"{ld.status.shards} shard(s), read with ParallelizationFactor "
            f"{ld.parallelization_factor}: one batch at a time per shard, as on Lambda."
        )
    return out


def definitions_text(res: Results) -> str:
    return (
        "**What the numbers are.** *requests*: HTTP attempts (retries included) by the "
        "saver's clients, or by the projector's; *bytes written*: request bodies of writes "
        "(DynamoDB PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems; S3 "
        "PutObject, DeleteObject(s), uploads); *bytes sent / received*: all request / "
        "response bodies; *bytes read*: response bodies of reads (DynamoDB GetItem, "
        "BatchGetItem, Query, Scan, TransactGetItems; S3 GetObject: the object). DynamoDB's JSON protocol sends binary attributes base64-encoded "
        "(4/3 of the stored size), S3 bodies are raw; sizes vary by a few hundred bytes "
        "between runs (random ids). *Item kinds*: what each write stores "
        f"({', '.join(sorted(set(KIND_NAMES.values())))}, S3 object). *busy*: wall time "
        "inside the projector's handler, simulated round trips included; it runs in the "
        "stream runner's thread, asynchronously to the agent, so it is not in the agent's "
        "wall time. *Lag*: from the return of `put` to the first poll that sees the "
        "checkpoint's view item. *records/s per busy second*: stream records delivered "
        "to the projector divided by its busy time."
    )


def command_line(argv: Sequence[str]) -> str:
    return "python -m bench" + (" " + shlex.join(argv) if argv else "")


def readme_block(res: Results, *, dynamodb_s3_note: str) -> str:
    """The block, markers included, for docs/benchmark.md (named for its old home)."""
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    turns = res.args.turns
    parts = [
        START_MARK,
        "## The support-agent workload",
        "",
        f"_Generated {today} by `{command_line(res.argv)}`"
        + (" (`make bench`)" if not res.argv else "")
        + "._",
        "",
        f"**Agent side**, {turns}-turn run then reads (requests by the saver only):",
        "",
        agent_table(res),
        "",
        "**Reads by operation:**",
        "",
        reads_table(res),
        "",
        "**Bytes read by operation** (response bodies of GetItem, Query, BatchGetItem and "
        "S3 GetObject), and the ratio to DynamoDBSaver's:",
        "",
        bytes_read_table(res),
        "",
        f"**The projector's share** of the {turns}-turn run, and the totals:",
        "",
        projector_table(res),
        "",
        f"**The projector on one {res.batch.records}-record batch**, invoked directly "
        "(see below):",
        "",
        batch_table(res),
        "",
        f"**Targets** ({JOURNAL_LIVE.split(',')[0]} vs {DYNAMODB}):",
        "",
        targets_table(res),
        "",
    ]
    if res.load is not None:
        parts += [
            "**Projector under sustained load:**",
            "",
            load_table(res.load),
            "",
        ]
    else:
        parts += ["_Sustained-load phase not run (`--no-load`)._", ""]
    for para in settings_text(res, dynamodb_s3_note=dynamodb_s3_note):
        parts += [para, ""]
    parts += [definitions_text(res), END_MARK]
    return "\n".join(parts)


def write_readme(block: str, path: Path = BENCH_DOC) -> None:
    """Replace the block between the markers of ``path`` (docs/benchmark.md), or append
    it if the page has no markers yet (the block has its heading)."""
    write_block(path, START_MARK, END_MARK, block)
