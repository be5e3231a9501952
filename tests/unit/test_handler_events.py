"""The stream handlers' pure parts on the canonical Lambda events of tests/events.

``journal_key`` (which item a record names), the projector's ``doorbell`` (which
namespace a record asks it to project) and the archiver's ``archive_record`` (what a
record becomes in the archive), each on records exactly as Lambda delivers them.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from checkpoint_journal._core import keys as _keys
from checkpoint_journal.stream_handlers._archiver import archive_record
from checkpoint_journal.stream_handlers._lambda import journal_key
from checkpoint_journal.stream_handlers._projector import Doorbell, doorbell, merge
from tests import events
from tests.events.make_events import CP1, CP2, NS, RUN, THREAD

PK = _keys.thread_pk(THREAD)


# --- journal_key -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "checkpoint_id"),
    [
        ("checkpoint_insert", _keys.KIND_CHECKPOINT, CP1),
        ("writes_insert", _keys.KIND_WRITES, CP1),
        ("chunk_insert", _keys.KIND_CHUNK, CP2),
        ("chunked_commit_insert", _keys.KIND_CHECKPOINT, CP2),
        ("blobs_insert", _keys.KIND_BLOBS, CP2),
        ("removal_insert", _keys.KIND_REMOVAL, ""),
        ("tombstone_insert", _keys.KIND_TOMBSTONE, ""),
        ("tombstone_modify", _keys.KIND_TOMBSTONE, ""),
        ("ttl_remove", _keys.KIND_TOMBSTONE, ""),
        ("delete_remove", _keys.KIND_CHECKPOINT, CP1),
        ("view_insert", _keys.KIND_VIEW, CP1),
    ],
)
def test_journal_key_names_the_item_and_its_thread(
    name: str, kind: str, checkpoint_id: str
) -> None:
    record = events.record(name)
    found = journal_key(record)
    assert found is not None
    assert (found.pk, found.sk) == (PK, record["dynamodb"]["Keys"]["SK"]["S"])
    assert found.thread_id == THREAD  # unescaped: the thread id has a '#'
    assert (found.key.kind, found.key.checkpoint_ns, found.key.checkpoint_id) == (
        kind, NS, checkpoint_id)


@pytest.mark.parametrize("name", ["head_insert", "index_insert"])
def test_journal_key_ignores_the_projectors_heads_and_index_entries(name: str) -> None:
    assert journal_key(events.record(name)) is None


# --- the projector's doorbell --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("checkpoint_insert", Doorbell(THREAD, NS, checkpoint_id=CP1)),
        ("writes_insert", Doorbell(THREAD, NS, checkpoint_id=CP1)),
        ("chunked_commit_insert", Doorbell(THREAD, NS, checkpoint_id=CP2)),
        ("blobs_insert", Doorbell(THREAD, NS, checkpoint_id=CP2)),
        ("tombstone_insert", Doorbell(THREAD, NS, tombstone=True)),
        ("tombstone_modify", Doorbell(THREAD, NS, tombstone=True)),
        ("delete_remove", Doorbell(THREAD, NS, removal=True, checkpoint_id=CP1)),
        # Its own items, chunks (the commit rings) and TTL deletions ring for nothing.
        ("view_insert", None),
        ("head_insert", None),
        ("index_insert", None),
        ("chunk_insert", None),
        ("ttl_remove", None),
    ],
)
def test_doorbell(name: str, expected: Doorbell | None) -> None:
    assert doorbell(events.record(name)) == expected


def test_a_mixed_batch_rings_once_per_namespace() -> None:
    bells = [b for r in events.load("mixed_batch")["Records"] if (b := doorbell(r)) is not None]
    assert merge(bells) == {
        (THREAD, NS): Doorbell(THREAD, NS, tombstone=True, removal=True, checkpoint_id=None)}


# --- the archiver's record ---------------------------------------------------------------


def _body(name: str) -> bytes:
    return base64.b64decode(events.record(name)["dynamodb"]["NewImage"]["body"]["B"])


def test_a_checkpoint_event_is_archived_with_its_body_and_metadata() -> None:
    record = events.record("checkpoint_insert")
    image, body = record["dynamodb"]["NewImage"], record["dynamodb"]
    archived = archive_record(record)
    assert archived is not None
    assert archived == {
        "thread_id": THREAD, "checkpoint_ns": NS, "checkpoint_id": CP1, "kind": "C",
        "task_id": None, "pk": PK, "sk": body["Keys"]["SK"]["S"], "event_name": "INSERT",
        "sequence_number": body["SequenceNumber"], "event_id": record["eventID"],
        "approximate_creation_time": int(body["ApproximateCreationDateTime"]) * 1000,
        "written_at": int(image["written_at"]["N"]), "fingerprint": image["fp"]["S"],
        "codec": image["codec"]["S"], "body": _body("checkpoint_insert"),
        "run_id": RUN, "source": "loop", "step": 1,
        "metadata_json": '{"parents":{},"run_id":"run-7f3a","source":"loop","step":1}',
        "key_id": None, "metadata_sealed": None, "expires_at": None,
    }


def test_a_writes_event_is_archived_with_its_task() -> None:
    archived = archive_record(events.record("writes_insert"))
    assert archived is not None
    assert (archived["kind"], archived["checkpoint_id"], archived["task_id"]) == (
        "W", CP1, "respond")
    assert archived["body"] == _body("writes_insert")


def test_a_chunked_commit_is_archived_as_a_reference_to_its_chunks() -> None:
    record = events.record("chunked_commit_insert")
    archived = archive_record(record)
    assert archived is not None
    image = record["dynamodb"]["NewImage"]
    assert archived["body"] == {"digest": image["digest"]["S"], "size": None, "chunks": 2}
    assert archived["step"] == 2


def test_a_body_over_the_inline_limit_is_referenced() -> None:
    body = _body("checkpoint_insert")
    archived = archive_record(events.record("checkpoint_insert"), inline_limit=len(body) - 1)
    assert archived is not None
    assert isinstance(archived["body"], dict) and archived["body"]["size"] == len(body)


@pytest.mark.parametrize(
    ("name", "kind", "event_name"),
    [("blobs_insert", "B", "INSERT"), ("removal_insert", "R", "INSERT"),
     ("tombstone_insert", "X", "INSERT"), ("tombstone_modify", "X", "MODIFY")],
)
def test_the_other_journal_events_are_archived(name: str, kind: str, event_name: str) -> None:
    archived = archive_record(events.record(name))
    assert archived is not None
    assert (archived["kind"], archived["event_name"], archived["thread_id"]) == (
        kind, event_name, THREAD)
    if kind == "X":  # a plain item: no body, an expiry
        image = events.record(name)["dynamodb"]["NewImage"]
        assert archived["body"] is None
        assert archived["expires_at"] == int(image["expires_at"]["N"])


@pytest.mark.parametrize(
    "name",
    ["chunk_insert", "view_insert", "head_insert", "index_insert", "delete_remove", "ttl_remove"],
)
def test_what_is_not_a_journal_event_is_left_out(name: str) -> None:
    assert archive_record(events.record(name)) is None


def test_the_mixed_batch_archives_its_journal_events_in_order() -> None:
    archived: list[Any] = [
        a for r in events.load("mixed_batch")["Records"] if (a := archive_record(r)) is not None]
    assert [(a["kind"], a["event_name"]) for a in archived] == [
        ("C", "INSERT"), ("W", "INSERT"), ("C", "INSERT"), ("B", "INSERT"), ("R", "INSERT"),
        ("X", "INSERT"), ("X", "MODIFY")]
