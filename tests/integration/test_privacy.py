"""Privacy of the audit archive: ``delete_thread`` crypto-shreds a thread's archived events.

Against the local deployment on both backends, with the real saver, archiver and
projector. Threads are written with ``compression=False``, so that their values travel
as plain msgpack inside the journal's Avro bodies: a distinctive value then shows in the
clear wherever a body is not sealed, and the checks below that it is nowhere in the
archive mean something (a control asserts it is in the journal table).
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fastavro
import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_journal._core import archive as _archive
from checkpoint_journal._core import archive_read as _archive_read
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import shred as _shred
from checkpoint_journal.cli import main
from checkpoint_journal.local import LocalDeployment
from checkpoint_journal.stream_handlers.archiver import make_handler
from checkpoint_journal.stream_handlers.projector import make_projector
from tests.integration.graphs import build_chat
from tests.integration.tables import partition
from tests.integration.test_archiver import (
    FUNCTION,
    function_env,
    spying,
)

SERDE = JsonPlusSerializer()


@dataclass
class Scenario:
    dep: LocalDeployment
    erased: str
    kept: str
    erased_secret: str
    erased_md_secret: str
    kept_secret: str
    files: dict[str, bytes]
    """Every archive file holding an event of either thread, as it was before the delete."""
    before: list[_archive_read.ArchivedEvent]
    """Both threads' events, read before the delete."""
    erased_messages: list[str]


def _events(dep: LocalDeployment, *threads: str) -> list[_archive_read.ArchivedEvent]:
    damaged: list[_archive.ArchiveDamage] = []
    out = [e for e in _archive_read.iter_archive(
        dep.client("s3"), dep.bucket, dynamodb=dep.client("dynamodb"), table=dep.table_name,
        damaged=damaged) if e.thread_id in threads]
    assert damaged == []
    return out


def _objects(dep: LocalDeployment, keys: set[str]) -> dict[str, bytes]:
    s3 = dep.client("s3")
    return {k: s3.get_object(Bucket=dep.bucket, Key=k)["Body"].read() for k in sorted(keys)}


def _everything_in(data: bytes) -> bytes:
    """A file's raw bytes and its records' every field inflated (its deflate blocks
    undone), so a value in the clear anywhere in it shows."""
    records = list(fastavro.reader(io.BytesIO(data)))
    return data + repr(records).encode() + b"".join(
        v if isinstance(v, bytes) else b"" for r in records for v in _leaves(r))


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _typed_values(record: Any) -> Iterator[Any]:
    """Every typed value ({type, data}) of a decoded journal record, deserialised."""
    if isinstance(record, dict):
        if set(record) == {"type", "data"}:
            yield SERDE.loads_typed((record["type"], record["data"]))
            return
        for v in record.values():
            yield from _typed_values(v)
    elif isinstance(record, list):
        for v in record:
            yield from _typed_values(v)


@pytest.fixture(scope="module")
def scenario(deployment: LocalDeployment) -> Iterator[Scenario]:
    run = uuid.uuid4().hex[:8]
    erased, kept = f"erase-me-{run}", f"keep-me-{run}"
    erased_secret, kept_secret = f"card-4111-{run}", f"kept-note-{run}"
    erased_md_secret = f"alice-{run}@example.com"
    with spying(deployment) as spy, deployment.saver(compression=False) as saver:
        graph = build_chat(saver)
        # Interleaved, so that both threads' events share the archive's files.
        for turn in range(2):
            graph.invoke({"messages": [f"{erased_secret} #{turn}"]},
                         {"configurable": {"thread_id": erased},
                          "metadata": {"customer_email": erased_md_secret}})
            graph.invoke({"messages": [f"{kept_secret} #{turn}"]},
                         {"configurable": {"thread_id": kept}})
        messages = graph.get_state({"configurable": {"thread_id": erased}}).values["messages"]
    before = _events(deployment, erased, kept)
    files = _objects(deployment, {e.file for e in before})
    assert set(files) <= set(spy.keys)
    yield Scenario(deployment, erased, kept, erased_secret, erased_md_secret, kept_secret,
                   files, before, messages)


def test_archived_events_are_sealed_and_read_back_as_the_saver_wrote_them(
    scenario: Scenario,
) -> None:
    dep = scenario.dep
    items = {(i["PK"]["S"], i["SK"]["S"]): i for i in partition(dep, scenario.erased)}
    mine = [e for e in scenario.before if e.thread_id == scenario.erased]
    assert {e.kind for e in mine} == {"C", "W"}
    # Control: the journal holds the values in the clear (uncompressed bodies), so the
    # archive checks below would see them if they were not sealed.
    assert any(scenario.erased_secret.encode() in i["body"]["B"] for i in items.values()
               if "body" in i)
    values = []
    for e in mine:
        assert e.state == "inline" and e.body == items[(e.pk, e.sk)]["body"]["B"]
        values += list(_typed_values(e.record()))
        if e.kind == "C":
            assert json.loads(e.metadata_json or "")["customer_email"] == (
                scenario.erased_md_secret)
    assert scenario.erased_messages in values
    key = _shred.DynamoKeyStore(dep.client("dynamodb"), dep.table_name).get(scenario.erased)
    assert key is not None and {e.key_id for e in mine} == {key.key_id}
    # Sealed in every file: neither the values nor the metadata are anywhere in clear.
    for data in scenario.files.values():
        everything = _everything_in(data)
        for secret in (scenario.erased_secret, scenario.erased_md_secret,
                       scenario.kept_secret):
            assert secret.encode() not in everything


def test_delete_thread_shreds_the_threads_archived_events_and_no_others(
    scenario: Scenario,
) -> None:
    dep = scenario.dep
    with dep.saver() as saver:
        saver.delete_thread(scenario.erased)
    dep.drain()
    # The archive is immutable: the same files, byte for byte (the tombstone went to a
    # new one).
    assert _objects(dep, set(scenario.files)) == scenario.files
    store = _shred.DynamoKeyStore(dep.client("dynamodb"), dep.table_name)
    assert store.get(scenario.erased) is None
    after = {e.sequence_number: e for e in _events(dep, scenario.erased, scenario.kept)}
    erased = [e for e in scenario.before if e.thread_id == scenario.erased]
    kept = [e for e in scenario.before if e.thread_id == scenario.kept]
    for e in erased:
        now = after[e.sequence_number]
        assert (now.state, now.body, now.metadata_json, now.record()) == (
            "shredded", None, None, None)
        assert (now.file, now.sk, now.kind, now.thread_id) == (e.file, e.sk, e.kind,
                                                               e.thread_id)
    for e in kept:
        assert after[e.sequence_number] == e  # readable as before
    # The other thread shares files with the erased one, and they read.
    assert {e.file for e in erased} & {e.file for e in kept}
    # By any means: no key left in the table opens an erased record.
    ddb = dep.client("dynamodb")
    keys = [_shred.parse_key_item("?", i) for page in ddb.get_paginator("scan").paginate(
        TableName=dep.table_name, ConsistentRead=True,
        ScanFilter={"PK": {"AttributeValueList": [{"S": "K#"}],
                           "ComparisonOperator": "BEGINS_WITH"}}) for i in page["Items"]]
    assert keys and scenario.erased not in {k.thread_id for k in keys}
    for data in scenario.files.values():
        for r in fastavro.reader(io.BytesIO(data)):
            if r["thread_id"] != scenario.erased or not isinstance(r["body"], dict):
                continue
            sealed = _shred.Sealed(r["body"]["nonce"], r["body"]["ciphertext"])
            for k in keys:
                with pytest.raises(_shred.UndecryptableError):
                    _shred.unseal(k, sealed, pk=r["pk"], sk=r["sk"], field_name="body")
    # The deletion itself is archived: its tombstone, with no content.
    tombs = [e for e in _events(dep, scenario.erased) if e.kind == "X"]
    assert tombs and all(t.state == "none" for t in tombs)


def test_a_reused_thread_gets_a_new_key_and_its_new_events_read(scenario: Scenario) -> None:
    dep = scenario.dep
    with dep.saver(compression=False) as saver:
        saver.delete_thread(scenario.erased)  # idempotent if the test above ran
        build_chat(saver).invoke({"messages": ["a new life"]},
                                 {"configurable": {"thread_id": scenario.erased}})
    dep.drain()
    old_ids = {e.key_id for e in scenario.before if e.thread_id == scenario.erased}
    key = _shred.DynamoKeyStore(dep.client("dynamodb"), dep.table_name).get(scenario.erased)
    assert key is not None and key.key_id not in old_ids
    old_seqs = {e.sequence_number for e in scenario.before}
    events = _events(dep, scenario.erased)
    new = [e for e in events if e.kind in "CW" and e.key_id == key.key_id]
    assert new and all(e.state == "inline" for e in new)
    assert any(["a new life", "echo:a new life"] == v
               for e in new for v in _typed_values(e.record()))
    assert all(e.state == "shredded" for e in events if e.sequence_number in old_seqs)


def test_a_batch_retried_after_delete_thread_recreates_no_key(
    deployment: LocalDeployment,
) -> None:
    thread, other = f"retry-erased-{uuid.uuid4()}", f"retry-kept-{uuid.uuid4()}"
    with spying(deployment) as spy, deployment.saver() as saver:
        graph = build_chat(saver)
        graph.invoke({"messages": ["x"]}, {"configurable": {"thread_id": thread}})
        graph.invoke({"messages": ["y"]}, {"configurable": {"thread_id": other}})
    pk = _keys.thread_pk(thread)
    (event, key), *_ = [(e, k) for e, k in spy.batches
                        if any(r["dynamodb"]["Keys"]["PK"]["S"] == pk for r in e["Records"])]
    with deployment.saver() as saver:
        saver.delete_thread(thread)
    deployment.drain()
    store = _shred.DynamoKeyStore(deployment.client("dynamodb"), deployment.table_name)
    assert store.get(thread) is None
    # Lambda retries the batch now (a cold container: nothing cached). The thread has no
    # key and none of its events exist: it must not get a key that outlives it.
    answer = make_handler(function_env(deployment))(json.loads(json.dumps(event)), None)
    assert answer["key"] == key and answer["withheld"] >= 2
    assert store.get(thread) is None
    s3 = deployment.client("s3")
    data = s3.get_object(Bucket=deployment.bucket, Key=key)["Body"].read()
    content = _archive_read._Content(deployment.client("dynamodb"), deployment.table_name)
    try:
        events = [_archive_read.resolve(key, p, raw, content) for p, raw in
                  _archive.read_container(data, key, lambda d: pytest.fail(str(d)))]
    finally:
        content.close()
    # Archive files are written once: the retry leaves the first file, whose events were
    # sealed under the key delete_thread destroyed. Shredded either way.
    assert {e.state for e in events if e.thread_id == thread} == {"shredded"}
    assert _shred.WITHHELD_KEY_ID not in {e.key_id for e in events if e.thread_id == thread}
    assert {e.state for e in events if e.thread_id == other} <= {"inline", "none"}
    assert deployment.failure_messages(FUNCTION) == []


def test_archive_keys_trip_neither_the_projector_nor_the_browsing_commands(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    dep = scenario.dep
    ddb = dep.client("dynamodb")
    # Every page of the scan (Limit bounds the items read before the filter, and the
    # session table holds every test's items): stop at the first archive key.
    pages = ddb.get_paginator("scan").paginate(
        TableName=dep.table_name, ProjectionExpression="PK",
        FilterExpression="begins_with(PK, :k)", ExpressionAttributeValues={":k": {"S": "K#"}})
    assert any(page["Items"] for page in pages), \
        "no archive key in the table: this test checks nothing"
    # rebuild --all walks the table's partitions: K# ones are no threads.
    env = {"TABLE_NAME": dep.table_name, "BUCKET_NAME": dep.bucket, **dep.aws_env()}
    projector = make_projector(env)
    try:
        threads = list(projector.threads())
        assert scenario.kept in threads
        assert not any(t.startswith("K#") for t in threads)
        projector.rebuild_thread(scenario.kept)
    finally:
        projector.close()
    for name, value in dep.env().items():
        monkeypatch.setenv(name, value)
    assert main(["threads", "--json"]) == 0
    listed = {t["thread_id"] for t in json.loads(capsys.readouterr().out)["threads"]}
    assert scenario.kept in listed and not any(t.startswith("K#") for t in listed)
    # The projector got the REMOVE of every deleted key, and ignored it.
    assert dep.failure_messages("ProjectorFunction", consume=False) == []


def test_an_edited_archive_file_is_caught_and_the_rest_still_reads(scenario: Scenario) -> None:
    dep = scenario.dep
    s3 = dep.client("s3")
    file, original = next((k, v) for k, v in scenario.files.items() if any(
        e.file == k and e.thread_id == scenario.kept and e.kind == "C" for e in scenario.before))
    reader = fastavro.reader(io.BytesIO(original))
    records = list(reader)
    target = next(i for i, r in enumerate(records)
                  if r["thread_id"] == scenario.kept and r["kind"] == "C")
    # Someone with write access to the bucket rewrites the file, one byte of one sealed
    # body changed, in uncompressed blocks so that the byte is in the object as it is.
    buf = io.BytesIO()
    fastavro.writer(buf, reader.writer_schema, records, codec="null",
                    metadata={k: v for k, v in reader.metadata.items()
                              if not k.startswith("avro.")})
    raw = bytearray(buf.getvalue())
    raw[bytes(raw).index(records[target]["body"]["ciphertext"]) + 9] ^= 0x04
    try:
        s3.put_object(Bucket=dep.bucket, Key=file, Body=bytes(raw))
        read = {e.position: e for e in _events(dep, scenario.kept, scenario.erased)
                if e.file == file}
        assert read[target].state == "undecryptable"
        assert read[target].body is None and read[target].metadata_json is None
        others = [e for p, e in read.items() if p != target and e.thread_id == scenario.kept]
        assert others and all(e.state in ("inline", "none") for e in others)
        # An edit that breaks the container costs what it breaks, not the iteration.
        s3.put_object(Bucket=dep.bucket, Key=file, Body=original[: len(original) // 2])
        later = f"after-the-edit-{uuid.uuid4()}"
        with dep.saver() as saver:
            build_chat(saver).invoke({"messages": ["z"]}, {"configurable": {"thread_id": later}})
        dep.drain()
        damaged: list[_archive.ArchiveDamage] = []
        events = list(_archive_read.iter_archive(
            s3, dep.bucket, dynamodb=dep.client("dynamodb"), table=dep.table_name,
            damaged=damaged))
        assert [d.file for d in damaged] == [file]
        # The files after it still read.
        assert {e.state for e in events if e.thread_id == later} == {"inline"}
    finally:
        s3.put_object(Bucket=dep.bucket, Key=file, Body=original)
