"""The projector's logic against the real local deployment, called directly.

These deployments run without stream consumers (``handlers=False``) so each test decides
when the projector runs; the stream runner's own tests drive the same code through
Lambda-shaped events.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

from checkpoint_journal import JournalSaver
from checkpoint_journal._core import blobs as _blobs
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.fold import decode_view
from checkpoint_journal.local import LocalDeployment
from checkpoint_journal.stream_handlers._projector import Doorbell, Projector
from checkpoint_journal.stream_handlers.projector import make_handler
from tests.integration.graphs import build_chat
from tests.integration.test_saver_behaviour import AesGcmCipher

BACKENDS = ["moto", "dynamodb-local"]


@pytest.fixture(scope="module", params=BACKENDS)
def quiet(request: pytest.FixtureRequest) -> Iterator[LocalDeployment]:
    """A deployment whose stream nobody consumes: the test runs the projector."""
    with LocalDeployment(backend=request.param, handlers=False) as dep:
        yield dep


def projector(dep: LocalDeployment, **kw: Any) -> Projector:
    return Projector(
        ddb=dep.client("dynamodb"), s3=dep.client("s3"), table_name=dep.table_name,
        bucket=dep.bucket, **kw,
    )


def project(dep: LocalDeployment, thread: str, *, tombstone: bool = False,
            removal: bool = False, **kw: Any) -> None:
    """Project every namespace the thread's partition mentions."""
    p = projector(dep, **kw)
    try:
        namespaces = {
            ns for _, sk in p.store.keys(_keys.thread_pk(thread), "")
            if (ns := _keys.namespace_of(sk)) is not None
        } or {""}
        for ns in namespaces:
            p.project(Doorbell(thread, ns, tombstone=tombstone, removal=removal))
    finally:
        p.close()


@contextmanager
def calls(saver: JournalSaver) -> Iterator[list[str]]:
    """Every request the saver sends (retries included), by operation name."""
    seen: list[str] = []

    def ddb(model: Any, **_: Any) -> None:
        seen.append(model.name)

    def s3(model: Any, **_: Any) -> None:
        seen.append("s3:" + model.name)

    saver._ddb.meta.events.register("before-send.*.*", lambda **kw: None)
    saver._ddb.meta.events.register("before-call.*.*", ddb)
    saver._s3.meta.events.register("before-call.*.*", s3)
    try:
        yield seen
    finally:
        saver._ddb.meta.events.unregister("before-call.*.*", ddb)
        saver._s3.meta.events.unregister("before-call.*.*", s3)


def items(dep: LocalDeployment, thread: str) -> list[dict[str, Any]]:
    client = dep.client("dynamodb")
    out: list[dict[str, Any]] = []
    kw: dict[str, Any] = {
        "TableName": dep.table_name, "KeyConditionExpression": "PK = :pk",
        "ExpressionAttributeValues": {":pk": {"S": _keys.thread_pk(thread)}},
        "ConsistentRead": True,
    }
    while True:
        page = client.query(**kw)
        out.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return out
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def objects(dep: LocalDeployment, prefix: str = "blobs/") -> dict[str, int]:
    s3 = dep.client("s3")
    out: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=dep.bucket, Prefix=prefix):
        out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return out


def observe(graph: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """What a user sees of a thread: its state and its whole history."""
    state = graph.get_state(cfg)
    history = list(graph.get_state_history(cfg))
    return {
        "values": state.values, "next": state.next, "config": state.config,
        "parent": state.parent_config, "tasks": [(t.name, t.result, t.interrupts) for t in state.tasks],
        "history": [(h.config, h.values, h.metadata, h.next, h.parent_config,
                     [(t.name, t.result, t.interrupts) for t in h.tasks]) for h in history],
    }


def run_turns(graph: Any, cfg: dict[str, Any], kb: str, n: int) -> None:
    graph.invoke({"messages": ["hello"], "notes": [kb]}, cfg)
    for i in range(n - 1):
        graph.invoke({"messages": [f"turn {i}"]}, cfg)


def kb_text(size: int) -> str:
    """Random hex of ``size`` characters (zstd halves it, no more)."""
    return os.urandom(size // 2 + 1).hex()[:size]


def test_views_answer_reads_in_one_query_with_identical_results(quiet: LocalDeployment) -> None:
    thread = f"v-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread}}
    with quiet.saver(blob_cache_bytes=0) as saver:
        graph = build_chat(saver)
        run_turns(graph, cfg, kb_text(120_000), 4)
        from_journal = observe(graph, cfg)
        project(quiet, thread)
        with calls(saver) as seen:
            state = graph.get_state(cfg)
        # One Query; the knowledge base (60 KB as stored) is one S3 object.
        assert seen == ["Query", "s3:GetObject"]
        with calls(saver) as seen:
            history = list(graph.get_state_history(cfg))
        # One page; two distinct large values in the whole history: the notes channel
        # and the graph input that carried it (the __start__ channel and its write).
        assert seen.count("Query") == 1 and seen.count("s3:GetObject") == 2
        assert len(history) == len(from_journal["history"])
        assert state.values == from_journal["values"]
        assert observe(graph, cfg) == from_journal


def test_reads_see_writes_the_projector_has_not_folded(quiet: LocalDeployment) -> None:
    thread = f"lag-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread}}
    with quiet.saver() as saver:
        graph = build_chat(saver)
        run_turns(graph, cfg, kb_text(50_000), 2)
        project(quiet, thread)
        graph.invoke({"messages": ["after the projection"]}, cfg)  # not projected
        state = graph.get_state(cfg)
        assert state.values["messages"][-2:] == ["after the projection", "echo:after the projection"]
        assert state.values["turns"] == 3
        history = list(graph.get_state_history(cfg))
        assert history[0].config == state.config
        project(quiet, thread)
        assert graph.get_state(cfg).values == state.values
        assert [h.values for h in graph.get_state_history(cfg)] == [h.values for h in history]


def test_rebuild_gives_the_items_incremental_projection_gave(quiet: LocalDeployment) -> None:
    thread = f"rb-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread}}
    with quiet.saver() as saver:
        graph = build_chat(saver)
        graph.invoke({"messages": ["one"], "notes": [kb_text(40_000)]}, cfg)
        project(quiet, thread)
        graph.invoke({"messages": ["two"]}, cfg)
        project(quiet, thread)
        graph.invoke({"messages": ["three"], "notes": [kb_text(500)]}, cfg)
        project(quiet, thread)
    incremental = projector_items(quiet, thread)
    blobs_before = objects(quiet)
    assert any(sk.endswith("#V") for sk in incremental)
    assert any(sk.startswith("I#") for sk in incremental)
    p = projector(quiet)
    p.rebuild_thread(thread)
    p.close()
    assert projector_items(quiet, thread) == incremental
    assert objects(quiet) == blobs_before


def projector_items(dep: LocalDeployment, thread: str) -> dict[str, Any]:
    """View (decoded), index and head items, without the head's projection time."""
    out: dict[str, Any] = {}
    for item in items(dep, thread):
        sk = item["SK"]["S"]
        kind = item.get("kind", {}).get("S")
        if kind == "V":
            out[sk] = (decode_view(item), {k: v for k, v in item.items() if k != "body"})
        elif kind in ("I", "H"):
            out[sk] = {k: v for k, v in item.items() if k not in ("pa", "seal")}  # the seal covers pa
    return out


def test_large_values_go_to_s3_once(quiet: LocalDeployment) -> None:
    thread = f"big-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread}}
    small, mid, huge = kb_text(8_000), kb_text(80_000), kb_text(900_000)
    with quiet.saver() as saver:
        graph = build_chat(saver)
        graph.invoke({"messages": ["a"], "notes": [small]}, cfg)
        project(quiet, thread)
        prefix = _blobs.thread_prefix(thread)
        assert objects(quiet, prefix) == {}  # small values stay inline in the view
        graph.invoke({"messages": ["b"], "notes": [mid]}, cfg)
        graph.invoke({"messages": ["c"]}, cfg)
        graph.invoke({"messages": ["d"], "notes": [huge]}, cfg)
        project(quiet, thread)
        stored = objects(quiet, prefix)
        sizes = sorted(stored.values())
        # The notes channel as of each new note, and the update writes that carried them
        # (serialized lists): every distinct value once, however many checkpoints show it.
        assert any(s >= 350 * 1024 for s in sizes)
        assert len(stored) == len(set(stored))
        views = [decode_view(i) for i in items(quiet, thread) if i["kind"]["S"] == "V"]
        refs = {v.key for view in views for _, v, _ in view.channels.values()
                if isinstance(v, _blobs_ref())}
        assert refs <= set(stored)
        assert graph.get_state(cfg).values["notes"] == [small, mid, huge]


def _blobs_ref() -> type:
    from checkpoint_journal._core.fold import BlobRef

    return BlobRef


def test_projection_is_idempotent_and_views_never_regress(quiet: LocalDeployment) -> None:
    thread = f"idem-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread}}
    with quiet.saver() as saver:
        graph = build_chat(saver)
        run_turns(graph, cfg, kb_text(100), 2)
        project(quiet, thread)
        first = projector_items(quiet, thread)
        p = projector(quiet)
        stats = p.project(Doorbell(thread, ""))
        p.close()
        assert stats.views_written == 0 and stats.views_current == len(
            [k for k in first if k.endswith("#V")])
        assert projector_items(quiet, thread) == first


def test_delete_thread_removes_views_index_and_blobs_and_reuse_is_clean(
    quiet: LocalDeployment,
) -> None:
    thread = f"del-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread}}
    with quiet.saver() as saver:
        graph = build_chat(saver)
        run_turns(graph, cfg, kb_text(90_000), 2)
        project(quiet, thread)
        assert objects(quiet, _blobs.thread_prefix(thread))
        saver.delete_thread(thread)
        assert graph.get_state(cfg).values == {}
        # A late projection (a stream record that arrives after the delete) resurrects
        # nothing; the tombstone's own record removes the blobs.
        project(quiet, thread)
        assert {i["kind"]["S"] for i in items(quiet, thread)} == {"X"}
        project(quiet, thread, tombstone=True)
        assert objects(quiet, _blobs.thread_prefix(thread)) == {}
        assert {i["kind"]["S"] for i in items(quiet, thread)} == {"X"}
        # The id is reused: new blobs live under a new incarnation, untouched by a
        # repeated cleanup of the old one.
        graph.invoke({"messages": ["again"], "notes": [kb_text(90_000)]}, cfg)
        project(quiet, thread)
        project(quiet, thread, tombstone=True)
        assert objects(quiet, _blobs.thread_prefix(thread))
        assert graph.get_state(cfg).values["messages"] == ["again", "echo:again"]


def test_prune_and_delete_for_runs_take_views_and_index_entries_along(
    quiet: LocalDeployment,
) -> None:
    thread = f"prune-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread}}
    with quiet.saver() as saver:
        graph = build_chat(saver)
        run_turns(graph, cfg, kb_text(60_000), 3)
        project(quiet, thread)
        latest = graph.get_state(cfg)
        saver.prune([thread], strategy="keep_latest")
        kinds = [(i["SK"]["S"], i["kind"]["S"]) for i in items(quiet, thread)]
        assert len([1 for _, k in kinds if k == "V"]) == 1
        owners = {_keys.owner(sk) for sk, k in kinds if k in ("V", "I", "C")}
        assert owners == {("", latest.config["configurable"]["checkpoint_id"])}
        project(quiet, thread, removal=True)
        after = graph.get_state(cfg)
        assert after.values == latest.values
        assert [h.config for h in graph.get_state_history(cfg)] == [latest.config]


def test_cross_thread_list_uses_the_indexes_not_a_scan(quiet: LocalDeployment) -> None:
    tag = uuid.uuid4().hex
    threads = [f"idx-{tag}-{i}" for i in range(3)]
    with quiet.saver() as saver:
        graph = build_chat(saver)
        for i, thread in enumerate(threads):
            cfg = {"configurable": {"thread_id": thread, "user_id": f"u-{tag}-{i % 2}"}}
            graph.invoke({"messages": ["hi"]}, cfg)
            graph.invoke({"messages": ["again"]}, cfg)
            project(quiet, thread)
        expected = sorted(
            (t for thread in threads[0::2]
             for t in saver.list({"configurable": {"thread_id": thread}})),
            key=lambda t: t.config["configurable"]["checkpoint_id"], reverse=True,
        )
        assert expected
        with calls(saver) as seen:
            got = list(saver.list(None, filter={"user_id": f"u-{tag}-0"}))
        assert "Scan" not in seen and set(seen) <= {"Query", "BatchGetItem"}
        assert [t.config for t in got] == [t.config for t in expected]
        assert [t.checkpoint for t in got] == [t.checkpoint for t in expected]
        assert [t.pending_writes for t in got] == [t.pending_writes for t in expected]
        two = list(saver.list(None, filter={"user_id": f"u-{tag}-0", "source": "input"}, limit=2))
        assert [t.metadata["source"] for t in two] == ["input", "input"]
        assert all(t.metadata["user_id"] == f"u-{tag}-0" for t in two)
        before = list(saver.list(None, filter={"user_id": f"u-{tag}-0"}, before=got[1].config))
        assert [t.config for t in before] == [t.config for t in expected[2:]]
        with calls(saver) as seen:
            everything = list(saver.list(None))
        assert "Scan" not in seen
        mine = [t for t in everything if t.config["configurable"]["thread_id"] in threads]
        assert len(mine) == sum(len(list(saver.list({"configurable": {"thread_id": t}})))
                                for t in threads)


def test_a_missing_blob_falls_back_to_the_journal(quiet: LocalDeployment) -> None:
    thread = f"miss-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread}}
    with quiet.saver() as saver:
        graph = build_chat(saver)
        run_turns(graph, cfg, kb_text(80_000), 2)
        expected = observe(graph, cfg)
        project(quiet, thread)
        s3 = quiet.client("s3")
        for key in objects(quiet, _blobs.thread_prefix(thread)):
            s3.delete_object(Bucket=quiet.bucket, Key=key)
        assert observe(graph, cfg) == expected
    with quiet.saver(bucket=None) as no_bucket:
        assert observe(build_chat(no_bucket), cfg) == expected


def test_encrypted_values_are_projected_without_being_decrypted(quiet: LocalDeployment) -> None:
    thread = f"enc-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread}}
    secret = "card 4111-1111-1111-1111 " + kb_text(70_000)
    serde = EncryptedSerializer(AesGcmCipher(os.urandom(32)))
    with quiet.saver(serde=serde) as saver:
        graph = build_chat(saver)
        graph.invoke({"messages": ["pay"], "notes": [secret]}, cfg)
        expected = observe(graph, cfg)
        project(quiet, thread)
        with calls(saver) as seen:
            assert graph.get_state(cfg).values["notes"] == [secret]
        assert seen[0] == "Query" and seen.count("Query") == 1
        assert observe(graph, cfg) == expected
    s3 = quiet.client("s3")
    for key in objects(quiet, _blobs.thread_prefix(thread)):
        body = s3.get_object(Bucket=quiet.bucket, Key=key)["Body"].read()
        assert b"4111-1111" not in body and b"4111-1111" not in _maybe_unzstd(body)
    for item in items(quiet, thread):
        if "body" in item:
            assert b"4111-1111" not in _maybe_unzstd(item["body"]["B"])


def _maybe_unzstd(body: bytes) -> bytes:
    import zstandard

    try:
        return zstandard.ZstdDecompressor().decompress(body, max_output_size=64 << 20)
    except zstandard.ZstdError:
        return body


def lambda_record(item_keys: dict[str, Any], seq: int, event: str = "INSERT",
                  kind: str = "C") -> dict[str, Any]:
    return {
        "eventID": str(seq), "eventName": event, "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": item_keys, "NewImage": {**item_keys, "kind": {"S": kind}},
            "SequenceNumber": f"{seq:021d}", "SizeBytes": 100, "StreamViewType": "NEW_IMAGE",
            "ApproximateCreationDateTime": 1.7e9,
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/x",
    }


def test_handler_reports_only_the_failed_namespace(quiet: LocalDeployment) -> None:
    good, bad = f"ok-{uuid.uuid4()}", f"bad-{uuid.uuid4()}"
    with quiet.saver() as saver:
        build_chat(saver).invoke({"messages": ["x"]}, {"configurable": {"thread_id": good}})
        build_chat(saver).invoke({"messages": ["y"], "notes": [kb_text(200_000)]},
                                 {"configurable": {"thread_id": bad}})
    env = {**quiet.env(), "TABLE_NAME": quiet.table_name, "BUCKET_NAME": "no-such-bucket-x"}
    handle = make_handler(env)
    records = [
        lambda_record({"PK": {"S": _keys.thread_pk(good)},
                       "SK": {"S": _keys.checkpoint_sk("", "0")}}, 1),
        lambda_record({"PK": {"S": _keys.thread_pk(bad)},
                       "SK": {"S": _keys.checkpoint_sk("", "0")}}, 2),
        lambda_record({"PK": {"S": _keys.thread_pk(good)},
                       "SK": {"S": _keys.view_sk("", "0")}}, 3, kind="V"),
    ]
    resp = handle({"Records": records}, None)
    # The big value cannot be offloaded (no such bucket): that record fails, the small
    # thread (no offload needed) is projected.
    assert resp == {"batchItemFailures": [{"itemIdentifier": f"{2:021d}"}]}
    assert any(i["kind"]["S"] == "V" for i in items(quiet, good))
    assert not any(i["kind"]["S"] == "V" for i in items(quiet, bad))


def test_rebuild_command(quiet: LocalDeployment, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    from checkpoint_journal.cli import main

    thread = f"cli-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread}}
    with quiet.saver(blob_cache_bytes=0) as saver:
        graph = build_chat(saver)
        run_turns(graph, cfg, kb_text(100_000), 2)
        expected = observe(graph, cfg)
        for k, v in quiet.env().items():
            monkeypatch.setenv(k, v)
        assert main(["rebuild", "--thread", thread]) == 0
        assert f"{thread}: 1 namespace(s)" in capsys.readouterr().out
        assert projector_items(quiet, thread)
        with calls(saver) as seen:
            graph.get_state(cfg)
        assert seen == ["Query", "s3:GetObject"]
        assert observe(graph, cfg) == expected
        monkeypatch.delenv("CHECKPOINT_JOURNAL_TABLE")
        assert main(["rebuild", "--all"]) == 2
        assert "no table" in capsys.readouterr().err


def test_offloaded_values_are_fetched_once_per_process(quiet: LocalDeployment) -> None:
    thread = f"cache-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread}}
    with quiet.saver() as saver:
        graph = build_chat(saver)
        run_turns(graph, cfg, kb_text(100_000), 2)
        project(quiet, thread)
        with calls(saver) as seen:
            first = graph.get_state(cfg)
            graph.invoke({"messages": ["more"]}, cfg)
            project(quiet, thread)
            second = graph.get_state(cfg)
        assert seen.count("s3:GetObject") == 1
        assert second.values["notes"] == first.values["notes"]
        second.values["notes"].append("mutated by the caller")
        assert graph.get_state(cfg).values["notes"] == first.values["notes"]


def test_blobs_no_view_needs_after_prune_are_tagged_for_the_lifecycle_rule(
    quiet: LocalDeployment,
) -> None:
    thread = f"orphan-{uuid.uuid4()}"
    cfg = {"configurable": {"thread_id": thread}}
    s3 = quiet.client("s3")

    def tagged(key: str) -> bool:
        tags = s3.get_object_tagging(Bucket=quiet.bucket, Key=key)["TagSet"]
        return {"Key": "orphan", "Value": "true"} in tags

    # Values stored whole, so that the kept checkpoint's view points to an object (as a
    # delta, the view would point to the journal and every object would be an orphan).
    with quiet.saver(deltas=False) as saver:
        graph = build_chat(saver)
        graph.invoke({"messages": ["a"], "notes": [kb_text(100_000)]}, cfg)
        graph.invoke({"messages": ["b"], "notes": [kb_text(100_000)]}, cfg)
        project(quiet, thread)
        before = objects(quiet, _blobs.thread_prefix(thread))
        assert not any(tagged(k) for k in before)
        saver.prune([thread], strategy="keep_latest")
        project(quiet, thread, removal=True)
        (latest,) = [decode_view(i) for i in items(quiet, thread) if i["kind"]["S"] == "V"]
        live = {v.key for _, v, _ in latest.channels.values() if isinstance(v, _blobs_ref())}
        assert live and live < set(before)
        assert {k for k in before if tagged(k)} == set(before) - live
        # The state is whole, from the view and its untagged object.
        assert len(graph.get_state(cfg).values["notes"]) == 2
