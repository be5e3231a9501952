"""The ``checkpoint-journal`` command: the demo's facts, ``demo`` and ``local`` end to end
(every subcommand's help: tests/unit/test_cli_parser.py)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import IO

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from checkpoint_journal import JournalSaver
from checkpoint_journal.cli import main
from checkpoint_journal.cli.demo import DemoResult, run_demo

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def demo() -> tuple[DemoResult, list[str]]:
    lines: list[str] = []
    return run_demo(out=lines.append), lines


def test_demo_conversation_and_interrupt(demo: tuple[DemoResult, list[str]]) -> None:
    result, _ = demo
    # Two chat turns, the approval turn, the crash turn.
    assert result.turns == 4
    assert len(result.replies) == 4
    # The second turn named no order: the agent remembered A1001 from the checkpoint.
    assert "A1001" in result.replies[1] and "Thursday" in result.replies[1]
    assert result.interrupt_seen
    assert result.interrupt_value is not None
    assert result.interrupt_value["order_id"] == "A1002"
    assert result.interrupt_value["amount"] == 249.0
    assert result.interrupt_resumed
    assert "A manager approved it" in result.replies[2]


def test_demo_crash_resumes_without_rerunning_finished_nodes(
    demo: tuple[DemoResult, list[str]],
) -> None:
    result, _ = demo
    assert result.crash_error is not None and "gateway" in result.crash_error
    assert result.crash_resumed
    # Everything up to the parallel step had finished, and so had the return label,
    # whose result was saved as a pending write next to the failing refund.
    assert result.finished_before_crash == [
        "check_refund", "classify", "create_return_label", "lookup_order",
    ]
    assert result.crash_turn_runs == {
        "classify": 1, "lookup_order": 1, "check_refund": 1, "create_return_label": 1,
        "issue_refund": 2,  # failed, then succeeded after the resume
        "draft_reply": 1,
    }
    assert result.rerun_after_crash == []
    assert result.crash_resumed_without_rerun


def test_demo_fork_and_storage(demo: tuple[DemoResult, list[str]]) -> None:
    result, lines = demo
    assert result.fork_before == {"refund": 249.0, "needs_approval": True}
    assert result.fork_after == {"refund": 80.0, "needs_approval": False}
    assert result.fork_changed_outcome
    assert result.original_branch_intact
    assert result.history_length >= 20
    assert result.items_by_kind["checkpoint events"] > result.history_length
    assert result.items_by_kind["pending writes"] > 0
    assert result.items_by_kind.get("chunks", 0) == 0  # nothing here is near 300 KB
    assert result.total_items == sum(result.items_by_kind.values())
    assert result.total_bytes == sum(result.bytes_by_kind.values()) > 0
    assert (result.s3_objects, result.s3_bytes) == (0, 0)
    # Every journal event of the thread reached the archive, once.
    assert result.archive_files >= 1
    assert result.archived_events == (
        result.items_by_kind["checkpoint events"] + result.items_by_kind["pending writes"])
    assert result.items_by_kind["archive keys"] == 1  # the thread's, for crypto-shredding
    # verify proved every checkpoint intact in the table and identical in the archive.
    assert result.verify_ok
    assert result.verify_checkpoints == result.items_by_kind["checkpoint events"]
    assert result.verify_matched == result.verify_checkpoints
    audit = lines[lines.index("== 6. The audit trail"):]
    verify_at = next(i for i, line in enumerate(audit) if "$ checkpoint-journal verify" in line)
    history_at = next(i for i, line in enumerate(audit) if "$ checkpoint-journal history" in line)
    assert verify_at < history_at
    assert any("intact: every seal holds, every hash recomputes" in line for line in audit[verify_at:history_at])
    assert result.elapsed_seconds < 30
    assert lines[-1].startswith("Demo finished in ")


def test_main_demo_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    text = capsys.readouterr().out
    for expected in (
        "pending interrupt: Approve this refund? order A1002, $249.00",
        "process died: GatewayDown",
        "finished nodes re-run after the crash: none",
        "fork:     {'refund': 80.0, 'needs_approval': False}",
        "checkpoint events",
        "get_state with the projector caught up: 1 request(s) (Query)",
        "views ",
        "Demo finished in ",
    ):
        assert expected in text


# -- checkpoint-journal local, as a real process ------------------------------------------


def _lines(stream: IO[str]) -> queue.Queue[str | None]:
    """Stream lines onto a queue from a thread, so reads can have a deadline."""
    q: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def _read_exports(q: queue.Queue[str | None], timeout: float) -> tuple[dict[str, str], list[str]]:
    """The ``export NAME=value`` lines, read until the "Press Ctrl-C" line."""
    deadline = time.monotonic() + timeout
    env: dict[str, str] = {}
    seen: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no 'Press Ctrl-C' line within {timeout}s; got {seen}")
        try:
            line = q.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError(f"checkpoint-journal local exited early; output: {seen}")
        seen.append(line)
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            env[name] = value  # values are plain URLs and names: no shell quoting
        if line.startswith("Press Ctrl-C"):
            return env, seen


@pytest.fixture
def local_process() -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "checkpoint_journal.cli", "local"],
        # One pipe for both, drained by _lines: an undrained stderr pipe could fill up.
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        # As from a terminal's foreground: a suite started in the background (`... &`)
        # inherits SIGINT ignored, which `local` rightly keeps ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_local_serves_a_second_process_and_stops_cleanly(
    local_process: subprocess.Popen[str],
    stop_signal: signal.Signals,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert local_process.stdout is not None
    lines = _lines(local_process.stdout)
    env, output = _read_exports(lines, STARTUP_TIMEOUT)
    assert {"AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "CHECKPOINT_JOURNAL_TABLE", "CHECKPOINT_JOURNAL_BUCKET"} <= set(env)
    assert any(line.strip().startswith("DynamoDB endpoint: http://127.0.0.1:") for line in output)

    import boto3

    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )
    with JournalSaver(
        env["CHECKPOINT_JOURNAL_TABLE"],
        bucket=env["CHECKPOINT_JOURNAL_BUCKET"],
        endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
        s3_endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        boto3_session=session,
    ) as saver:
        saver.check()
        thread = f"cli-{uuid.uuid4()}"
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"greeting": "hello"}
        checkpoint["channel_versions"] = {"greeting": saver.get_next_version(None, None)}
        config = saver.put(
            {"configurable": {"thread_id": thread, "checkpoint_ns": ""}},
            checkpoint, {"source": "input", "step": -1}, checkpoint["channel_versions"],
        )
        got = saver.get_tuple({"configurable": {"thread_id": thread}})
        assert got is not None
        assert got.config == config
        assert got.checkpoint["channel_values"] == {"greeting": "hello"}

    # As the README says: with the export lines in the environment, the table name is
    # all a saver needs.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with JournalSaver(env["CHECKPOINT_JOURNAL_TABLE"]) as from_env:
        got = from_env.get_tuple({"configurable": {"thread_id": thread}})
        assert got is not None and got.config == config

    local_process.send_signal(stop_signal)
    assert local_process.wait(timeout=STOP_TIMEOUT) == 0, _drain(lines)
    assert "Stopped." in _drain(lines)


def _drain(q: queue.Queue[str | None]) -> list[str]:
    """The rest of the output of a process that has exited."""
    rest: list[str] = []
    while (line := q.get(timeout=STOP_TIMEOUT)) is not None:
        rest.append(line)
    return rest
