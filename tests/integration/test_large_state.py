"""Large state never fails (I2): chunked records, sized with DynamoDB's formula; and a
history of several 1 MB pages is listed page by page (list and alist stream)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from checkpoint_journal import JournalSaver
from checkpoint_journal._core.size import MAX_ITEM_BYTES
from checkpoint_journal.local import LocalDeployment
from tests.integration.tables import partition


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
    items = partition(deployment, thread)
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
    from checkpoint_journal._core import seal as _seal
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
            ddb.put_item(TableName=deployment.table_name, Item=_seal.sealed(chunk))

        tup = saver.get_tuple(config)
        assert tup is not None and tup.config == first
        assert tup.checkpoint["channel_values"] == {"x": "before"}
        assert [t.config for t in saver.list(config)] == [first]
        # The same plan completed by its commit becomes visible.
        ddb.put_item(TableName=deployment.table_name, Item=_seal.sealed(plan.commit))
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


# -- list and alist stream page by page ---------------------------------------------------------


class _Queries:
    """Counts the Query requests (and every DynamoDB request) a saver's session makes."""

    def __init__(self, dep: LocalDeployment) -> None:
        self.session = dep.session()
        self.queries = 0
        self.requests = 0
        self.session.events.register("before-call.dynamodb.Query", self._query)
        self.session.events.register("before-call.dynamodb.*", self._request)

    def _query(self, **_: Any) -> None:
        self.queries += 1

    def _request(self, **_: Any) -> None:
        self.requests += 1

    def reset(self) -> None:
        self.queries = self.requests = 0


@pytest.fixture(scope="module")
def paged_thread(deployment: LocalDeployment) -> tuple[str, list[dict[str, Any]]]:
    """A thread whose journal spans several 1 MB Query pages (twelve 250 KB values), with
    every checkpoint projected: each is answered by its view, in the page that holds it."""
    thread = f"stream-{uuid.uuid4()}"
    stored = []
    with deployment.saver() as saver:
        parent: dict[str, Any] = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        for i in range(12):
            cp = empty_checkpoint()
            v = f"{i + 1:032}.0"
            cp["channel_values"] = {"blob": os.urandom(250_000), "i": i}
            cp["channel_versions"] = {"blob": v, "i": v}
            parent = saver.put(parent, cp, {"source": "loop", "step": i}, {"blob": v, "i": v})
            stored.append(parent)
    deployment.drain(timeout=120)
    return thread, stored[::-1]


def test_list_yields_the_first_page_before_reading_the_next(
    deployment: LocalDeployment, paged_thread: tuple[str, list[dict[str, Any]]]
) -> None:
    thread, newest_first = paged_thread
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    counter = _Queries(deployment)
    with deployment.saver(boto3_session=counter.session) as saver:
        listed = [t.config for t in saver.list(config)]
        assert listed == newest_first
        pages = counter.queries
        assert pages >= 3  # the whole listing needs several pages
        counter.reset()
        first = next(iter(saver.list(config)))
        assert first.config == newest_first[0]
        assert counter.queries == 1  # a listing collected first would have read them all
        # limit=1 reads no more than get_tuple does.
        counter.reset()
        latest = saver.get_tuple(config)
        by_get_tuple = counter.requests
        counter.reset()
        (only,) = saver.list(config, limit=1)
        assert latest is not None and only.config == latest.config == newest_first[0]
        assert counter.requests <= by_get_tuple
        # ``before`` starts the read at that checkpoint, not at the newest.
        counter.reset()
        older = list(saver.list(config, before=newest_first[8], limit=2))
        assert [t.config for t in older] == newest_first[9:11]
        assert counter.queries == 1


async def test_alist_yields_each_tuple_as_the_pages_answer_it(
    deployment: LocalDeployment, paged_thread: tuple[str, list[dict[str, Any]]]
) -> None:
    thread, newest_first = paged_thread
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    counter = _Queries(deployment)
    with deployment.saver(boto3_session=counter.session) as saver:
        async for first in saver.alist(config):
            break
        assert first.config == newest_first[0]
        assert counter.queries == 1  # alist did not collect the listing before yielding
        counter.reset()
        everything = [t.config async for t in saver.alist(config)]
        assert everything == newest_first
        assert counter.queries >= 3


def test_list_of_every_namespace_streams_the_root_namespace(
    deployment: LocalDeployment, paged_thread: tuple[str, list[dict[str, Any]]]
) -> None:
    thread, newest_first = paged_thread
    config = {"configurable": {"thread_id": thread}}  # no checkpoint_ns: every namespace
    counter = _Queries(deployment)
    with deployment.saver(boto3_session=counter.session) as saver:
        assert [t.config for t in saver.list(config)] == newest_first
        whole = counter.queries
        counter.reset()
        assert next(iter(saver.list(config))).config == newest_first[0]
        assert counter.queries < whole
