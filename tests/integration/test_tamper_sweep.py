"""The tamper sweep (issue 11, I2b): for every item kind and the S3 objects, flip a byte,
delete it, swap it with another, edit each attribute outside the content hash; every read
returns the exact original or raises CorruptRecordError, and ``verify`` names the damage.

One setup per backend: a thread with three checkpoints (one chunked, values offloaded to
S3 by the projector), pending writes, views, a head and index entries; a deleted thread
(its tombstone); a pruned thread (its removal marker). Every case tampers with one item
or object through raw requests, as someone with table or bucket access would, reads
with a fresh saver (nothing cached), runs verify, and restores what it changed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from langgraph.checkpoint.base import CheckpointTuple, empty_checkpoint

from checkpoint_journal._core import blobs as _blobs
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.chain import Hasher
from checkpoint_journal.cli.verify import verify
from checkpoint_journal.errors import CorruptRecordError
from checkpoint_journal.local import LocalDeployment

NOW = 1_790_000_000.0
from tests.integration.tables import partition


@dataclass
class World:
    dep: LocalDeployment
    thread: str
    ids: list[str]
    deleted: str
    pruned: str
    pruned_latest: str


def _put(saver: Any, parent: dict[str, Any], values: dict[str, Any], versions: dict[str, str],
         new: dict[str, str], step: int) -> dict[str, Any]:
    cp = empty_checkpoint()  # a fresh uuid6 id
    cp["channel_values"] = values
    cp["channel_versions"] = versions
    return dict(saver.put(parent, cp, {"source": "loop", "step": step, "tag": f"s{step}"}, new))


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    # A deployment of its own: no other test's items or stream records interleave with
    # the sweep's tampering and restoring.
    with LocalDeployment(backend=request.param) as dep:
        yield _world(dep)


def _world(dep: LocalDeployment) -> World:
    thread = f"tamper-{uuid.uuid4().hex[:8]}"
    big = os.urandom(40_000)  # incompressible, above the projector's 32 KB inline limit
    huge = os.urandom(dep.saver().max_item_bytes + 50_000)  # chunked in the journal
    root = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    with dep.saver() as saver:
        c1 = _put(saver, root, {"small": "s1", "big": big}, {"small": "1", "big": "1"},
                  {"small": "1", "big": "1"}, 1)
        saver.put_writes(c1, [("small", "w1"), ("__interrupt__", "ask")], "task-1")
        c2 = _put(saver, c1, {"small": "s2", "big": big}, {"small": "2", "big": "1"},
                  {"small": "2"}, 2)
        saver.put_writes(c2, [("small", "w2")], "task-2")
        c3 = _put(saver, c2, {"small": "s3", "big": big, "huge": huge},
                  {"small": "3", "big": "1", "huge": "1"}, {"small": "3", "huge": "1"}, 3)
        deleted = f"tamper-del-{uuid.uuid4().hex[:8]}"
        d_root = {"configurable": {"thread_id": deleted, "checkpoint_ns": ""}}
        _put(saver, d_root, {"small": "x"}, {"small": "1"}, {"small": "1"}, 1)
        saver.delete_thread(deleted)
        pruned = f"tamper-prune-{uuid.uuid4().hex[:8]}"
        p_root = {"configurable": {"thread_id": pruned, "checkpoint_ns": ""}}
        p1 = _put(saver, p_root, {"small": "p1"}, {"small": "1"}, {"small": "1"}, 1)
        p2 = _put(saver, p1, {"small": "p2"}, {"small": "2"}, {"small": "2"}, 2)
        saver.prune([pruned])
    dep.drain(timeout=60)
    ids = [c["configurable"]["checkpoint_id"] for c in (c1, c2, c3)]
    return World(dep, thread, ids, deleted, pruned, p2["configurable"]["checkpoint_id"])


def _flat(t: CheckpointTuple | None) -> Any:
    if t is None:
        return None
    return (t.config, t.checkpoint, t.metadata, t.parent_config, t.pending_writes)


def _reads(dep: LocalDeployment, thread: str, ids: list[str]) -> dict[str, Callable[[], Any]]:
    saver = dep.saver()
    conf = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    out: dict[str, Callable[[], Any]] = {
        "latest": lambda: _flat(saver.get_tuple(conf)),
        "list": lambda: [_flat(t) for t in saver.list(conf)],
        "list(limit=1)": lambda: [_flat(t) for t in saver.list(conf, limit=1)],
    }
    for cid in ids:
        by_id = {"configurable": {**conf["configurable"], "checkpoint_id": cid}}
        out[f"get {cid[-6:]}"] = lambda c=by_id: _flat(saver.get_tuple(c))  # type: ignore[misc]
    return out


def _snapshot(dep: LocalDeployment, thread: str, ids: list[str]) -> dict[str, Any]:
    return {name: read() for name, read in _reads(dep, thread, ids).items()}


def _check_reads(dep: LocalDeployment, thread: str, ids: list[str], expected: dict[str, Any],
                 case: str) -> int:
    """Every read is the original or CorruptRecordError; returns how many raised."""
    refused = 0
    for name, read in _reads(dep, thread, ids).items():
        try:
            got = read()
        except CorruptRecordError:
            refused += 1
            continue
        assert got == expected[name], f"{case}: {name} returned other data than was written"
    return refused


def _findings(dep: LocalDeployment, thread: str) -> list[tuple[str, str]]:
    s3 = dep.client("s3")
    report = verify(dep.client("dynamodb"), dep.table_name, hasher=Hasher(None),
                    thread_id=thread, s3=s3, blob_bucket=dep.bucket)
    return [(f.problem, f.location) for f in report.findings]


def _kind(sk: str) -> str:
    if sk.startswith(("H#", "I#", "R#", "P#", "O#")):
        return sk[0]
    return _keys.parse_sk(sk).kind


def _flip(item: dict[str, Any]) -> dict[str, Any]:
    """One byte (or character) of the item's payload changed."""
    if "body" in item:
        b = bytearray(item["body"]["B"])
        b[len(b) // 2] ^= 0x01
        return {**item, "body": {"B": bytes(b)}}
    for name in ("digest", "latest", "ms", "hash", "owner", "mi"):
        if name in item:
            text = item[name]["S"]
            return {**item, name: {"S": text[:-1] + ("0" if text[-1] != "0" else "1")}}
    raise AssertionError(f"nothing to flip in {item['SK']['S']}")


def _edits(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each attribute outside the content hash, edited the way that would roll a read back
    (or forward)."""
    out: dict[str, dict[str, Any]] = {}
    out["expires_at"] = {**item, "expires_at": {"N": str(int(NOW) - 3600)}}
    out["visible_until"] = {**item, "visible_until": {"N": str(int(NOW) - 3600)}}
    if "written_at" in item:
        out["written_at"] = {**item, "written_at": {"N": str(int(item["written_at"]["N"]) - 1)}}
    if "md" in item:
        md = dict(item["md"]["M"])
        md["step"] = {"N": "99"}
        out["md"] = {**item, "md": {"M": md}}
    if "wm" in item:
        out["wm"] = {**item, "wm": {"N": str(int(item["wm"]["N"]) + 1)}}
    return out


# Kinds whose deletion a read cannot be expected to notice and verify need not report:
# derived items (the projector rebuilds them; reads answer from the journal), and what
# no read depends on.
UNWITNESSED_DELETES = {"V", "H", "I"}


def _cases(dep: LocalDeployment, thread: str) -> Iterator[tuple[str, dict[str, Any],
                                                               dict[str, Any] | None, bool]]:
    """(case, original item, replacement (None: deleted), whether verify must name it)."""
    items = partition(dep, thread)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_kind.setdefault(_kind(item["SK"]["S"]), []).append(item)
    for kind, group in sorted(by_kind.items()):
        # Every item of the scarce kinds; two of the plentiful ones (index entries).
        for item in group[:2] if kind == "I" else group:
            sk = item["SK"]["S"]
            yield f"flip {sk}", item, _flip(item), True
            yield f"delete {sk}", item, None, kind not in UNWITNESSED_DELETES
            others = [o for o in group if o is not item]
            if others:
                other = others[0]
                yield (f"swap {sk} <- {other['SK']['S']}", item,
                       {**other, "PK": item["PK"], "SK": item["SK"]}, True)
            for attr, edited in _edits(item).items():
                yield f"edit {attr} of {sk}", item, edited, True


def _restore(dep: LocalDeployment, item: dict[str, Any]) -> None:
    dep.client("dynamodb").put_item(TableName=dep.table_name, Item=item)


def _apply(dep: LocalDeployment, item: dict[str, Any], replacement: dict[str, Any] | None) -> None:
    ddb = dep.client("dynamodb")
    if replacement is None:
        ddb.delete_item(TableName=dep.table_name, Key={"PK": item["PK"], "SK": item["SK"]})
    else:
        ddb.put_item(TableName=dep.table_name, Item=replacement)


# The full sweep on DynamoDB Local, whose attribute handling (numbers, maps) is
# DynamoDB's: seals are computed and checked by the same code on either backend, and
# the tombstone and S3 sweeps below run on both.
BACKEND = ["dynamodb-local"]
BOTH = ["moto", "dynamodb-local"]


@pytest.mark.parametrize("world", BACKEND, indirect=True)
def test_every_item_tampered_reads_exact_or_refuses_and_verify_names_it(world: World) -> None:
    dep, thread, ids = world.dep, world.thread, world.ids
    expected = _snapshot(dep, thread, ids)
    assert expected["latest"][1]["channel_values"]["small"] == "s3"
    assert _findings(dep, thread) == []
    kinds_seen: set[str] = set()
    refusals = 0
    for case, item, replacement, must_report in _cases(dep, thread):
        kinds_seen.add(_kind(item["SK"]["S"]))
        _apply(dep, item, replacement)
        dep.drain(timeout=60)  # whatever the handlers make of it, before reading
        try:
            refusals += _check_reads(dep, thread, ids, expected, case)
            found = _findings(dep, thread)
            if must_report:
                assert found, f"{case}: verify reported nothing"
        finally:
            _restore(dep, item)
            # The projector answers a restored journal item (a stream record) by
            # re-projecting: let it finish before the next case tampers.
            dep.drain(timeout=60)
    assert kinds_seen >= {"C", "W", "V", "P", "H", "I"}, kinds_seen
    assert refusals > 0  # the sweep did reach reads that had to refuse
    assert _snapshot(dep, thread, ids) == expected and _findings(dep, thread) == []


@pytest.mark.parametrize("world", BOTH, indirect=True)
def test_tombstones_and_removal_markers_tampered(world: World) -> None:
    """A deleted thread's tombstone and a pruned thread's removal marker: reads stay what
    they were (the deleted thread empty) or refuse; verify names every change."""
    dep = world.dep
    for thread, ids in ((world.deleted, []), (world.pruned, [world.pruned_latest])):
        expected = _snapshot(dep, thread, ids)
        assert _findings(dep, thread) == []
        markers = [i for i in partition(dep, thread) if _kind(i["SK"]["S"]) in ("X", "R")]
        assert markers
        for item in markers:
            sk = item["SK"]["S"]
            cases = {f"flip {sk}": _flip(item), **{f"edit {a} of {sk}": e
                                                   for a, e in _edits(item).items()}}
            for case, replacement in cases.items():
                _apply(dep, item, replacement)
                dep.drain(timeout=60)  # whatever the handlers make of it, before reading
                try:
                    _check_reads(dep, thread, ids, expected, case)
                    assert _findings(dep, thread), f"{case}: verify reported nothing"
                finally:
                    _restore(dep, item)
                    dep.drain(timeout=60)
    assert _snapshot(dep, world.deleted, [])["latest"] is None


@pytest.mark.parametrize("world", BOTH, indirect=True)
def test_offloaded_values_tampered_in_s3_read_from_the_journal(world: World) -> None:
    """Flip a byte of, delete, or swap an S3 object a view points to: every read returns
    the exact original (from the journal behind it) and verify names the object."""
    dep, thread, ids = world.dep, world.thread, world.ids
    expected = _snapshot(dep, thread, ids)
    s3 = dep.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(
        Bucket=dep.bucket, Prefix=_blobs.thread_prefix(thread)).get("Contents", []))
    assert len(keys) >= 2  # big and huge
    bodies = {k: s3.get_object(Bucket=dep.bucket, Key=k)["Body"].read() for k in keys}
    for key in keys:
        flipped = bytearray(bodies[key])
        flipped[len(flipped) // 2] ^= 0x01
        other = bodies[next(k for k in keys if k != key)]
        for case, body in (("flip", bytes(flipped)), ("delete", None), ("swap", other)):
            if body is None:
                s3.delete_object(Bucket=dep.bucket, Key=key)
            else:
                s3.put_object(Bucket=dep.bucket, Key=key, Body=body)
            try:
                assert _check_reads(dep, thread, ids, expected, f"{case} {key}") == 0
                found = _findings(dep, thread)
                assert any(key in loc for _, loc in found), f"{case} {key}: {found}"
                assert {p for p, _ in found} <= {"blob-missing", "blob-damaged"}
            finally:
                s3.put_object(Bucket=dep.bucket, Key=key, Body=bodies[key])
    assert _findings(dep, thread) == []

