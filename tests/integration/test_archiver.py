"""The archiver against the local deployment: the stream runner feeds it as Lambda would.

Runs on both backends (the session's shared deployments). A spy around the real handler
(``set_handler_wrapper``) records the batches the runner delivers and the object keys the
handler reports, so each test reads exactly the files its own writes produced; the files
themselves are read back with plain fastavro (their plain fields) and with the archive
reader (``_archive_read``: their sealed content, opened with the thread's key).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import fastavro
import pytest
from botocore.config import Config

from checkpoint_journal import schemas
from checkpoint_journal._core import archive as _archive
from checkpoint_journal._core import archive_read as _archive_read
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import shred as _shred
from checkpoint_journal.errors import BucketNotFoundError, TransientError
from checkpoint_journal.local import LocalDeployment
from checkpoint_journal.stream_handlers._archiver import Archiver
from checkpoint_journal.stream_handlers.archiver import make_handler
from tests.integration.graphs import build_chat
from tests.integration.tables import partition

FUNCTION = "ArchiverFunction"
KEY_RE = re.compile(r"^archive/date=(\d{4}-\d{2}-\d{2})/(\d{40})-(\d{40})\.avro$")
RECORD_OF_KIND = {"C": schemas.RECORD_CHECKPOINT, "W": schemas.RECORD_WRITES,
                  "B": schemas.RECORD_BLOBS}


class Spy:
    """Batches delivered to the archiver, and what it answered, while installed."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.keys: list[str] = []
        self.batches: list[tuple[dict[str, Any], str]] = []
        """(event, key of the file written for it)."""

    def wrap(self, real: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
        def handler(event: dict[str, Any], context: Any) -> Any:
            copy = json.loads(json.dumps(event))
            self.events.append(copy)
            answer = real(event, context)
            if answer and answer.get("key"):
                self.keys.append(answer["key"])
                self.batches.append((copy, answer["key"]))
            return answer

        return handler


@contextmanager
def spying(dep: LocalDeployment) -> Iterator[Spy]:
    dep.drain()  # earlier tests' records go to earlier batches
    spy = Spy()
    dep.runner.set_handler_wrapper(FUNCTION, spy.wrap)
    try:
        yield spy
        dep.drain()
    finally:
        dep.runner.set_handler_wrapper(FUNCTION, None)


def archived(dep: LocalDeployment, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    s3 = dep.client("s3")
    out = {}
    for key in keys:
        body = s3.get_object(Bucket=dep.bucket, Key=key)["Body"].read()
        out[key] = list(fastavro.reader(io.BytesIO(body)))
    return out


def opened(dep: LocalDeployment, keys: list[str]) -> dict[tuple[str, str], _archive_read.ArchivedEvent]:
    """The events of these files by table key, their content opened (the archive reader,
    with the table's archive keys)."""
    s3 = dep.client("s3")
    content = _archive_read._Content(dep.client("dynamodb"), dep.table_name)
    out = {}
    try:
        for key in keys:
            body = s3.get_object(Bucket=dep.bucket, Key=key)["Body"].read()
            for position, raw in _archive.read_container(body, key, _fail):
                ev = _archive_read.resolve(key, position, raw, content)
                out[(ev.pk, ev.sk)] = ev
    finally:
        content.close()
    return out


def _fail(damage: _archive.ArchiveDamage) -> None:
    raise AssertionError(f"damaged archive: {damage}")


def archive_keys(dep: LocalDeployment) -> dict[str, str]:
    s3 = dep.client("s3")
    return {
        o["Key"]: o["ETag"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=dep.bucket, Prefix="archive/")
        for o in page.get("Contents", [])
    }


def function_env(dep: LocalDeployment) -> dict[str, str]:
    """The archiver's environment as the runner builds it: template, then endpoints."""
    (source,) = [s for s in dep.stream_sources if s.function == FUNCTION]
    return {**source.environment, **dep.aws_env()}


def test_the_deployment_runs_both_consumers_and_drains_both(deployment: LocalDeployment) -> None:
    status = {s.mapping: s for s in deployment.runner.status()}
    assert set(status) == {"ProjectorFunction/Journal", "ArchiverFunction/Journal"}
    assert status["ArchiverFunction/Journal"].stream_arn == status["ProjectorFunction/Journal"].stream_arn
    (source,) = [s for s in deployment.stream_sources if s.function == FUNCTION]
    assert source.environment["BUCKET_NAME"] == deployment.bucket
    assert source.environment["TABLE_NAME"] == deployment.table_name
    assert source.on_failure == "ArchiverFailureQueue" and source.on_failure in deployment.queues
    # The template's 60 s window holds records back; drain closes it early.
    assert source.maximum_batching_window_in_seconds == 60
    deployment.drain()
    before = {s.mapping: s.records_delivered for s in deployment.runner.status()}
    thread = f"arc-drain-{uuid.uuid4()}"
    with deployment.saver() as saver:
        build_chat(saver).invoke({"messages": ["x"]}, {"configurable": {"thread_id": thread}})
    deployment.drain(timeout=30)
    after = {s.mapping: s for s in deployment.runner.status()}
    for mapping, s in after.items():
        assert s.caught_up and s.records_buffered == 0 and s.in_flight == 0, s
        # Both received the run's journal records (at least a checkpoint and a write).
        assert s.records_delivered >= before[mapping] + 2, s
    assert deployment.failure_messages(FUNCTION) == []


def test_a_graph_run_is_archived_once_per_journal_event(deployment: LocalDeployment) -> None:
    thread = f"arc-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread}}
    started = dt.datetime.now(dt.UTC)
    with spying(deployment) as spy, deployment.saver() as saver:
        graph = build_chat(saver)
        for turn in ("hello", "again", "bye"):
            graph.invoke({"messages": [turn]}, cfg)
    finished = dt.datetime.now(dt.UTC)
    assert spy.keys, "the archiver wrote no file"
    files = archived(deployment, spy.keys)
    for event, key in spy.batches:
        m = KEY_RE.match(key)
        assert m, key
        # The range is the batch's first and last sequence numbers; date= is the first
        # record's day (UTC).
        ordered = sorted(event["Records"], key=lambda r: int(r["dynamodb"]["SequenceNumber"]))
        first, last = ordered[0], ordered[-1]
        assert (int(m[2]), int(m[3])) == (int(first["dynamodb"]["SequenceNumber"]),
                                          int(last["dynamodb"]["SequenceNumber"]))
        created = dt.datetime.fromtimestamp(first["dynamodb"]["ApproximateCreationDateTime"], dt.UTC)
        assert m[1] == created.date().isoformat()

    mine = [r for records in files.values() for r in records if r["thread_id"] == thread]
    events = opened(deployment, spy.keys)
    table = {(i["PK"]["S"], i["SK"]["S"]): i for i in partition(deployment, thread)
             if i["kind"]["S"] in ("C", "W")}
    key_item = _shred.DynamoKeyStore(deployment.client("dynamodb"),
                                     deployment.table_name).get(thread)
    assert key_item is not None
    assert len(table) >= 3 * 3  # three turns: checkpoints and writes
    # Exactly one archive record per journal event of the run, none for anything else.
    assert sorted((r["pk"], r["sk"]) for r in mine) == sorted(table)
    assert len({r["sequence_number"] for r in mine}) == len(mine)
    for r in mine:
        item = table[(r["pk"], r["sk"])]
        key = _keys.parse_sk(r["sk"])
        assert (r["checkpoint_ns"], r["checkpoint_id"], r["kind"]) == (
            key.checkpoint_ns, key.checkpoint_id, item["kind"]["S"])
        assert r["event_name"] == "INSERT"
        assert r["written_at"] == dt.datetime.fromtimestamp(
            int(item["written_at"]["N"]) / 1000, dt.UTC)
        # DynamoDB rounds it down to the second, DynamoDB Local to the minute.
        assert started - dt.timedelta(seconds=61) <= r["approximate_creation_time"] <= finished
        assert (r["fingerprint"], r["codec"]) == (item["fp"]["S"], item["codec"]["S"])
        # Small bodies travel whole, sealed under the thread's key (only plain fields are
        # in clear); opened, they are the journal's bytes and decode with its codec.
        assert set(r["body"]) == {"nonce", "ciphertext"} and r["metadata_json"] is None
        assert r["key_id"] == key_item.key_id
        ev = events[(r["pk"], r["sk"])]
        assert ev.state == "inline" and ev.body == item["body"]["B"]
        decoded = schemas.decode(RECORD_OF_KIND[r["kind"]], ev.body, r["fingerprint"], r["codec"])
        assert (decoded["thread_id"], decoded["checkpoint_id"]) == (thread, r["checkpoint_id"])
        if r["kind"] == "W":
            assert r["task_id"] == decoded["task_id"]
        if r["kind"] == "C":
            md = json.loads(ev.metadata_json or "")
            assert md["source"] == r["source"] and md["step"] == r["step"]
            assert r["source"] in ("input", "loop")
    assert sorted(r["step"] for r in mine if r["kind"] == "C") == sorted(
        int(i["md"]["M"]["step"]["N"]) for i in table.values() if i["kind"]["S"] == "C")


def test_a_chunked_record_is_archived_by_reference(deployment: LocalDeployment) -> None:
    thread = f"arc-big-{uuid.uuid4()}"
    # 900 KB of hex, ~450 KB once zstd-compressed: over the item limit on both backends.
    big = os.urandom(450_000).hex()
    with spying(deployment) as spy, deployment.saver() as saver:
        build_chat(saver).invoke({"messages": ["x"], "notes": [big]},
                                 {"configurable": {"thread_id": thread}})
    mine = [r for records in archived(deployment, spy.keys).values() for r in records
            if r["thread_id"] == thread]
    events = opened(deployment, spy.keys)
    items = partition(deployment, thread)
    commits = {(i["PK"]["S"], i["SK"]["S"]): i for i in items if "chunks" in i}
    assert commits, "nothing was chunked: the test no longer covers references"
    by_key = {(r["pk"], r["sk"]): r for r in mine}
    for key, commit in commits.items():
        ref = by_key[key]["body"]
        assert ref == {"digest": commit["digest"]["S"], "size": None,
                       "chunks": int(commit["chunks"]["N"])}
        assert by_key[key]["fingerprint"] == commit["fp"]["S"]
        # The reader fetches it from the table (chunks) and checks it against the digest.
        chunks = {i["SK"]["S"]: i for i in items}
        whole = b"".join(chunks[_keys.chunk_sk(key[1], n)]["body"]["B"]
                         for n in range(int(commit["chunks"]["N"])))
        assert events[key].state == "referenced" and events[key].body == whole
    # Chunks are not events. The other bodies travel inline up to the limit (64 KiB).
    assert not any(r["sk"].startswith("P#") for r in mine)
    limit = int(function_env(deployment)["ARCHIVE_INLINE_LIMIT_BYTES"])
    for i in items:
        key = (i["PK"]["S"], i["SK"]["S"])
        if key in commits or i["kind"]["S"] not in ("C", "W"):
            continue
        body = i["body"]["B"]
        if len(body) <= limit:
            assert events[key].state == "inline" and events[key].body == body
        else:
            assert by_key[key]["body"] == {
                "digest": hashlib.sha256(body).hexdigest(), "size": len(body), "chunks": 0}
    assert len(mine) == sum(1 for i in items if i["kind"]["S"] in ("C", "W"))


def test_a_retried_batch_leaves_its_locked_file_as_written(deployment: LocalDeployment) -> None:
    thread = f"arc-retry-{uuid.uuid4()}"
    with spying(deployment) as spy, deployment.saver() as saver:
        build_chat(saver).invoke({"messages": ["x"]}, {"configurable": {"thread_id": thread}})
    event = next(e for e in spy.events
                 if any(_keys.thread_pk(thread) == r["dynamodb"]["Keys"]["PK"]["S"]
                        for r in e["Records"]))
    before = archive_keys(deployment)
    handle = make_handler(function_env(deployment))
    # Lambda retrying the batch, twice: the same key, never overwritten (If-None-Match),
    # no new file and no new version of it.
    first, second = handle(json.loads(json.dumps(event)), None), handle(event, None)
    assert first == second and first["key"] in spy.keys
    assert archive_keys(deployment) == before
    s3 = deployment.client("s3")
    versions = s3.list_object_versions(Bucket=deployment.bucket, Prefix=first["key"])
    assert len(versions.get("Versions", [])) == 1
    # Under the Object Lock the template's parameters ask for.
    head = s3.head_object(Bucket=deployment.bucket, Key=first["key"])
    env = function_env(deployment)
    assert head["ObjectLockMode"] == env["ARCHIVE_OBJECT_LOCK_MODE"]
    days = (head["ObjectLockRetainUntilDate"] - dt.datetime.now(dt.UTC)).days
    assert days >= int(env["ARCHIVE_RETENTION_DAYS"])


def test_s3_unavailable_fails_the_whole_batch_and_leaves_nothing(
    deployment: LocalDeployment,
) -> None:
    thread = f"arc-fail-{uuid.uuid4()}"
    with spying(deployment) as spy, deployment.saver() as saver:
        build_chat(saver).invoke({"messages": ["x"]}, {"configurable": {"thread_id": thread}})
    event = spy.events[-1]
    for key in spy.keys:  # as if this batch had never been archived
        deployment.client("s3").delete_object(Bucket=deployment.bucket, Key=key)
    before = archive_keys(deployment)

    env = function_env(deployment)
    # No such bucket: S3 answers, and refuses.
    with pytest.raises(BucketNotFoundError):
        make_handler({**env, "BUCKET_NAME": f"no-such-{uuid.uuid4().hex[:8]}"})(event, None)
    # No S3 at all: nothing answers (one quick attempt; Lambda's retries are the runner's).
    dead = deployment.session().client(
        "s3", endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    keys = _shred.DynamoKeyStore(deployment.client("dynamodb"), deployment.table_name)
    with pytest.raises(TransientError):
        make_handler(env, Archiver(s3=dead, bucket=deployment.bucket, keys=keys))(event, None)
    assert archive_keys(deployment) == before
    # Once S3 is back, the retry writes the file the first attempt would have written.
    assert make_handler(env)(event, None)["key"] in spy.keys


def test_delete_thread_is_archived_as_its_tombstone(deployment: LocalDeployment) -> None:
    thread = f"arc-del-{uuid.uuid4()}"
    with spying(deployment) as spy, deployment.saver() as saver:
        build_chat(saver).invoke({"messages": ["x"]}, {"configurable": {"thread_id": thread}})
        saver.delete_thread(thread)
    mine = [r for records in archived(deployment, spy.keys).values() for r in records
            if r["thread_id"] == thread]
    (tomb,) = [r for r in mine if r["kind"] == "X"]
    assert (tomb["checkpoint_ns"], tomb["checkpoint_id"], tomb["body"]) == ("", None, None)
    assert tomb["event_name"] == "INSERT" and tomb["written_at"] is not None
    # The deletes themselves (REMOVE records) are not events of the archive; what was
    # archived before stays (the archive is append-only), its content shredded (the
    # thread's key is gone: tests/integration/test_privacy.py).
    assert {r["kind"] for r in mine} == {"C", "W", "X"}
    # Stream order: the tombstone after every event it hides.
    assert max(int(r["sequence_number"]) for r in mine if r["kind"] != "X") < int(
        tomb["sequence_number"])


def test_a_prune_is_archived_as_its_removal_marker(deployment: LocalDeployment) -> None:
    thread = f"arc-prune-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread}}
    with spying(deployment) as spy, deployment.saver() as saver:
        graph = build_chat(saver)
        for turn in ("a", "b"):
            graph.invoke({"messages": [turn]}, cfg)
        ids = [s.config["configurable"]["checkpoint_id"] for s in graph.get_state_history(cfg)]
        saver.prune([thread], strategy="keep_latest")
    events = [e for e in opened(deployment, spy.keys).values() if e.thread_id == thread]
    (marker,) = [e for e in events if e.kind == _keys.KIND_REMOVAL]
    # Sealed like the other events, and opened with the thread's key.
    assert marker.state == "inline" and marker.key_id is not None
    assert (marker.checkpoint_ns, marker.checkpoint_id) == ("", None)
    record = marker.record()
    assert record is not None and record["reason"] == "prune"
    assert sorted(r["checkpoint_id"] for r in record["removed"]) == sorted(ids[1:])
