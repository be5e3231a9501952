"""``checkpoint-journal export`` against the local deployment (both backends).

Threads are written by a real LangGraph graph and archived by the real archiver
(``drain``); the command runs in-process through ``main`` with the environment that
``checkpoint-journal local`` prints, like the browsing commands' tests.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import random
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fastavro
import pytest

from checkpoint_journal import schemas
from checkpoint_journal.local import LocalDeployment
from tests.integration.cli_runner import Result, run_cli
from tests.integration.graphs import build_chat
from tests.integration.tables import partition


@dataclass
class World:
    dep: LocalDeployment
    chat: str
    erased: str
    secret: str
    long: str


def _words(n: int, seed: int) -> str:
    rnd = random.Random(seed)
    return " ".join(f"w{rnd.randrange(50_000)}" for _ in range(n))


@pytest.fixture(scope="module")
def world(deployment: LocalDeployment) -> Iterator[World]:
    run = uuid.uuid4().hex[:8]
    chat, erased, secret = f"export-chat-{run}", f"export-erased-{run}", f"secret-{run}"
    long = f"export-long-{run}"
    with deployment.saver() as saver:
        for turn in range(4):  # a growing channel: stored as deltas after the first
            build_chat(saver).invoke({"messages": [_words(400, turn)]},
                                     {"configurable": {"thread_id": long}})
        graph = build_chat(saver)
        for turn in ("hello", "again"):
            graph.invoke({"messages": [turn]}, {"configurable": {"thread_id": chat},
                                                "metadata": {"ticket": "T-1"}})
        graph.invoke({"messages": [secret]}, {"configurable": {"thread_id": erased}})
        saver.delete_thread(erased)
    deployment.drain()
    yield World(deployment, chat, erased, secret, long)


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Any:
    def call(*argv: str, env: dict[str, str | None] | None = None) -> Result:
        return run_cli(world.dep, monkeypatch, capsys, ["export", *argv], env)

    return call


def test_a_threads_events_as_json_lines(world: World, cli: Any) -> None:
    result = cli("--thread", world.chat)
    assert result.code == 0, result.err
    assert result.err == ""  # no progress on a stderr that is not a terminal
    lines = result.lines()
    items = {(i["PK"]["S"], i["SK"]["S"]): i for i in partition(world.dep, world.chat)
             if i["kind"]["S"] in ("C", "W")}
    # Every journal event once, in stream order, decrypted and decoded.
    assert sorted((d["pk"], d["sk"]) for d in lines) == sorted(items)
    numbers = [int(d["sequence_number"]) for d in lines]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert {d["state"] for d in lines} == {"inline"}
    assert all(d["thread_id"] == world.chat and d["error"] is None for d in lines)
    for d in lines:
        assert d["body_bytes"] == len(items[(d["pk"], d["sk"])]["body"]["B"])
        assert d["record"]["checkpoint_id"] == d["checkpoint_id"]
        dt.datetime.fromisoformat(d["approximate_creation_time"].replace("Z", "+00:00"))
    checkpoints = [d for d in lines if d["kind"] == "C"]
    latest = max(checkpoints, key=lambda d: d["checkpoint_id"])
    assert latest["metadata"]["ticket"] == "T-1" and latest["source"] == "loop"
    # Typed values rendered as `show --json` renders them: {type, value, error}.
    meta = latest["record"]["metadata"]
    assert meta["error"] is None and meta["value"]["ticket"] == "T-1"
    values = [b["value"]["value"] for d in checkpoints for b in d["record"]["blobs"]
              if b["channel"] == "messages" and b["value"]]
    assert ["hello", "echo:hello", "again", "echo:again"] in values
    writes = [w for d in lines if d["kind"] == "W" for w in d["record"]["writes"]]
    assert any(w["value"]["value"] == ["echo:again"] for w in writes)


def test_an_erased_thread_is_listed_without_content(world: World, cli: Any) -> None:
    result = cli("--thread", world.erased)
    assert result.code == 0, result.err
    lines = result.lines()
    assert {d["kind"] for d in lines} == {"C", "W", "X"}
    for d in lines:
        if d["kind"] == "X":
            assert d["state"] == "none"
            continue
        assert d["state"] == "shredded"
        assert (d["record"], d["metadata"], d["body_bytes"]) == (None, None, None)
    assert world.secret not in result.out


def test_a_time_range(world: World, cli: Any) -> None:
    lines = cli("--thread", world.chat).lines()
    times = sorted({d["approximate_creation_time"] for d in lines})
    cut = times[-1]  # the last instant any of its events entered the journal
    late = cli("--thread", world.chat, "--since", cut).lines()
    early = cli("--thread", world.chat, "--until", cut).lines()
    assert late and all(d["approximate_creation_time"] >= cut for d in late)
    assert all(d["approximate_creation_time"] < cut for d in early)
    assert sorted(d["sequence_number"] for d in early + late) == sorted(
        d["sequence_number"] for d in lines)
    # Whole days as bare dates (--until's included); a range long ago holds nothing.
    days = cli("--thread", world.chat, "--since", times[0][:10], "--until", cut[:10])
    assert len(days.lines()) == len(lines)
    everything_then = cli("--since", "2001-01-01", "--until", "2001-01-02T00:00:00+00:00")
    assert (everything_then.code, everything_then.out) == (0, "")


def test_an_avro_extract_reads_with_plain_fastavro(world: World, cli: Any,
                                                   tmp_path: pathlib.Path) -> None:
    path = tmp_path / "extract.avro"
    result = cli("--thread", world.chat, "--format", "avro", "--output", str(path))
    assert result.code == 0, result.err
    assert result.out == "" and "exported" in result.err and str(path) in result.err
    assert not (tmp_path / "extract.avro.partial").exists()
    with path.open("rb") as f:
        reader = fastavro.reader(f)
        records = list(reader)
        meta = reader.metadata
    assert reader.writer_schema["name"] == "checkpoint_journal.archive.v1.ArchiveEvent"
    items = {(i["PK"]["S"], i["SK"]["S"]): i for i in partition(world.dep, world.chat)
             if i["kind"]["S"] in ("C", "W")}
    assert sorted((r["pk"], r["sk"]) for r in records) == sorted(items)
    writers = json.loads(meta["checkpoint_journal.schemas"])
    for r in records:
        # The content in clear: the journal's own bytes, readable with their schema.
        assert r["body"] == items[(r["pk"], r["sk"])]["body"]["B"]
        assert r["key_id"] is None and r["metadata_sealed"] is None
        assert r["fingerprint"] in writers
        decoded = schemas.decode({"C": schemas.RECORD_CHECKPOINT,
                                  "W": schemas.RECORD_WRITES}[r["kind"]],
                                 r["body"], r["fingerprint"], r["codec"])
        assert decoded["checkpoint_id"] == r["checkpoint_id"]
    assert any(json.loads(r["metadata_json"]).get("ticket") == "T-1"
               for r in records if r["kind"] == "C")
    # An erased thread's extract keeps its records' key ids and no content.
    erased = tmp_path / "erased.avro"
    assert cli("--thread", world.erased, "--format", "avro", "--output", str(erased)).code == 0
    with erased.open("rb") as f:
        gone = [r for r in fastavro.reader(f) if r["kind"] != "X"]
    assert gone and all(r["key_id"] and r["body"] is None and r["metadata_json"] is None
                        for r in gone)
    assert world.secret.encode() not in erased.read_bytes()


def test_no_such_thread_exits_3_and_writes_nothing(world: World, cli: Any,
                                                   tmp_path: pathlib.Path) -> None:
    path = tmp_path / "none.avro"
    result = cli("--thread", "no-such-thread", "--format", "avro", "--output", str(path))
    assert result.code == 3 and "no-such-thread" in result.err
    assert not path.exists() and not list(tmp_path.iterdir())
    later = cli("--thread", world.chat, "--since", "2999-01-01")
    assert later.code == 3 and later.out == "" and "2999-01-01" in later.err


def test_usage_errors_exit_2(world: World, cli: Any, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    no_bucket = cli("--thread", world.chat, env={"CHECKPOINT_JOURNAL_BUCKET": None})
    assert no_bucket.code == 2 and "--bucket" in no_bucket.err
    no_table = cli(env={"CHECKPOINT_JOURNAL_TABLE": None})
    assert no_table.code == 2 and "--table" in no_table.err
    backwards = cli("--since", "2026-02-01", "--until", "2026-01-01")
    assert backwards.code == 2 and "before" in backwards.err
    with pytest.raises(SystemExit) as exit_info:
        cli("--since", "yesterday")
    assert exit_info.value.code == 2
    assert "not an ISO date" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli("--format", "csv")
    assert exit_info.value.code == 2
    # Binary Avro is not written to a terminal.
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    to_terminal = cli("--format", "avro")
    assert to_terminal.code == 2 and "--output" in to_terminal.err and to_terminal.out == ""


def test_aws_errors_exit_1(world: World, cli: Any) -> None:
    missing = cli("--thread", world.chat, "--bucket", f"no-such-bucket-{uuid.uuid4().hex[:8]}")
    assert missing.code == 1 and "does not exist" in missing.err


def test_values_stored_as_deltas_are_exported_whole(world: World, cli: Any) -> None:
    result = cli("--thread", world.long)
    assert result.code == 0, result.err
    blobs = [(d["checkpoint_id"], b) for d in result.lines() if d["kind"] == "C"
             for b in d["record"]["blobs"] if b["channel"] == "messages"]
    stored = [i["body"]["B"] for i in partition(world.dep, world.long)
              if i["kind"]["S"] == "C"]
    assert stored and any(b"jd1:" in zstd_body for zstd_body in _plain(stored))
    assert all("delta_of" not in b and b["value"]["error"] is None for _, b in blobs)
    last = max(blobs, key=lambda x: x[0])[1]["value"]
    assert last["type"] == "msgpack" and last["value"][-1].startswith("echo:w")
    assert len(last["value"]) == 8


def _plain(bodies: list[bytes]) -> list[bytes]:
    import zstandard

    return [zstandard.ZstdDecompressor().decompress(b, max_output_size=1 << 24)
            if b[:4] == b"\x28\xb5\x2f\xfd" else b for b in bodies]
