"""Large state never fails (I2): chunked records, sized with DynamoDB's formula."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from checkpoint_journal import JournalSaver
from checkpoint_journal._core.size import MAX_ITEM_BYTES
from checkpoint_journal.local import LocalDeployment


def _items(dep: LocalDeployment, thread_id: str) -> list[dict[str, Any]]:
    from checkpoint_journal._core.keys import thread_pk

    ddb = dep.client("dynamodb")
    items: list[dict[str, Any]] = []
    kw: dict[str, Any] = {
        "TableName": dep.table_name,
        "KeyConditionExpression": "PK = :pk",
        "ExpressionAttributeValues": {":pk": {"S": thread_pk(thread_id)}},
    }
    while True:
        page = ddb.query(**kw)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _put_big(saver: JournalSaver, thread: str, size: int) -> tuple[dict[str, Any], bytes]:
    blob = os.urandom(size)  # incompressible: zstd cannot shrink it below the limit
    cp = empty_checkpoint()
    v = saver.get_next_version(None, None)
    cp["channel_values"] = {"big": blob, "small": "s"}
    cp["channel_versions"] = {"big": v, "small": v}
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    stored = saver.put(config, cp, {"source": "input", "step": -1}, cp["channel_versions"])
    return stored, blob


@pytest.mark.parametrize("size", [1_000_000, 5_000_000, 20_000_000], ids=["1MB", "5MB", "20MB"])
def test_large_incompressible_state_round_trips(deployment: LocalDeployment, size: int) -> None:
    thread = f"big-{size}-{uuid.uuid4()}"
    with deployment.saver() as saver:
        stored, blob = _put_big(saver, thread, size)
        tup = saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
        assert tup is not None
        assert tup.checkpoint["channel_values"]["big"] == blob
        assert tup.config == stored
        listed = list(saver.list({"configurable": {"thread_id": thread}}))
        assert [t.checkpoint["channel_values"]["big"] == blob for t in listed] == [True]
    items = _items(deployment, thread)
    kinds = sorted(i["kind"]["S"] for i in items)
    assert kinds.count("C") == 1 and kinds.count("P") >= size // MAX_ITEM_BYTES
    # Every item is within DynamoDB's real limit, as DynamoDB counts it.
    from checkpoint_journal._core.size import item_size

    assert max(item_size(i) for i in items) <= MAX_ITEM_BYTES


def test_pending_write_over_400kb(deployment: LocalDeployment) -> None:
    thread = f"bigwrite-{uuid.uuid4()}"
    with deployment.saver() as saver:
        cp = empty_checkpoint()
        config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        stored = saver.put(config, cp, {"source": "input", "step": -1}, {})
        value = os.urandom(450_000)
        saver.put_writes(stored, [("attachment", value)], "task-1")
        tup = saver.get_tuple(stored)
        assert tup is not None
        assert tup.pending_writes == [("task-1", "attachment", value)]


def test_chunks_without_commit_are_invisible(deployment: LocalDeployment) -> None:
    """A writer that died after its chunks and before its commit item leaves the
    previous state: the chunks are invisible (I2)."""
    from checkpoint_journal import schemas
    from checkpoint_journal._core import keys as _keys
    from checkpoint_journal._core.items import plan_items

    thread = f"torn-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    with deployment.saver() as saver:
        cp = empty_checkpoint()
        cp["channel_values"] = {"x": "before"}
        cp["channel_versions"] = {"x": saver.get_next_version(None, None)}
        first = saver.put(config, cp, {"source": "input", "step": -1}, cp["channel_versions"])

        # What the dead writer got through: the chunks of a 1 MB checkpoint, no commit.
        torn = empty_checkpoint()
        torn["channel_versions"] = {"x": "2"}
        ctype, cdata = saver.serde.dumps_typed({k: v for k, v in torn.items() if k != "channel_values"})
        mtype, mdata = saver.serde.dumps_typed({"source": "loop", "step": 0})
        record = {
            "thread_id": thread, "checkpoint_ns": "", "checkpoint_id": torn["id"],
            "parent_checkpoint_id": first["configurable"]["checkpoint_id"], "written_at": 1,
            "checkpoint": {"type": ctype, "data": cdata}, "metadata": {"type": mtype, "data": mdata},
            "blobs": [{"channel": "x", "version": "2", "value": {"type": "bytes", "data": os.urandom(1_000_000)}}],
        }
        encoded = schemas.encode(schemas.RECORD_CHECKPOINT, record, compress=True)
        plan = plan_items(
            _keys.thread_pk(thread), _keys.checkpoint_sk("", torn["id"]), "C", encoded,
            written_at_ms=1, expires_at=None, max_item_bytes=saver.max_item_bytes,
        )
        assert len(plan.chunks) >= 3
        ddb = deployment.client("dynamodb")
        for chunk in plan.chunks:
            ddb.put_item(TableName=deployment.table_name, Item=chunk)

        tup = saver.get_tuple(config)
        assert tup is not None and tup.config == first
        assert tup.checkpoint["channel_values"] == {"x": "before"}
        assert [t.config for t in saver.list(config)] == [first]
        # The same plan completed by its commit becomes visible.
        ddb.put_item(TableName=deployment.table_name, Item=plan.commit)
        latest = saver.get_tuple(config)
        assert latest is not None
        assert latest.config["configurable"]["checkpoint_id"] == torn["id"]


def test_list_is_correct_across_1mb_pages(deployment: LocalDeployment) -> None:
    """A thread whose journal spans several 1 MB query pages lists completely, newest
    first, with before and limit applied across the pages."""
    thread = f"pages-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    with deployment.saver() as saver:
        stored = []
        parent = config
        for i in range(8):
            cp = empty_checkpoint()
            v = f"{i + 1:032}.0"
            cp["channel_values"] = {"blob": os.urandom(250_000), "i": i}
            cp["channel_versions"] = {"blob": v, "i": v}
            parent = saver.put(parent, cp, {"source": "loop", "step": i, "even": i % 2 == 0},
                               {"blob": v, "i": v})
            stored.append(parent)
        listed = list(saver.list(config))
        assert [t.config for t in listed] == stored[::-1]
        assert [t.checkpoint["channel_values"]["i"] for t in listed] == list(range(7, -1, -1))
        before = list(saver.list(config, before=stored[5], limit=2))
        assert [t.config for t in before] == [stored[4], stored[3]]
        evens = list(saver.list(config, filter={"even": True}))
        assert [t.metadata["step"] for t in evens] == [6, 4, 2, 0]
