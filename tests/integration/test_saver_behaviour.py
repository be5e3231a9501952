"""Behaviour beyond the conformance suite: deltas carried through deletes, TTL, serde,
sync/async parity, and errors that say what to do and leave nothing half-written."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_journal import JournalSaver, errors, schemas
from checkpoint_journal._core.keys import thread_pk
from checkpoint_journal.local import LocalDeployment


def _cfg(thread: str, ns: str = "", cid: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if cid:
        c["checkpoint_id"] = cid
    return {"configurable": c}


def _put(
    saver: JournalSaver,
    thread: str,
    values: dict[str, Any],
    versions: dict[str, str],
    new: dict[str, str],
    parent: dict[str, Any] | None = None,
    **md: Any,
) -> dict[str, Any]:
    cp = empty_checkpoint()
    cp["channel_values"] = values
    cp["channel_versions"] = versions
    config = _cfg(thread, cid=parent["configurable"]["checkpoint_id"] if parent else None)
    return saver.put(config, cp, {"source": "loop", "step": 0, **md}, new)


def _raw_items(dep: LocalDeployment, thread: str) -> list[dict[str, Any]]:
    resp = dep.client("dynamodb").query(
        TableName=dep.table_name,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": thread_pk(thread)}},
        ConsistentRead=True,
    )
    return list(resp["Items"])


def _journal_items(dep: LocalDeployment, thread: str) -> list[dict[str, Any]]:
    """The items the saver wrote: the session deployments run the projector in the
    background, and its views, heads and index entries may appear at any moment."""
    return [i for i in _raw_items(dep, thread) if i["kind"]["S"] not in ("V", "H", "I")]


# -- deltas survive deletes ---------------------------------------------------------


def _two_step_thread(saver: JournalSaver, thread: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """cp1 writes a and b; cp2 changes only a, so b lives in cp1's event."""
    first = _put(saver, thread, {"a": "a1", "b": "big-b"}, {"a": "1", "b": "1"},
                 {"a": "1", "b": "1"}, run_id="r1-" + thread)
    second = _put(saver, thread, {"a": "a2", "b": "big-b"}, {"a": "2", "b": "1"}, {"a": "2"},
                  parent=first, run_id="r2-" + thread)
    return first, second


def test_prune_keep_latest_carries_values_from_deleted_events(deployment: LocalDeployment) -> None:
    thread = f"prune-{uuid.uuid4()}"
    with deployment.saver() as saver:
        first, second = _two_step_thread(saver, thread)
        saver.prune([thread])
        tup = saver.get_tuple(_cfg(thread))
        assert tup is not None and tup.config == second
        assert tup.checkpoint["channel_values"] == {"a": "a2", "b": "big-b"}
        assert [t.config for t in saver.list(_cfg(thread))] == [second]
        items = _journal_items(deployment, thread)
        assert sorted(i["kind"]["S"] for i in items) == ["B", "C", "R"]
        # The removal marker names what the prune took, with its chain hash (verify).
        (marker,) = [i for i in items if i["kind"]["S"] == "R"]
        rec = schemas.decode(schemas.RECORD_REMOVAL, marker["body"]["B"], marker["fp"]["S"],
                             marker["codec"]["S"])
        assert rec["reason"] == "prune"
        assert [r["checkpoint_id"] for r in rec["removed"]] == [
            first["configurable"]["checkpoint_id"]]
        assert rec["removed"][0]["chain_hash"] is not None


def test_delete_for_runs_keeps_later_checkpoints_complete(deployment: LocalDeployment) -> None:
    thread = f"runs-{uuid.uuid4()}"
    with deployment.saver() as saver:
        _, second = _two_step_thread(saver, thread)
        saver.delete_for_runs(["r1-" + thread])
        tups = list(saver.list(_cfg(thread)))
        assert [t.config for t in tups] == [second]
        assert tups[0].checkpoint["channel_values"] == {"a": "a2", "b": "big-b"}


def test_copy_thread_is_independent_of_source(deployment: LocalDeployment) -> None:
    src, dst = f"src-{uuid.uuid4()}", f"dst-{uuid.uuid4()}"
    with deployment.saver() as saver:
        _, second = _two_step_thread(saver, src)
        saver.put_writes(second, [("a", "pending")], "task-x", "path")
        saver.copy_thread(src, dst)
        saver.delete_thread(src)
        assert saver.get_tuple(_cfg(src)) is None
        copied = list(saver.list(_cfg(dst)))
        assert [t.config["configurable"]["checkpoint_id"] for t in copied] == [
            second["configurable"]["checkpoint_id"],
            copied[1].config["configurable"]["checkpoint_id"],
        ]
        assert copied[0].checkpoint["channel_values"] == {"a": "a2", "b": "big-b"}
        assert copied[1].checkpoint["channel_values"] == {"a": "a1", "b": "big-b"}
        assert copied[0].pending_writes == [("task-x", "a", "pending")]
        assert copied[0].parent_config is not None


def test_delete_thread_hides_at_once_and_thread_id_can_be_reused(
    deployment: LocalDeployment,
) -> None:
    thread = f"del-{uuid.uuid4()}"
    with deployment.saver() as saver:
        _two_step_thread(saver, thread)
        saver.delete_thread(thread)
        assert saver.get_tuple(_cfg(thread)) is None
        assert list(saver.list(_cfg(thread))) == []
        # Only the tombstone is left.
        assert [i["kind"]["S"] for i in _journal_items(deployment, thread)] == ["X"]
        again = _put(saver, thread, {"a": "new"}, {"a": "9"}, {"a": "9"})
        tup = saver.get_tuple(_cfg(thread))
        assert tup is not None and tup.config == again
        assert tup.checkpoint["channel_values"] == {"a": "new"}


def test_pending_writes_rules_and_retries(deployment: LocalDeployment) -> None:
    thread = f"writes-{uuid.uuid4()}"
    with deployment.saver() as saver:
        stored = _put(saver, thread, {}, {}, {})
        saver.put_writes(stored, [("x", 1), ("y", 2)], "t2", "b")
        saver.put_writes(stored, [("x", 99)], "t2", "b")  # retry, regular: first wins
        saver.put_writes(stored, [("__error__", "e1")], "t1", "a")
        saver.put_writes(stored, [("__error__", "e2")], "t1", "a")  # special: last wins
        tup = saver.get_tuple(stored)
        assert tup is not None
        # writes_sort_key order: task_path first, then task id, then idx.
        assert tup.pending_writes == [("t1", "__error__", "e2"), ("t2", "x", 1), ("t2", "y", 2)]


# -- reads while the projector lags ------------------------------------------------------


@pytest.fixture(scope="module", params=["moto", "dynamodb-local"])
def unprojected(request: pytest.FixtureRequest) -> Iterator[LocalDeployment]:
    """A deployment whose stream nobody consumes: the test decides what is projected."""
    with LocalDeployment(backend=request.param, handlers=False) as dep:
        yield dep


def _project(dep: LocalDeployment, thread: str, namespaces: list[str]) -> None:
    from checkpoint_journal.stream_handlers._projector import Doorbell, Projector

    projector = Projector(ddb=dep.client("dynamodb"), s3=dep.client("s3"),
                          table_name=dep.table_name, bucket=dep.bucket)
    try:
        for ns in namespaces:
            projector.project(Doorbell(thread, ns))
    finally:
        projector.close()


def _seen(t: Any) -> tuple[Any, ...]:
    return (t.config, t.checkpoint["channel_values"], t.metadata["step"], t.parent_config,
            t.pending_writes)


async def test_reads_agree_on_every_path_while_the_projector_lags(
    unprojected: LocalDeployment,
) -> None:
    """Three namespaces (one sorts above the root's keys, one below), partly projected,
    one view made stale by a later write: every listing, bounded or not, every
    namespace or one, sync or async, and every get_tuple see exactly what was written."""
    dep = unprojected
    thread = f"lag-{uuid.uuid4()}"
    expected: dict[tuple[str, str], tuple[Any, ...]] = {}
    parents: dict[str, dict[str, Any] | None] = {"": None, "child:1": None, "!low": None}
    writes: dict[tuple[str, str], list[tuple[str, str, Any]]] = {}

    def put(saver: JournalSaver, ns: str, i: int) -> None:
        parent = parents[ns]
        cp = empty_checkpoint()
        cp["channel_values"] = {"a": f"{ns}a{i}", "b": f"{ns}B"}
        cp["channel_versions"] = {"a": f"{i:032}.0", "b": f"{1:032}.0"}
        new = {"a": f"{i:032}.0"} if parent else dict(cp["channel_versions"])
        config = _cfg(thread, ns=ns, cid=parent["configurable"]["checkpoint_id"] if parent
                      else None)
        stored = saver.put(config, cp, {"source": "loop", "step": i}, new)
        parents[ns] = stored
        key = (ns, stored["configurable"]["checkpoint_id"])
        writes[key] = []
        if i % 2 == 0:
            saver.put_writes(stored, [("a", f"w{i}")], f"task{i}")
            writes[key].append((f"task{i}", "a", f"w{i}"))
        expected[key] = (stored, {"a": f"{ns}a{i}", "b": f"{ns}B"}, i,
                         parent, writes[key])

    with dep.saver() as saver:
        for i in range(1, 4):
            for ns in parents:
                put(saver, ns, i)
        _project(dep, thread, list(parents))
        for i in range(4, 7):
            put(saver, "", i)
            if i < 6:
                put(saver, "child:1", i)
        # A fork of the first checkpoint: its 'a' is stored below every view read first.
        first = sorted(k for k in expected if k[0] == "")[0]
        fork = empty_checkpoint()
        fork["channel_values"] = {"a": "a1", "b": "B", "c": "fork"}
        fork["channel_versions"] = {"a": f"{1:032}.0", "b": f"{1:032}.0", "c": f"{1:032}.0"}
        forked = saver.put(expected[first][0], fork, {"source": "fork", "step": 7},
                           {"c": f"{1:032}.0"})
        expected[("", forked["configurable"]["checkpoint_id"])] = (
            forked, fork["channel_values"], 7, expected[first][0], [])
        key2 = sorted(k for k in expected if k[0] == "")[1]
        stored2 = expected[key2][0]
        saver.put_writes(stored2, [("__error__", "late")], "late-task")  # its view is stale
        writes[key2].append(("late-task", "__error__", "late"))
        expected[key2] = (*expected[key2][:4], sorted(writes[key2]))

        def want(ns: str | None, before: str | None = None) -> list[tuple[Any, ...]]:
            keys = sorted((k for k in expected if ns is None or k[0] == ns),
                          key=lambda k: (k[1], k[0]), reverse=True)
            return [expected[k] for k in keys if before is None or k[1] < before]

        def norm(tuples: list[Any]) -> list[tuple[Any, ...]]:
            return [(*_seen(t)[:4], sorted(_seen(t)[4])) for t in tuples]

        every_ns = {"configurable": {"thread_id": thread}}
        for ns in [None, "", "child:1", "!low"]:
            config = _cfg(thread, ns=ns) if ns is not None else every_ns
            everything = want(ns)
            assert norm(list(saver.list(config))) == everything
            assert norm([t async for t in saver.alist(config)]) == everything
            for k in range(1, len(everything) + 1):
                assert norm(list(saver.list(config, limit=k))) == everything[:k]
            for stored, *_ in everything:
                conf = stored["configurable"]
                own_ns, cid = conf["checkpoint_ns"], conf["checkpoint_id"]
                below = want(ns, before=cid)
                assert norm(list(saver.list(config, before=stored))) == below
                assert norm(list(saver.list(config, before=stored, limit=1))) == below[:1]
                one = list(saver.list(_cfg(thread, ns=own_ns, cid=cid)))
                assert norm(one) == [expected[(own_ns, cid)]]
            assert norm(list(saver.list(config, filter={"step": 2}))) == [
                e for e in everything if e[2] == 2]
        for (ns, cid), e in expected.items():
            assert norm([saver.get_tuple(_cfg(thread, ns=ns, cid=cid))]) == [e]
            any_ns = {"configurable": {"thread_id": thread, "checkpoint_id": cid}}
            assert norm(list(saver.list(any_ns))) == [e]
        for ns in parents:
            assert norm([saver.get_tuple(_cfg(thread, ns=ns))]) == want(ns)[:1]


# -- TTL -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_ttl_items_carry_expires_at_and_hide_when_past_it(deployment: LocalDeployment) -> None:
    thread = f"ttl-{uuid.uuid4()}"
    clock = FakeClock(1_900_000_000.0)
    with deployment.saver(ttl_seconds=100, clock=clock) as saver:
        stored = _put(saver, thread, {"a": "x"}, {"a": "1"}, {"a": "1"})
        saver.put_writes(stored, [("a", "w")], "t")
        items = _journal_items(deployment, thread)
        assert {int(i["expires_at"]["N"]) for i in items} == {1_900_000_100}
        clock.now += 99
        assert saver.get_tuple(_cfg(thread)) is not None
        clock.now += 1
        assert saver.get_tuple(_cfg(thread)) is None
        assert list(saver.list(_cfg(thread))) == []


def test_ttl_recarries_old_values_so_latest_stays_complete(deployment: LocalDeployment) -> None:
    thread = f"ttl-carry-{uuid.uuid4()}"
    clock = FakeClock(1_900_000_000.0)
    with deployment.saver(ttl_seconds=100, clock=clock) as saver:
        first = _put(saver, thread, {"big": "B", "a": "1"}, {"big": "1", "a": "1"},
                     {"big": "1", "a": "1"})
        clock.now += 5  # young: 'big' is referenced, not rewritten
        second = _put(saver, thread, {"big": "B", "a": "2"}, {"big": "1", "a": "2"}, {"a": "2"},
                      parent=first)
        clock.now += 20  # older than 10% of the TTL: 'big' is written again
        third = _put(saver, thread, {"big": "B", "a": "3"}, {"big": "1", "a": "3"}, {"a": "3"},
                     parent=second)
        clock.now = 1_900_000_000.0 + 101  # first expired; second depended on it
        assert saver.get_tuple(_cfg(thread, cid=second["configurable"]["checkpoint_id"])) is None
        latest = saver.get_tuple(_cfg(thread))
        assert latest is not None and latest.config == third
        assert latest.checkpoint["channel_values"] == {"big": "B", "a": "3"}


def test_ttl_with_a_fresh_saver_writes_full_state(deployment: LocalDeployment) -> None:
    """A saver that has not read the thread cannot know where old values live, so with a
    TTL it writes every channel rather than risk a dangling reference."""
    thread = f"ttl-fresh-{uuid.uuid4()}"
    clock = FakeClock(1_900_000_000.0)
    with deployment.saver(ttl_seconds=100, clock=clock) as a:
        first = _put(a, thread, {"big": "B"}, {"big": "1"}, {"big": "1"})
    clock.now += 1
    with deployment.saver(ttl_seconds=100, clock=clock) as b:
        _put(b, thread, {"big": "B", "a": "1"}, {"big": "1", "a": "1"}, {"a": "1"}, parent=first)
        clock.now += 99.5  # past the first event's expiry, before the second's
        latest = b.get_tuple(_cfg(thread))
        assert latest is not None
        assert latest.checkpoint["channel_values"] == {"big": "B", "a": "1"}


# -- serde ------------------------------------------------------------------------------


class AesGcmCipher:
    """A CipherProtocol on the `cryptography` package's AES-GCM."""

    def __init__(self, key: bytes) -> None:
        self.aead = AESGCM(key)

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(12)
        return "aesgcm", nonce + self.aead.encrypt(nonce, plaintext, None)

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        assert ciphername == "aesgcm"
        return self.aead.decrypt(ciphertext[:12], ciphertext[12:], None)


def test_encrypted_serializer(deployment: LocalDeployment) -> None:
    thread = f"enc-{uuid.uuid4()}"
    serde = EncryptedSerializer(AesGcmCipher(os.urandom(32)))
    secret = "card 4111-1111-1111-1111"
    with deployment.saver(serde=serde, compression=False) as saver:
        stored = _put(saver, thread, {"secret": secret}, {"secret": "1"}, {"secret": "1"})
        saver.put_writes(stored, [("secret", secret)], "t")
        tup = saver.get_tuple(_cfg(thread))
        assert tup is not None
        assert tup.checkpoint["channel_values"] == {"secret": secret}
        assert tup.pending_writes == [("t", "secret", secret)]
    raw = b"".join(i["body"]["B"] for i in _raw_items(deployment, thread))
    assert secret.encode() not in raw
    with deployment.saver(serde=EncryptedSerializer(AesGcmCipher(os.urandom(32)))) as wrong:
        with pytest.raises(Exception):
            wrong.get_tuple(_cfg(thread))


def test_with_allowlist_returns_a_shallow_copy(deployment: LocalDeployment) -> None:
    thread = f"allow-{uuid.uuid4()}"
    with deployment.saver(serde=JsonPlusSerializer(allowed_msgpack_modules=None)) as saver:
        clone = saver.with_allowlist([("tests.integration.test_saver_behaviour", "Point")])
        assert clone is not saver
        assert clone.serde is not saver.serde
        assert clone.table_name == saver.table_name
        stored = _put(clone, thread, {"a": 1}, {"a": "1"}, {"a": "1"})
        tup = saver.get_tuple(stored)
        assert tup is not None and tup.checkpoint["channel_values"] == {"a": 1}


def test_no_pickle_in_stored_items(deployment: LocalDeployment) -> None:
    from checkpoint_journal import schemas

    thread = f"serde-tags-{uuid.uuid4()}"
    with deployment.saver() as saver:
        stored = _put(saver, thread, {"a": {"k": [1, 2]}, "b": b"raw"}, {"a": "1", "b": "1"},
                      {"a": "1", "b": "1"})
        saver.put_writes(stored, [("a", {"x": 1})], "t")
    tags = set()
    for item in _raw_items(deployment, thread):
        record = "checkpoint_event" if item["kind"]["S"] == "C" else "writes_event"
        rec = schemas.decode(record, item["body"]["B"], item["fp"]["S"], item["codec"]["S"])
        for blob in rec.get("blobs", []):
            tags.add(blob["value"]["type"])
        for w in rec.get("writes", []):
            tags.add(w["value"]["type"])
        if "checkpoint" in rec:
            tags.update({rec["checkpoint"]["type"], rec["metadata"]["type"]})
    assert tags and "pickle" not in tags
    assert tags <= {"msgpack", "bytes", "json", "null"}


# -- sync / async parity -----------------------------------------------------------------


async def test_sync_and_async_methods_agree(deployment: LocalDeployment) -> None:
    base = uuid.uuid4().hex[:8]
    results = {}
    with deployment.saver() as saver:
        for mode in ("sync", "async"):
            thread = f"parity-{mode}-{base}"
            cp1, cp2 = empty_checkpoint(), empty_checkpoint()
            cp1["channel_values"], cp1["channel_versions"] = {"a": 1}, {"a": "1"}
            cp2["channel_values"], cp2["channel_versions"] = {"a": 2}, {"a": "2"}
            md = {"source": "loop", "step": 1, "user": "u"}
            if mode == "sync":
                c1 = saver.put(_cfg(thread), cp1, md, {"a": "1"})
                c2 = saver.put(c1, cp2, md, {"a": "2"})
                saver.put_writes(c2, [("a", 3)], "t", "p")
                got = [saver.get_tuple(_cfg(thread)), list(saver.list(_cfg(thread), limit=1)),
                       list(saver.list(_cfg(thread), before=c2)),
                       list(saver.list(_cfg(thread), filter={"user": "u"}))]
                saver.delete_thread(thread)
                got.append(saver.get_tuple(_cfg(thread)))
            else:
                c1 = await saver.aput(_cfg(thread), cp1, md, {"a": "1"})
                c2 = await saver.aput(c1, cp2, md, {"a": "2"})
                await saver.aput_writes(c2, [("a", 3)], "t", "p")
                got = [await saver.aget_tuple(_cfg(thread)),
                       [t async for t in saver.alist(_cfg(thread), limit=1)],
                       [t async for t in saver.alist(_cfg(thread), before=c2)],
                       [t async for t in saver.alist(_cfg(thread), filter={"user": "u"})]]
                await saver.adelete_thread(thread)
                got.append(await saver.aget_tuple(_cfg(thread)))
            results[mode] = json.loads(
                json.dumps(got, default=repr).replace(thread, "THREAD")
                .replace(cp1["id"], "CP1").replace(cp2["id"], "CP2")
            )
    # Checkpoint ids and timestamps differ between the two runs; strip them.
    def strip(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in ("id", "ts", "checkpoint_id")}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o

    assert strip(results["sync"]) == strip(results["async"])
    assert results["sync"][0] is not None and results["sync"][-1] is None


# -- errors: clear, and nothing half-written ----------------------------------------------------


def test_key_too_long_is_refused_before_any_write(deployment: LocalDeployment) -> None:
    with deployment.saver() as saver:
        with pytest.raises(errors.InvalidKeyError, match="shorter thread id"):
            _put(saver, "t" * 3000, {}, {}, {})
        with pytest.raises(errors.InvalidKeyError, match="shorter subgraph names"):
            saver.put(_cfg("ok", ns="n" * 1000), empty_checkpoint(), {}, {})


def test_unserializable_value_writes_nothing(deployment: LocalDeployment) -> None:
    thread = f"unser-{uuid.uuid4()}"
    with deployment.saver() as saver:
        with pytest.raises(errors.SerializationError, match="channel 'bad'.*Nothing was written"):
            _put(saver, thread, {"ok": 1, "bad": lambda: None}, {"ok": "1", "bad": "1"},
                 {"ok": "1", "bad": "1"})
        assert _journal_items(deployment, thread) == []
        stored = _put(saver, thread, {"ok": 1}, {"ok": "1"}, {"ok": "1"})
        with pytest.raises(errors.SerializationError):
            saver.put_writes(stored, [("ok", 2), ("bad", object())], "t")
        tup = saver.get_tuple(stored)
        assert tup is not None and tup.pending_writes == []
        assert [i["kind"]["S"] for i in _journal_items(deployment, thread)] == ["C"]


def test_missing_table_says_what_to_do(deployment: LocalDeployment) -> None:
    saver = JournalSaver(
        "no-such-table", endpoint_url=deployment.endpoint_url,
        boto3_session=deployment.session(), max_attempts=1,
    )
    with pytest.raises(errors.TableNotFoundError, match="sam deploy"):
        saver.get_tuple(_cfg("t"))
    with pytest.raises(errors.TableNotFoundError):
        _put(saver, "t", {}, {}, {})
    with pytest.raises(errors.TableNotFoundError):
        saver.check()


def test_missing_bucket_says_what_to_do(deployment: LocalDeployment) -> None:
    with deployment.saver(bucket="no-such-bucket-cj") as saver:
        with pytest.raises(errors.BucketNotFoundError, match="BucketName"):
            saver.check()
    with deployment.saver() as saver:
        saver.check()  # the deployment's own table and bucket exist


def test_wrong_credentials_say_what_to_do(ddb_local_deployment: LocalDeployment) -> None:
    """DynamoDB Local validates the access key id's form, as AWS validates the key."""
    import boto3

    dep = ddb_local_deployment
    session = boto3.session.Session(
        aws_access_key_id="not a key!", aws_secret_access_key="x", region_name=dep.region_name
    )
    saver = JournalSaver(dep.table_name, endpoint_url=dep.endpoint_url, boto3_session=session,
                         max_attempts=1)
    with pytest.raises(errors.CredentialsError, match="credentials"):
        saver.get_tuple(_cfg("t"))


def test_no_credentials_at_all(moto_deployment: LocalDeployment, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SHARED_CREDENTIALS_FILE",
                "AWS_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    saver = JournalSaver(moto_deployment.table_name, endpoint_url=moto_deployment.endpoint_url,
                         boto3_session=boto3.session.Session(region_name="us-east-1"))
    with pytest.raises(errors.CredentialsError, match="no AWS credentials"):
        saver.get_tuple(_cfg("t"))


def test_conflicting_rewrite_of_a_checkpoint_is_refused(deployment: LocalDeployment) -> None:
    thread = f"conflict-{uuid.uuid4()}"
    with deployment.saver() as saver:
        cp = empty_checkpoint()
        cp["channel_values"], cp["channel_versions"] = {"a": 1}, {"a": "1"}
        stored = saver.put(_cfg(thread), cp, {"source": "loop", "step": 0}, {"a": "1"})
        cp["channel_values"] = {"a": 2}
        with pytest.raises(errors.ConflictError, match="immutable"):
            saver.put(_cfg(thread), cp, {"source": "loop", "step": 0}, {"a": "1"})
        tup = saver.get_tuple(stored)
        assert tup is not None and tup.checkpoint["channel_values"] == {"a": 1}


# -- throttling: retried within a bounded budget ------------------------------------------------


def _throttle(times: int, counter: list[int]) -> Any:
    from botocore.awsrequest import AWSResponse

    class _Raw:
        def stream(self, **_: Any) -> Any:
            yield b""

    def handler(**kwargs: Any) -> Any:
        counter.append(1)
        if len(counter) > times:
            return None  # let the request go over HTTP
        body = json.dumps({
            "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
            "message": "Rate of requests exceeds the allowed throughput.",
        }).encode()
        resp = AWSResponse(kwargs["request"].url, 400, {"x-amzn-requestid": "t"}, _Raw())
        resp._content = body
        return resp

    return handler


def test_throttling_is_retried_then_succeeds(deployment: LocalDeployment) -> None:
    session = deployment.session()
    sends: list[int] = []
    session.events.register("before-send.dynamodb.PutItem", _throttle(2, sends))
    thread = f"throttle-{uuid.uuid4()}"
    with deployment.saver(boto3_session=session, max_attempts=5) as saver:
        stored = _put(saver, thread, {"a": 1}, {"a": "1"}, {"a": "1"})
        assert len(sends) == 3  # two throttled attempts, then the real one
        assert saver.get_tuple(stored) is not None


def test_throttling_beyond_the_budget_is_a_transient_error(deployment: LocalDeployment) -> None:
    session = deployment.session()
    sends: list[int] = []
    session.events.register("before-send.dynamodb.PutItem", _throttle(10**6, sends))
    thread = f"throttle-max-{uuid.uuid4()}"
    with deployment.saver(boto3_session=session, max_attempts=3) as saver:
        with pytest.raises(errors.TransientError, match="retry budget"):
            _put(saver, thread, {"a": 1}, {"a": "1"}, {"a": "1"})
        assert len(sends) == 3
    assert _journal_items(deployment, thread) == []
