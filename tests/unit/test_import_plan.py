"""The DynamoDBSaver importer's pure parts: reading 1.x items (and refusing others by
key), versions, order, pending-write layout and completion, conflicts, and the command
line's progress bar. The end-to-end behaviour is tests/integration/test_import_dynamodbsaver.py."""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from typing import Any

import botocore.exceptions
import pytest
from langgraph.checkpoint.base import WRITES_IDX_MAP, CheckpointTuple
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_journal import errors
from checkpoint_journal._core.serde import StrictSerializer
from checkpoint_journal.cli.import_dynamodbsaver import ProgressBar, summary_text
from checkpoint_journal.migrate import ImportProgress, ImportSummary
from checkpoint_journal.migrate import _plan
from checkpoint_journal.migrate._source import (
    CheckpointItem,
    Payload,
    Source,
    WriteItem,
    checkpoint_item,
    decode,
    write_item,
)


@dataclass
class Order:
    """A type of the user's own, blocked by the strict serde unless allowed."""

    n: int


def _cp_item(cid: str, ns: str = "", parent: str | None = None, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "PK": {"S": "CHECKPOINT_t"}, "SK": {"S": f"{ns}#{cid}"}, "id": {"S": cid},
        "ns": {"S": ns}, "type": {"S": "msgpack"}, "ref_loc": {"S": "DYNAMODB"},
        "ref_key": {"S": f"CHUNK_t#{ns}#{cid}"},
    }
    if parent:
        item["parent_checkpoint_id"] = {"S": parent}
    item.update(extra)
    return item


def _w_item(task: str, idx: int, channel: str, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "PK": {"S": "WRITES_t##c1"}, "SK": {"S": f"{task}#{idx}"}, "task_id": {"S": task},
        "channel": {"S": channel}, "idx": {"N": str(idx)}, "checkpoint_id": {"S": "c1"},
        "type": {"S": "msgpack"}, "ref_loc": {"S": "DYNAMODB"},
        "ref_key": {"S": f"CHUNK_t##c1#{task}#{idx}"}, "task_path": {"S": "~p"},
    }
    item.update(extra)
    return item


# -- items -----------------------------------------------------------------------------------


def test_items_of_1x_are_read() -> None:
    cp = checkpoint_item("t", _cp_item("c2", ns="sub:1", parent="c1",
                                       compression={"S": "gzip"}))
    assert (cp.checkpoint_ns, cp.checkpoint_id, cp.parent_checkpoint_id) == ("sub:1", "c2", "c1")
    assert cp.payload.compression == "gzip" and cp.payload.location == "DYNAMODB"
    w = write_item(_w_item("task", -3, "__interrupt__"), "c1")
    assert (w.task_id, w.task_path, w.channel, w.idx) == ("task", "~p", "__interrupt__", -3)


@pytest.mark.parametrize("change, why", [
    ({"ref_loc": {"S": "GLACIER"}}, "ref_loc"),
    ({"compression": {"S": "zstd"}}, "compression"),
    ({"SK": {"S": "#other"}}, "sort key"),
    ({"type": {"N": "1"}}, "'type' is not a string"),
])
def test_an_unrecognised_checkpoint_item_is_refused_by_its_key(change: dict[str, Any],
                                                                 why: str) -> None:
    item = {**_cp_item("c1"), **change}
    with pytest.raises(errors.CorruptRecordError) as info:
        checkpoint_item("t", item)
    assert f"PK='CHECKPOINT_t' SK={item['SK']['S']!r}" in str(info.value)
    assert why in str(info.value)


@pytest.mark.parametrize("item", [
    _w_item("task", 0, "__interrupt__"),             # a special write at a regular index
    _w_item("task", -1, "messages"),                 # a regular write at a special one
    {**_w_item("task", 1, "a"), "SK": {"S": "task#2"}},
    {**_w_item("task", 0, "a"), "checkpoint_id": {"S": "c9"}},
    {k: v for k, v in _w_item("task", 0, "a").items() if k != "idx"},
])
def test_an_unrecognised_write_item_is_refused_by_its_key(item: dict[str, Any]) -> None:
    with pytest.raises(errors.CorruptRecordError, match="PK='WRITES_t##c1'"):
        write_item(item, "c1")


def _payload(compression: str | None = None, type_: str = "msgpack") -> Payload:
    return Payload(("CHECKPOINT_t", "#c1"), type_, "DYNAMODB", "CHUNK_t##c1", compression)


def test_decode_reads_gzip_and_names_a_blocked_type_with_allow() -> None:
    type_, data = JsonPlusSerializer().dumps_typed({"a": [1, 2]})
    assert decode(StrictSerializer(), _payload("gzip", type_), gzip.compress(data)) == {"a": [1, 2]}
    type_, data = JsonPlusSerializer().dumps_typed(Order(3))
    with pytest.raises(errors.BlockedTypeError) as info:
        decode(StrictSerializer(), _payload(None, type_), data)
    assert f"--allow {__name__}.Order" in str(info.value)
    assert "SK='#c1'" in str(info.value)
    assert decode(StrictSerializer([(__name__, "Order")]), _payload(None, type_), data) == Order(3)
    with pytest.raises(errors.CorruptRecordError, match="does not decompress"):
        decode(StrictSerializer(), _payload("gzip", type_), b"not gzip")


# -- versions and order ------------------------------------------------------------------


def test_integer_versions_become_journal_versions_in_order() -> None:
    v9, v10 = _plan.journal_version(9, "x"), _plan.journal_version(10, "x")
    assert v9 < v10 and v9.split(".")[0] == f"{9:032}"
    assert len(v9) == len("0" * 32 + ".") + 16
    assert _plan.journal_version(f"{3:032}.0.5", "x") == f"{3:032}.0.5"
    for bad in (1.5, True, -1, "v3", None):
        with pytest.raises(errors.CorruptRecordError, match="item x"):
            _plan.journal_version(bad, "x")


def test_journal_checkpoint_converts_every_version_and_checks_the_id() -> None:
    cp = checkpoint_item("t", _cp_item("c1"))
    value = {"checkpoint": {"id": "c1", "channel_values": {"a": 1},
                            "channel_versions": {"a": 2}, "versions_seen": {"n": {"a": 1}}},
             "metadata": {"step": 1}}
    checkpoint, metadata = _plan.journal_checkpoint(value, cp)
    assert checkpoint["channel_versions"] == {"a": _plan.journal_version(2, "")}
    assert checkpoint["versions_seen"] == {"n": {"a": _plan.journal_version(1, "")}}
    assert metadata == {"step": 1}
    with pytest.raises(errors.CorruptRecordError, match="holds checkpoint 'c0'"):
        _plan.journal_checkpoint({**value, "checkpoint": {**value["checkpoint"], "id": "c0"}}, cp)
    with pytest.raises(errors.CorruptRecordError, match="not a checkpoint"):
        _plan.journal_checkpoint([1], cp)


def test_new_versions_are_the_changed_channels() -> None:
    assert _plan.new_versions({"a": 1, "b": 2}, None) == {"a": 1, "b": 2}
    assert _plan.new_versions({"a": 1, "b": 3, "c": 1}, {"a": 1, "b": 2}) == {"b": 3, "c": 1}


def _cp(cid: str, parent: str | None = None, ns: str = "") -> CheckpointItem:
    return checkpoint_item("t", _cp_item(cid, ns=ns, parent=parent))


def test_order_puts_parents_first_then_oldest() -> None:
    cps = [_cp("c5", "c9"), _cp("c9", "c1"), _cp("c1"), _cp("c3", "c1", ns="sub"),
           _cp("c2", "c0")]  # c0 is gone (TTL): c2 does not wait for it
    # c5 is c9's child though its id is smaller (a clock went back): after c9.
    assert [c.checkpoint_id for c in _plan.order(cps)] == ["c1", "c2", "c3", "c9", "c5"]


def test_order_refuses_a_parent_loop() -> None:
    with pytest.raises(errors.CorruptRecordError, match="loops"):
        _plan.order([_cp("c1", "c2"), _cp("c2", "c1")])


# -- pending writes ----------------------------------------------------------------------


def _w(task: str, idx: int, channel: str, path: str = "~p") -> WriteItem:
    return write_item({**_w_item(task, idx, channel), "task_path": {"S": path}}, "c1")


def _indexes(writes: list[tuple[str, Any]]) -> list[tuple[str, int]]:
    """The index LangGraph (and the journal) gives each write of one put_writes call."""
    return sorted((ch, WRITES_IDX_MAP.get(ch, i)) for i, (ch, _) in enumerate(writes))


def test_writes_keep_their_indexes_specials_filling_the_gaps() -> None:
    group = [(_w("t", 2, "b"), "B"), (_w("t", 1, "a"), "A"), (_w("t", -4, "__resume__"), "R"),
             (_w("t", -3, "__interrupt__"), "I")]
    plan = _plan.write_calls(group, None, lambda a, b: a == b, _no_conflict)
    (task,) = plan.tasks
    (call,) = task.calls
    assert (call.task_id, call.task_path, task.missing, plan.present) == ("t", "~p", 4, 0)
    assert _indexes(call.writes) == sorted([("b", 2), ("a", 1), ("__resume__", -4),
                                            ("__interrupt__", -3)])
    assert dict(call.writes) == {"a": "A", "b": "B", "__resume__": "R", "__interrupt__": "I"}
    # More gaps than specials: a special repeats (it keeps its last value, the same one).
    repeated = _plan.write_calls([(_w("t", 2, "b"), "B"), (_w("t", -4, "__resume__"), "R")],
                                 None, lambda a, b: a == b, _no_conflict).tasks[0].calls[0]
    assert _indexes(repeated.writes) == [("__resume__", -4), ("__resume__", -4), ("b", 2)]


def test_a_gap_no_special_can_fill_is_refused_by_key() -> None:
    with pytest.raises(errors.CorruptRecordError, match="SK='t#2'.*cannot be reproduced"):
        _plan.write_calls([(_w("t", 2, "b"), "B")], None, lambda a, b: a == b, _no_conflict)


def _no_conflict(task: str, what: str) -> errors.ConflictError:
    raise AssertionError(f"unexpected conflict: {task} {what}")


def _conflict(task: str, what: str) -> errors.ConflictError:
    return errors.ConflictError(f"{task}: {what}")


def test_writes_the_journal_holds_are_skipped_and_a_partial_task_completed() -> None:
    source = [(_w("t1", 0, "a"), 1), (_w("t1", 1, "b"), 2), (_w("t2", 0, "c"), 3),
              (_w("t3", -3, "__interrupt__"), "q")]
    same = lambda a, b: a == b  # noqa: E731
    # All there (and a resumed run's extra writes on the checkpoint): nothing to write.
    full = [("t1", "a", 1), ("t1", "b", 2), ("t2", "c", 3), ("t3", "__interrupt__", "q"),
            ("t3", "__resume__", "yes"), ("t3", "d", 9)]
    plan = _plan.write_calls(source, full, same, _conflict)
    assert (plan.tasks, plan.present) == ([], 4)
    # t1 half there, t3 missing: t1 is written again whole (its first write changes
    # nothing), t3 once; t2 is left alone.
    plan = _plan.write_calls(source, [("t1", "a", 1), ("t2", "c", 3)], same, _conflict)
    assert plan.present == 2
    assert [(t.calls[0].task_id, t.missing, t.calls[0].writes) for t in plan.tasks] == [
        ("t1", 1, [("a", 1), ("b", 2)]), ("t3", 1, [("__interrupt__", "q")])]


@pytest.mark.parametrize("present", [
    [("t1", "a", 99)], [("t1", "z", 1)], [("t3", "__interrupt__", "other")]])
def test_a_write_held_with_another_value_is_a_conflict(present: list[Any]) -> None:
    source = [(_w("t1", 0, "a"), 1), (_w("t3", -3, "__interrupt__"), "q")]
    with pytest.raises(errors.ConflictError, match="^t[13]: "):
        _plan.write_calls(source, present, lambda a, b: a == b, _conflict)


# -- checkpoints already there --------------------------------------------------------------


def test_checkpoint_difference_names_what_differs() -> None:
    checkpoint: Any = {"id": "c2", "v": 4, "channel_values": {"a": [1]},
                       "channel_versions": {"a": "1"}, "versions_seen": {}}
    tup = CheckpointTuple(
        config={"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c2"}},
        checkpoint=checkpoint, metadata={"step": 1},
        parent_config={"configurable": {"thread_id": "t", "checkpoint_ns": "",
                                        "checkpoint_id": "c1"}})
    same = lambda a, b: a == b  # noqa: E731
    assert _plan.checkpoint_difference(tup, checkpoint, {"step": 1}, "c1", same) is None
    assert "parent" in (_plan.checkpoint_difference(tup, checkpoint, {"step": 1}, None, same) or "")
    other = {**checkpoint, "channel_values": {"a": [2]}}
    assert "channel 'a'" in (_plan.checkpoint_difference(tup, other, {"step": 1}, "c1", same) or "")
    assert "metadata 'step'" in (_plan.checkpoint_difference(tup, checkpoint, {"step": 2}, "c1",
                                                             same) or "")


# -- payload reads (fake clients: the unit tier has no network) --------------------------


class _FakeDynamo:
    def __init__(self, chunks: dict[str, bytes]) -> None:
        self.chunks = chunks
        self.requests = 0

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        (table, request), = RequestItems.items()
        keys = [k["PK"]["S"] for k in request["Keys"]]
        if self.requests == 1 and len(keys) > 1:  # DynamoDB leaves some for later
            request = {**request, "Keys": request["Keys"][1:]}
            keys = keys[:1]
            unprocessed = {table: request}
        else:
            unprocessed = {}
        found = [{"PK": {"S": k}, "payload": {"B": self.chunks[k]}} for k in keys
                 if k in self.chunks]
        return {"Responses": {table: found}, "UnprocessedKeys": unprocessed}


class _FakeS3:
    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        if Key == "pre/t/checkpoints//c3":
            return {"Body": io.BytesIO(b"from s3")}
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")


def test_payloads_come_from_chunks_and_s3_and_missing_ones_are_none() -> None:
    dynamo = _FakeDynamo({"CHUNK_t##c1": b"one", "CHUNK_t##c2": b"two"})
    source = Source(dynamo, _FakeS3(), "tbl", "bkt", "/pre/")  # type: ignore[arg-type]
    wanted = [
        Payload(("P", "1"), "msgpack", "DYNAMODB", "CHUNK_t##c1", None),
        Payload(("P", "2"), "msgpack", "DYNAMODB", "CHUNK_t##c2", None),
        Payload(("P", "9"), "msgpack", "DYNAMODB", "CHUNK_t##c9", None),
        Payload(("P", "3"), "msgpack", "S3", "t/checkpoints//c3", None),
        Payload(("P", "4"), "msgpack", "S3", "t/checkpoints//c4", None),
    ]
    try:
        got = source.payloads(wanted)
    finally:
        source.close()
    assert got == {("P", "1"): b"one", ("P", "2"): b"two", ("P", "9"): None,
                   ("P", "3"): b"from s3", ("P", "4"): None}
    assert dynamo.requests == 2 and source.s3_objects_read == 1
    no_bucket = Source(dynamo, _FakeS3(), "tbl")  # type: ignore[arg-type]
    with pytest.raises(errors.NotConfiguredError, match="--source-bucket"):
        no_bucket.payloads(wanted[3:])
    no_bucket.close()


# -- the command line's progress and summary -----------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress(done: int) -> ImportProgress:
    return ImportProgress("t-1", 1, 4, done, 10, 17)


def test_progress_is_plain_periodic_lines_off_a_terminal() -> None:
    stream, clock = io.StringIO(), _Clock()
    bar = ProgressBar(stream, clock=clock, line_every=10)
    bar(_progress(1))
    assert stream.getvalue() == ""  # a quick import prints nothing
    clock.now = 10.5
    bar(_progress(2))
    clock.now = 11
    bar(_progress(3))
    bar.close()
    assert stream.getvalue() == ("checkpoint-journal: importing: 1/4 threads · thread 't-1' "
                                 "2/10 checkpoints · 17 copied\n")


def test_progress_is_a_bar_redrawn_in_place_on_a_terminal() -> None:
    stream, clock = _Tty(), _Clock()
    bar = ProgressBar(stream, clock=clock)
    clock.now = 1
    bar(_progress(5))
    assert stream.getvalue().startswith("\r\x1b[K") and " 38% " in stream.getvalue()
    bar.close()
    assert stream.getvalue().endswith("\r\x1b[K") and "\n" not in stream.getvalue()


def test_summary_lists_what_was_copied_and_skipped() -> None:
    summary = ImportSummary("src", "journal", 2, 5, 1, 9, 3, 2,
                            tuple(f"PK='CHECKPOINT_t' SK='#c{i}'" for i in range(12)), 1.25)
    text = "\n".join(summary_text(summary))
    assert "imported 2 thread(s) from DynamoDBSaver table 'src' into 'journal' in 1.2 s" in text
    assert "checkpoints       5 copied, 1 already there" in text
    assert "... and 2 more (--json lists them all)" in text
    doc = summary.as_dict()
    assert doc["checkpoints"] == {"copied": 5, "already_there": 1} and len(doc["skipped"]) == 12
