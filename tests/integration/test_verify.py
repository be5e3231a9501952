"""``checkpoint-journal verify`` against the local deployment: the hash chain catches an
altered, a removed and a forged checkpoint, an edited view and a misplaced event, and
stays quiet for prune, delete_for_runs, delete_thread and copy_thread.

One deployment per backend (module scope), with the projector and the archiver running;
every test writes its own threads with a real LangGraph graph and verifies only them
(``--thread``), so one test's tampering never shows in another's report. Tampering is
done the way an attacker with table access would: raw DynamoDB requests.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_journal import schemas
from checkpoint_journal._core import chain as _chain
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core import seal as _seal
from checkpoint_journal.local import LocalDeployment
from tests.integration import cli_runner
from tests.integration.graphs import build_approval, build_chat

BACKENDS = ["moto", "dynamodb-local"]
KEY = os.urandom(32).hex()  # as `openssl rand -hex 32` makes it
SERDE = JsonPlusSerializer()


@pytest.fixture(scope="module", params=BACKENDS)
def dep(request: pytest.FixtureRequest) -> Iterator[LocalDeployment]:
    with LocalDeployment(backend=request.param) as d:
        yield d


@pytest.fixture
def key_file(tmp_path: Path) -> str:
    path = tmp_path / "chain.key"
    path.write_text(KEY + "\n")  # the file's final newline is not part of the key
    return str(path)


class Result(cli_runner.Result):
    def problems(self) -> list[tuple[str, str | None]]:
        return [(p["problem"], p["checkpoint_id"]) for p in self.json()["problems"]]

    def journal_problems(self) -> list[tuple[str, str | None]]:
        """Problems other than the views': a tampered event also leaves the projector's
        view of it (built from the original) disagreeing with the journal."""
        return [p for p in self.problems() if p[0] != "view-mismatch"]


@pytest.fixture
def cli(dep: LocalDeployment, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Any:
    def call(*argv: str, env: dict[str, str | None] | None = None) -> Result:
        r = cli_runner.run_cli(dep, monkeypatch, capsys, argv, env, unset=[
            "CHECKPOINT_JOURNAL_CHAIN_KEY_FILE", "CHECKPOINT_JOURNAL_CHAIN_KEY_SECRET"])
        return Result(r.code, r.out, r.err)

    return call


def _chat(dep: LocalDeployment, *, keyed: bool = True, turns: int = 2) -> tuple[str, list[str]]:
    """A chat thread; its checkpoint ids oldest first."""
    thread = f"v-{uuid.uuid4().hex[:10]}"
    with dep.saver(chain_key=KEY if keyed else None) as saver:
        graph = build_chat(saver)
        cfg = {"configurable": {"thread_id": thread}}
        for n in range(turns):
            graph.invoke({"messages": [f"turn {n}"]}, cfg)
        ids = [s.config["configurable"]["checkpoint_id"] for s in graph.get_state_history(cfg)]
    return thread, ids[::-1]


def _item(dep: LocalDeployment, thread: str, sk: str) -> dict[str, Any]:
    got = dep.client("dynamodb").get_item(
        TableName=dep.table_name, Key={"PK": {"S": _keys.thread_pk(thread)}, "SK": {"S": sk}},
        ConsistentRead=True)
    return dict(got["Item"])


def _put(dep: LocalDeployment, item: dict[str, Any]) -> None:
    """Write an item the way an attacker who knows the format would: with its seal
    recomputed (seals are keyless; what catches these is the hash chain)."""
    dep.client("dynamodb").put_item(TableName=dep.table_name, Item=_seal.sealed(item))


def _record(item: dict[str, Any], record: str = schemas.RECORD_CHECKPOINT) -> dict[str, Any]:
    return schemas.decode(record, item["body"]["B"], item["fp"]["S"], item["codec"]["S"])


def _store(item: dict[str, Any], rec: dict[str, Any],
           record: str = schemas.RECORD_CHECKPOINT) -> dict[str, Any]:
    enc = schemas.encode(record, rec, compress=False)
    return {**item, "body": {"B": enc.body}, "fp": {"S": enc.fingerprint},
            "codec": {"S": enc.codec}}


def _messages_blob(rec: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in rec["blobs"] if b["channel"] == "messages")


def _tamper_messages(rec: dict[str, Any]) -> None:
    blob = _messages_blob(rec)
    type_, data = SERDE.dumps_typed(["the customer agreed to pay twice"])
    blob["value"] = {"type": type_, "data": data}


def _verify(cli: Any, thread: str, *extra: str) -> Result:
    return cli("verify", "--thread", thread, "--json", *extra)


# -- intact --------------------------------------------------------------------------


def test_intact_thread_verifies_with_views_and_archive(dep: LocalDeployment, cli: Any,
                                                       key_file: str) -> None:
    thread, ids = _chat(dep)
    dep.drain(timeout=30)
    r = _verify(cli, thread, "--chain-key-file", key_file)
    assert r.code == 0, r.out + r.err
    doc = r.json()
    assert doc["ok"] and doc["problems"] == []
    assert doc["hash_key_id"] == _chain.key_id(KEY.encode())
    checked = doc["checked"]
    assert checked["checkpoints chained (table)"] == len(ids) == 6
    assert checked["checkpoint events (table)"] == 6
    assert checked["writes events (table)"] >= 4
    assert checked["views (table)"] == 6  # the projector's views agree with the journal
    assert checked["checkpoints matched table to archive"] == 6

    text = cli("verify", "--thread", thread, "--chain-key-file", key_file)
    assert text.code == 0
    assert "intact" in text.out and "\x1b[" not in text.out


def test_keyed_journal_needs_the_key(dep: LocalDeployment, cli: Any, tmp_path: Path) -> None:
    thread, _ = _chat(dep, turns=1)
    r = _verify(cli, thread, "--no-archive")
    assert r.code == 4
    assert {p for p, _ in r.problems()} == {"wrong-key"}
    assert "--chain-key-file" in r.json()["problems"][0]["detail"]
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    r = _verify(cli, thread, "--no-archive", "--chain-key-file", str(other))
    assert r.code == 4 and {p for p, _ in r.problems()} == {"wrong-key"}


# -- altered -------------------------------------------------------------------------


def test_altered_checkpoint_is_named_precisely(dep: LocalDeployment, cli: Any,
                                               key_file: str) -> None:
    thread, ids = _chat(dep)
    dep.drain(timeout=30)
    victim = ids[4]  # the second turn's input, in the messages channel
    sk = _keys.checkpoint_sk("", victim)
    item = _item(dep, thread, sk)
    rec = _record(item)
    _tamper_messages(rec)  # the stored hashes are left as they were
    _put(dep, _store(item, rec))
    dep.drain(timeout=30)

    r = _verify(cli, thread, "--chain-key-file", key_file, "--no-archive")
    assert r.code == 4
    problems = r.json()["problems"]
    altered = [p for p in problems if p["problem"] == "altered"]
    assert [(p["checkpoint_id"], p["where"]) for p in altered] == [(victim, "table")]
    assert r.journal_problems() == [("altered", victim)]
    assert ("view-mismatch", victim) in r.problems()
    assert altered[0]["location"] == f"{_keys.thread_pk(thread)} / {sk}"
    assert "content does not match its content_hash" in altered[0]["detail"]


def test_unkeyed_chain_catches_recomputed_hashes_downstream(dep: LocalDeployment,
                                                           cli: Any) -> None:
    """Without a key an attacker can recompute the altered event's own hashes; the chain
    then breaks at its child, which still names the old chain."""
    thread, ids = _chat(dep, keyed=False)
    dep.drain(timeout=30)
    plain = _chain.Hasher(None)
    victim, child = ids[2], ids[3]
    item = _item(dep, thread, _keys.checkpoint_sk("", victim))
    rec = _record(item)
    _tamper_messages(rec)
    rec["content_hash"] = plain.content(schemas.RECORD_CHECKPOINT, rec)
    _put(dep, _store(item, rec))  # content consistent, chain not recomputed
    dep.drain(timeout=30)
    r = _verify(cli, thread, "--no-archive")
    assert r.code == 4 and r.journal_problems() == [("chain-broken", victim)]

    parent = _record(_item(dep, thread, _keys.checkpoint_sk("", ids[1])))
    rec["chain_hash"] = plain.chain(parent["chain_hash"], rec["content_hash"])
    _put(dep, _store(item, rec))  # the chain too: now its child no longer links
    dep.drain(timeout=30)
    r = _verify(cli, thread, "--no-archive")
    assert r.code == 4 and r.journal_problems() == [("chain-broken", child)]
    assert any(victim in p["detail"] for p in r.json()["problems"]
               if p["problem"] == "chain-broken")


# -- removed -------------------------------------------------------------------------


def test_removed_checkpoint_is_detected(dep: LocalDeployment, cli: Any, key_file: str) -> None:
    thread, ids = _chat(dep)
    victim = ids[2]
    dep.client("dynamodb").delete_item(
        TableName=dep.table_name,
        Key={"PK": {"S": _keys.thread_pk(thread)}, "SK": {"S": _keys.checkpoint_sk("", victim)}})
    r = _verify(cli, thread, "--chain-key-file", key_file, "--no-archive")
    assert r.code == 4
    removed = [p for p in r.json()["problems"] if p["problem"] == "removed"]
    assert removed and {p["checkpoint_id"] for p in removed} == {victim}
    assert any(f"the parent of {ids[3]}" in p["detail"] for p in removed)


# -- inserted ------------------------------------------------------------------------


def _forge_child(dep: LocalDeployment, thread: str, parent_id: str, hasher: _chain.Hasher,
                 key_id: str | None) -> str:
    """A checkpoint appended after ``parent_id`` by someone with table access, built from
    the parent's own item, with every hash computed the documented way under
    ``hasher``."""
    item = _item(dep, thread, _keys.checkpoint_sk("", parent_id))
    rec = _record(item)
    forged_id = parent_id[:-12] + "ffffffffffff"
    rec.update(checkpoint_id=forged_id, parent_checkpoint_id=parent_id)
    _tamper_messages(rec)
    rec["content_hash"] = hasher.content(schemas.RECORD_CHECKPOINT, rec)
    rec["chain_hash"] = hasher.chain(_record(item)["chain_hash"], rec["content_hash"])
    rec["hash_key_id"] = key_id
    forged = _store(item, rec)
    forged["SK"] = {"S": _keys.checkpoint_sk("", forged_id)}
    forged["parent"] = {"S": parent_id}
    _put(dep, forged)
    return forged_id


def test_forged_checkpoint_is_detected_with_a_chain_key(dep: LocalDeployment, cli: Any,
                                                        key_file: str) -> None:
    thread, ids = _chat(dep)
    # Hashed without the key (the algorithm is public), claiming no key ...
    forged = _forge_child(dep, thread, ids[-1], _chain.Hasher(None), None)
    r = _verify(cli, thread, "--chain-key-file", key_file, "--no-archive")
    assert r.code == 4 and r.problems() == [("wrong-key", forged)]
    # ... or claiming the deployment's key id, with a guessed key.
    forged = _forge_child(dep, thread, ids[-2], _chain.Hasher(os.urandom(32)),
                          _chain.key_id(KEY.encode()))
    r = _verify(cli, thread, "--chain-key-file", key_file, "--no-archive")
    assert r.code == 4 and ("altered", forged) in r.problems()


def test_misplaced_event_is_detected(dep: LocalDeployment, cli: Any, key_file: str) -> None:
    thread, ids = _chat(dep)
    item = _item(dep, thread, _keys.checkpoint_sk("", ids[1]))
    copy = {**item, "SK": {"S": _keys.checkpoint_sk("", ids[-1][:-12] + "eeeeeeeeeeee")}}
    _put(dep, copy)
    dep.drain(timeout=30)  # the projector's answer to the copy, before verify reads
    r = _verify(cli, thread, "--chain-key-file", key_file, "--no-archive")
    assert r.code == 4 and [p for p, _ in r.problems()] == ["misplaced"], r.out


# -- the projector's views -------------------------------------------------------------


def test_edited_view_is_detected(dep: LocalDeployment, cli: Any, key_file: str) -> None:
    thread, ids = _chat(dep)
    dep.drain(timeout=30)
    sk = _keys.view_sk("", ids[-1])
    item = _item(dep, thread, sk)
    rec = _record(item, schemas.RECORD_VIEW)
    for ch in rec["channels"]:
        if ch["channel"] == "messages":
            type_, data = SERDE.dumps_typed(["nothing was said"])
            ch["value"] = {"type": type_, "data": data}
    _put(dep, _store(item, rec, schemas.RECORD_VIEW))
    r = _verify(cli, thread, "--chain-key-file", key_file, "--no-archive")
    assert r.code == 4 and r.problems() == [("view-mismatch", ids[-1])]
    assert "channel 'messages' differs" in r.json()["problems"][0]["detail"]


# -- legitimate removals and copies -----------------------------------------------------


def test_prune_delete_for_runs_and_copy_verify_clean(dep: LocalDeployment, cli: Any,
                                                     key_file: str) -> None:
    pruned, _ = _chat(dep)
    runs = f"runs-{uuid.uuid4().hex[:8]}"
    first_run = f"run-{uuid.uuid4().hex[:8]}"
    with dep.saver(chain_key=KEY) as saver:
        graph = build_chat(saver)
        for text, run_id in (("first run", first_run), ("second run", "run-2")):
            graph.invoke({"messages": [text]}, {"configurable": {"thread_id": runs},
                                                "metadata": {"run_id": run_id}})
        dep.drain(timeout=30)  # archived before the removals, as in real life
        saver.prune([pruned])
        saver.delete_for_runs([first_run])
        copied = f"copy-{uuid.uuid4().hex[:8]}"
        src, _ = _chat(dep)
        saver.copy_thread(src, copied)
    dep.drain(timeout=30)
    for thread in (pruned, runs, copied, src):
        r = _verify(cli, thread, "--chain-key-file", key_file)
        assert r.code == 0, (thread, r.out)
    r = _verify(cli, pruned, "--chain-key-file", key_file)
    assert r.json()["checked"]["checkpoints removed by prune/delete_for_runs"] == 5


def test_deleted_thread_verifies_clean(dep: LocalDeployment, cli: Any, key_file: str) -> None:
    thread, _ = _chat(dep)
    dep.drain(timeout=30)
    with dep.saver(chain_key=KEY) as saver:
        saver.delete_thread(thread)
    dep.drain(timeout=30)
    r = _verify(cli, thread, "--chain-key-file", key_file)
    assert r.code == 0, r.out


# -- schema evolution: events written before the hashes ------------------------------------


def test_v1_events_stay_readable_and_the_chain_starts_after_them(dep: LocalDeployment,
                                                                 cli: Any) -> None:
    """A checkpoint written by a saver of schema v1 (no hashes): the current saver
    reads it, chains its next checkpoint from zero bytes, and verify counts it as
    unhashed rather than failing."""
    thread, ids = _chat(dep, keyed=False, turns=1)
    v1 = schemas.version(schemas.RECORD_CHECKPOINT, 1)
    latest = _item(dep, thread, _keys.checkpoint_sk("", ids[-1]))
    rec = _record(latest)
    import io

    import fastavro

    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, v1.parsed, rec)
    _put(dep, {**latest, "body": {"B": buf.getvalue()}, "fp": {"S": v1.fingerprint},
               "codec": {"S": "null"}})
    assert _record(_item(dep, thread, _keys.checkpoint_sk("", ids[-1])))["chain_hash"] is None
    with dep.saver() as saver:  # a fresh saver: nothing cached
        graph = build_chat(saver)
        cfg = {"configurable": {"thread_id": thread}}
        assert graph.get_state(cfg).values["messages"] == ["turn 0", "echo:turn 0"]
        graph.invoke({"messages": ["after the upgrade"]}, cfg)
    r = _verify(cli, thread, "--no-archive")
    assert r.code == 0, r.out
    assert r.json()["checked"]["unhashed (written before v2)"] == 1
    # Its child linked to it, the chain starting over from zero bytes.
    child = _record(_item(dep, thread, _keys.checkpoint_sk(
        "", [c for c in _cids(dep, thread) if c > ids[-1]][0])))
    assert child["chain_hash"] == _chain.Hasher(None).chain(None, child["content_hash"])


def _cids(dep: LocalDeployment, thread: str) -> list[str]:
    resp = dep.client("dynamodb").query(
        TableName=dep.table_name, KeyConditionExpression="PK = :pk AND begins_with(SK, :j)",
        ExpressionAttributeValues={":pk": {"S": _keys.thread_pk(thread)}, ":j": {"S": "J##"}},
        ConsistentRead=True)
    return sorted(i["SK"]["S"][3:] for i in resp["Items"] if i["kind"]["S"] == "C")


# -- the command line -----------------------------------------------------------------------


def test_exit_codes(dep: LocalDeployment, cli: Any, tmp_path: Path) -> None:
    r = cli("verify", "--thread", f"nobody-{uuid.uuid4().hex}")
    assert r.code == 3 and "neither in the table nor in the archive" in r.err
    short = tmp_path / "short.key"
    short.write_bytes(b"tiny")
    r = cli("verify", "--chain-key-file", str(short))
    assert r.code == 2 and "at least 16 bytes" in r.err
    r = cli("verify", "--chain-key-file", str(tmp_path / "missing.key"))
    assert r.code == 2
    r = cli("verify", env={"CHECKPOINT_JOURNAL_TABLE": None})
    assert r.code == 2 and "no table" in r.err


def test_subgraph_namespaces_chain_and_verify(dep: LocalDeployment, cli: Any,
                                              key_file: str) -> None:
    """A subgraph's checkpoints live in their own namespace, chained among themselves;
    a fresh saver resuming the interrupted subgraph chains onto what it reads."""
    from langgraph.types import Command

    from tests.integration.graphs import build_with_subgraph

    thread = f"sub-{uuid.uuid4().hex[:8]}"
    cfg = {"configurable": {"thread_id": thread}}
    with dep.saver(chain_key=KEY) as saver:
        build_with_subgraph(saver).invoke({"messages": ["go"]}, cfg)
    with dep.saver(chain_key=KEY) as saver:  # another worker resumes
        build_with_subgraph(saver).invoke(Command(resume="yes"), cfg)
    dep.drain(timeout=30)
    r = _verify(cli, thread, "--chain-key-file", key_file)
    assert r.code == 0, r.out
    namespaces = {
        i["SK"]["S"].split("#")[1]
        for i in dep.client("dynamodb").query(
            TableName=dep.table_name, KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": _keys.thread_pk(thread)}},
            ConsistentRead=True)["Items"] if i["kind"]["S"] == "C"}
    assert len(namespaces) == 2  # the root and the subgraph's
    checked = r.json()["checked"]
    assert checked["checkpoints chained (table)"] == checked["checkpoint events (table)"]
    assert checked["checkpoints matched table to archive"] == checked["checkpoint events (table)"]


def test_approval_thread_with_interrupt_verifies(dep: LocalDeployment, cli: Any,
                                                 key_file: str) -> None:
    thread = f"appr-{uuid.uuid4().hex[:8]}"
    with dep.saver(chain_key=KEY) as saver:
        from langgraph.types import Command

        graph = build_approval(saver)
        cfg = {"configurable": {"thread_id": thread}}
        graph.invoke({"messages": ["refund please"]}, cfg)
        graph.invoke(Command(resume={"approved": True}), cfg)
    dep.drain(timeout=30)
    r = _verify(cli, thread, "--chain-key-file", key_file)
    assert r.code == 0, r.out


# -- the archive ------------------------------------------------------------------------


def _archive_files(dep: LocalDeployment, thread: str) -> list[str]:
    """The archive files holding at least one checkpoint event of ``thread``."""
    import fastavro

    s3 = dep.client("s3")
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=dep.bucket,
                                                              Prefix="archive/"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=dep.bucket, Key=obj["Key"])["Body"].read()
            if any(r["thread_id"] == thread and r["kind"] == "C"  # type: ignore[index,call-overload]
                   for r in fastavro.reader(io.BytesIO(body))):
                found.append(obj["Key"])
    return found


class _Restore:
    """Put archive objects back as they were when the test ends: the files hold other
    tests' events too."""

    def __init__(self, dep: LocalDeployment) -> None:
        self.dep, self.saved = dep, {}  # type: ignore[var-annotated]

    def save(self, key: str) -> bytes:
        body: bytes = self.dep.client("s3").get_object(Bucket=self.dep.bucket, Key=key)[
            "Body"].read()
        self.saved.setdefault(key, body)
        return body

    def put(self, key: str, body: bytes) -> None:
        self.dep.client("s3").put_object(Bucket=self.dep.bucket, Key=key, Body=body)

    def restore(self) -> None:
        for key, body in self.saved.items():
            self.put(key, body)


@pytest.fixture
def restore(dep: LocalDeployment) -> Iterator[_Restore]:
    r = _Restore(dep)
    yield r
    r.restore()


def test_edited_archive_record_is_detected(dep: LocalDeployment, cli: Any, key_file: str,
                                          restore: _Restore) -> None:
    """An editor who rewrites a record of a well-formed Avro file (a byte of its sealed
    body changed) fails authentication; one who damages the file's bytes is reported
    with the file."""
    import fastavro

    thread, ids = _chat(dep)
    dep.drain(timeout=30)
    (key,) = _archive_files(dep, thread)[:1]
    original = restore.save(key)
    reader = fastavro.reader(io.BytesIO(original))
    records = list(reader)
    victim = next(r for r in records if r["thread_id"] == thread and r["kind"] == "C"  # type: ignore[index,call-overload]
                  and r["checkpoint_id"] == ids[1])  # type: ignore[index,call-overload]
    sealed = victim["body"]  # type: ignore[index,call-overload]
    assert isinstance(sealed, dict) and "ciphertext" in sealed, "bodies are sealed"
    sealed["ciphertext"] = bytes([sealed["ciphertext"][0] ^ 1]) + sealed["ciphertext"][1:]
    meta = {k: v for k, v in reader.metadata.items() if not k.startswith("avro.")}
    out = io.BytesIO()
    fastavro.writer(out, reader.writer_schema, records, codec=reader.codec, metadata=meta)
    restore.put(key, out.getvalue())
    r = _verify(cli, thread, "--chain-key-file", key_file)
    assert r.code == 4
    (problem,) = r.json()["problems"]
    assert (problem["problem"], problem["where"], problem["checkpoint_id"]) == (
        "altered", "archive", ids[1])
    assert problem["location"].startswith(f"s3://{dep.bucket}/{key} #")

    # The last block's sync marker (the file's last bytes): a byte in the middle of a
    # deflate block may still inflate, to other bytes (caught above as "altered").
    damaged = bytearray(original)
    damaged[-1] ^= 0xFF
    restore.put(key, bytes(damaged))
    r = _verify(cli, thread, "--chain-key-file", key_file)
    assert r.code == 4
    assert "archive-damaged" in [p for p, _ in r.problems()]
    assert any(key in p["location"] for p in r.json()["problems"])


def test_leaf_removed_from_the_table_is_found_in_the_archive(dep: LocalDeployment, cli: Any,
                                                             key_file: str) -> None:
    """The newest checkpoint has no child to break: the archive is the witness."""
    thread, ids = _chat(dep)
    dep.drain(timeout=30)
    dep.client("dynamodb").delete_item(
        TableName=dep.table_name,
        Key={"PK": {"S": _keys.thread_pk(thread)}, "SK": {"S": _keys.checkpoint_sk("", ids[-1])}})
    # Its view, left behind, witnesses it in the table alone...
    table_only = _verify(cli, thread, "--chain-key-file", key_file, "--no-archive")
    assert table_only.code == 4 and ("removed", ids[-1]) in table_only.problems()
    # ... and the archive holds it.
    r = _verify(cli, thread, "--chain-key-file", key_file)
    assert r.code == 4 and ("removed", ids[-1]) in r.problems()
    assert "archived checkpoint missing from the table" in r.out


def test_rewritten_item_shows_in_the_archive(dep: LocalDeployment, cli: Any,
                                            key_file: str) -> None:
    """Journal items are written once: the stream carries a rewrite as a MODIFY, which
    the archive keeps beside the original."""
    thread, ids = _chat(dep)
    dep.drain(timeout=30)
    item = _item(dep, thread, _keys.checkpoint_sk("", ids[4]))
    rec = _record(item)
    _tamper_messages(rec)
    _put(dep, _store(item, rec))
    dep.drain(timeout=30)
    r = _verify(cli, thread, "--chain-key-file", key_file)
    assert r.code == 4
    altered = [p for p in r.json()["problems"] if p["problem"] == "altered"]
    assert {(p["where"], p["checkpoint_id"]) for p in altered} == {("table", ids[4])}
    assert len(altered) == 2  # the content, and the rewrite seen in the archive
    assert any("rewritten in place" in p["detail"] for p in altered)


def test_removed_archive_file_is_detected(dep: LocalDeployment, cli: Any, key_file: str,
                                          restore: _Restore) -> None:
    thread, ids = _chat(dep)
    dep.drain(timeout=30)
    files = _archive_files(dep, thread)
    for key in files:
        restore.save(key)
        dep.client("s3").delete_object(Bucket=dep.bucket, Key=key)
    # Not yet a problem: for all verify knows, the archiver is behind.
    r = _verify(cli, thread, "--chain-key-file", key_file)
    assert r.code == 5 and r.json()["outcome"] == "pending" and not r.problems()
    assert r.json()["checked"]["checkpoints not archived yet"] == len(ids)
    text = cli("verify", "--thread", thread, "--chain-key-file", key_file)
    assert text.code == 5 and "pending: " in text.out and "problem(s)" not in text.out
    # The thread goes on: the archive now holds later checkpoints of it.
    with dep.saver(chain_key=KEY) as saver:
        build_chat(saver).invoke({"messages": ["later"]}, {"configurable": {"thread_id": thread}})
    dep.drain(timeout=30)
    r = _verify(cli, thread, "--chain-key-file", key_file)
    assert r.code == 4
    assert {c for p, c in r.problems() if p == "not-archived"} == set(ids)


def test_items_removed_by_ttl_are_not_reported(dep: LocalDeployment, cli: Any,
                                              key_file: str) -> None:
    """DynamoDB deletes expired items itself (neither emulator does): the archive keeps
    each event's expires_at, so verify tells an expiry from a removal."""
    import time

    thread = f"ttl-{uuid.uuid4().hex[:8]}"
    hour_ago = time.time() - 3600
    with dep.saver(chain_key=KEY, ttl_seconds=60, clock=lambda: hour_ago) as saver:
        build_chat(saver).invoke({"messages": ["short-lived"]},
                                 {"configurable": {"thread_id": thread}})
    dep.drain(timeout=30)
    ddb = dep.client("dynamodb")
    items = ddb.query(TableName=dep.table_name, KeyConditionExpression="PK = :pk",
                      ExpressionAttributeValues={":pk": {"S": _keys.thread_pk(thread)}},
                      ConsistentRead=True)["Items"]
    expired = [i for i in items if "expires_at" in i and int(i["expires_at"]["N"]) < time.time()]
    assert expired and all(i["kind"]["S"] in ("C", "W") for i in expired)
    for i in expired:  # what DynamoDB's TTL sweeper does
        ddb.delete_item(TableName=dep.table_name, Key={"PK": i["PK"], "SK": i["SK"]})
    r = _verify(cli, thread, "--chain-key-file", key_file)
    assert r.code == 0, r.out
    assert r.json()["checked"]["checkpoints expired (TTL)"] == 3


def test_forged_tombstone_does_not_excuse_a_deletion(dep: LocalDeployment, cli: Any,
                                                     key_file: str) -> None:
    """Tombstones are what make delete_thread's removals legitimate: one written by
    hand, without the chain key, excuses nothing."""
    import time

    thread, ids = _chat(dep)
    dep.drain(timeout=30)
    pk = _keys.thread_pk(thread)
    ddb = dep.client("dynamodb")
    ddb.delete_item(TableName=dep.table_name,
                    Key={"PK": {"S": pk}, "SK": {"S": _keys.checkpoint_sk("", ids[2])}})
    sk = _keys.tombstone_sk("")
    now_ms = int(time.time() * 1000)
    _put(dep, {
        "PK": {"S": pk}, "SK": {"S": sk}, "kind": {"S": "X"}, "written_at": {"N": str(now_ms)},
        "hash": {"S": _chain.Hasher(None).tombstone(pk, sk, now_ms)}})
    dep.drain(timeout=30)
    r = _verify(cli, thread, "--chain-key-file", key_file, "--no-archive")
    assert r.code == 4
    problems = r.problems()
    assert ("wrong-key", None) in problems and ("removed", ids[2]) in problems


def test_archive_key_removed_by_hand_is_reported(dep: LocalDeployment, cli: Any,
                                                 key_file: str) -> None:
    """Destroying a live thread's archive key silences the archive: verify says so."""
    from checkpoint_journal._core import shred as _shred

    thread, ids = _chat(dep)
    dep.drain(timeout=30)
    dep.client("dynamodb").delete_item(
        TableName=dep.table_name, Key={"PK": {"S": _shred.key_pk(thread)}, "SK": {"S": "K"}})
    r = _verify(cli, thread, "--chain-key-file", key_file)
    assert r.code == 4
    assert {c for p, c in r.problems() if p == "removed"} == set(ids)
    assert all("key was removed by hand" in p["detail"] for p in r.json()["problems"])


def test_chain_key_from_secrets_manager(dep: LocalDeployment, cli: Any) -> None:
    """The stack keeps the chain key in Secrets Manager (ChainKeySecretArn): verify reads
    it from there, by flag or environment."""
    thread, _ = _chat(dep, turns=1)
    arn = dep.client("secretsmanager").create_secret(
        Name=f"chain-key-{uuid.uuid4().hex[:8]}", SecretString=KEY)["ARN"]
    r = _verify(cli, thread, "--no-archive", "--chain-key-secret", arn)
    assert r.code == 0, r.out + r.err
    assert r.json()["hash_key_id"] == _chain.key_id(KEY.encode())
    r = cli("verify", "--thread", thread, "--json", "--no-archive",
            env={"CHECKPOINT_JOURNAL_CHAIN_KEY_SECRET": arn})
    assert r.code == 0 and r.json()["hash_key_id"] == _chain.key_id(KEY.encode())
    r = _verify(cli, thread, "--no-archive", "--chain-key-secret", arn + "-missing")
    assert r.code == 1 and "ResourceNotFoundException" in r.err
