"""tests/events: the Lambda event fixtures are what their generator makes from the code's
items, in the shape Lambda delivers, and hold items the journal's readers accept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from checkpoint_journal import schemas
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import decode_view, fold_partition
from tests import events
from tests.events import make_events

REMAKE = "re-make them: .venv/bin/python -m tests.events.make_events"
SINGLE = [n for n in events.names() if n != "mixed_batch"]
RECORD_KEYS = ["eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb",
               "eventSourceARN"]
BODY_KEYS = ["ApproximateCreationDateTime", "Keys", "NewImage", "SequenceNumber", "SizeBytes",
             "StreamViewType"]


def every_record() -> list[dict[str, Any]]:
    return [r for n in events.names() for r in events.load(n)["Records"]]


def test_the_files_are_what_the_generator_makes() -> None:
    built = make_events.build()
    assert events.names() == sorted(built), f"event files differ from the generator's: {REMAKE}"
    for name, event in built.items():
        # Through JSON, as the file holds it (tuples become lists, and so on).
        assert json.loads(make_events.render(event)) == events.load(name), (
            f"tests/events/{name}.json is stale: {REMAKE}")


def test_every_record_is_shaped_as_lambda_delivers_it() -> None:
    for record in every_record():
        where = f"{record['eventName']} {record['dynamodb']['Keys']}"
        ttl = "userIdentity" in record
        assert list(record) == RECORD_KEYS[:-1] + ["userIdentity"] * ttl + RECORD_KEYS[-1:], where
        assert record["eventName"] in ("INSERT", "MODIFY", "REMOVE")
        assert record["eventVersion"] == "1.1" and record["eventSource"] == "aws:dynamodb"
        assert record["awsRegion"] == make_events.REGION
        assert record["eventSourceARN"] == make_events.STREAM_ARN
        assert len(record["eventID"]) == 32 and int(record["eventID"], 16) >= 0
        body = record["dynamodb"]
        removal = record["eventName"] == "REMOVE"
        # NEW_IMAGE: a removal carries the keys only.
        assert list(body) == [k for k in BODY_KEYS if not (removal and k == "NewImage")], where
        created = body["ApproximateCreationDateTime"]
        assert isinstance(created, float) and created.is_integer()
        assert isinstance(body["SequenceNumber"], str) and body["SequenceNumber"].isdigit()
        assert isinstance(body["SizeBytes"], int) and body["SizeBytes"] > 0
        assert body["StreamViewType"] == "NEW_IMAGE"
        assert set(body["Keys"]) == {"PK", "SK"}
        for image in ("Keys", "NewImage"):
            assert events.attribute_type_errors(body.get(image, {})) == [], where
        if not removal:
            assert {k: body["NewImage"][k] for k in ("PK", "SK")} == body["Keys"]
        if ttl:
            assert removal and record["userIdentity"] == {
                "type": "Service", "principalId": "dynamodb.amazonaws.com"}


def test_the_mixed_batch_is_the_story_in_stream_order() -> None:
    batch = events.load("mixed_batch")["Records"]
    sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in batch]
    assert sequence == sorted(set(sequence))
    created = [r["dynamodb"]["ApproximateCreationDateTime"] for r in batch]
    assert created == sorted(created)
    for name in SINGLE:
        assert events.record(name) in batch, name
    assert {r["eventName"] for r in batch} == {"INSERT", "MODIFY", "REMOVE"}


@pytest.mark.parametrize(
    ("name", "kind"),
    [("checkpoint_insert", _keys.KIND_CHECKPOINT), ("writes_insert", _keys.KIND_WRITES),
     ("chunk_insert", _keys.KIND_CHUNK), ("chunked_commit_insert", _keys.KIND_CHECKPOINT),
     ("blobs_insert", _keys.KIND_BLOBS), ("removal_insert", _keys.KIND_REMOVAL),
     ("tombstone_insert", _keys.KIND_TOMBSTONE), ("tombstone_modify", _keys.KIND_TOMBSTONE),
     ("view_insert", _keys.KIND_VIEW), ("index_insert", _keys.KIND_INDEX),
     ("head_insert", _keys.KIND_HEAD)],
)
def test_each_event_holds_the_item_its_name_says(name: str, kind: str) -> None:
    image = events.record(name)["dynamodb"]["NewImage"]
    assert image["kind"] == {"S": kind}
    assert image["PK"] == {"S": _keys.thread_pk(make_events.THREAD)}
    if kind not in (_keys.KIND_INDEX, _keys.KIND_HEAD):
        assert _keys.parse_sk(image["SK"]["S"]).kind == kind
    if name == "chunked_commit_insert":
        assert "body" not in image and int(image["chunks"]["N"]) == 2


def test_the_items_read_back_with_the_journals_own_readers() -> None:
    def item(name: str) -> dict[str, Any]:
        return events.wire(events.record(name)["dynamodb"]["NewImage"])

    fold = fold_partition([item("checkpoint_insert"), item("writes_insert"), item("view_insert")],
                          now_s=make_events.T0_MS / 1000 + 5, use_views=True)
    ns = fold.namespaces[make_events.NS]
    assert list(ns.checkpoints) == [make_events.CP1]
    assert [w.channel for w in ns.writes[make_events.CP1]] == ["messages", "route"]
    view = decode_view(item("view_insert"))
    assert view.checkpoint_id == make_events.CP1
    assert ns.current_view(make_events.CP1) is not None  # the view is of this journal
    for name, record_type in (("blobs_insert", schemas.RECORD_BLOBS),
                              ("removal_insert", schemas.RECORD_REMOVAL)):
        got = item(name)
        decoded = schemas.decode(record_type, got["body"]["B"], got["fp"]["S"], got["codec"]["S"])
        assert decoded["thread_id"] == make_events.THREAD
