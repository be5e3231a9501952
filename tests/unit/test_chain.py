"""The tamper-evident hashes (``_chain``) and the schema versions that carry them."""

from __future__ import annotations

import hashlib
import hmac
import io
from typing import Any

import fastavro
import pytest

from checkpoint_journal import schemas
from checkpoint_journal._core import chain as _chain


def _checkpoint(**over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "1f0-a",
        "parent_checkpoint_id": None, "written_at": 1_700_000_000_000,
        "checkpoint": {"type": "msgpack", "data": b"\x80"},
        "metadata": {"type": "msgpack", "data": b"\x81\xa4step\x00"},
        "blobs": [{"channel": "messages", "version": "0001.ab",
                   "value": {"type": "msgpack", "data": b"\x91\xa2hi"}}],
        "channel_versions": [{"channel": "messages", "version": "0001.ab"}],
    }
    rec.update(over)
    return rec


def test_content_hash_is_sha256_of_the_v1_avro_encoding() -> None:
    """The documented definition, recomputed here with fastavro alone."""
    rec = _checkpoint()
    buf = io.BytesIO()
    v1 = fastavro.parse_schema(schemas.version(schemas.RECORD_CHECKPOINT, 1).raw)
    fastavro.schemaless_writer(buf, v1, rec)
    expected = hashlib.sha256(b"checkpoint_event\n" + buf.getvalue()).hexdigest()
    assert _chain.Hasher(None).content(schemas.RECORD_CHECKPOINT, rec) == expected
    # Keyed: HMAC-SHA-256 of the same bytes.
    key = b"k" * 32
    keyed = hmac.new(key, b"checkpoint_event\n" + buf.getvalue(), hashlib.sha256).hexdigest()
    assert _chain.Hasher(key).content(schemas.RECORD_CHECKPOINT, rec) == keyed


def test_content_hash_covers_every_field_and_ignores_the_hashes_themselves() -> None:
    h = _chain.Hasher(None)
    base = h.content(schemas.RECORD_CHECKPOINT, _checkpoint())
    for change in ({"written_at": 1_700_000_000_001}, {"parent_checkpoint_id": "x"},
                   {"thread_id": "u"}, {"metadata": {"type": "msgpack", "data": b"\x80"}},
                   {"channel_versions": []}):
        assert h.content(schemas.RECORD_CHECKPOINT, _checkpoint(**change)) != base, change
    stamped = _checkpoint(content_hash="00" * 32, chain_hash="11" * 32, hash_key_id="x")
    assert h.content(schemas.RECORD_CHECKPOINT, stamped) == base
    # Domain separation: the same bytes under another record type hash differently.
    writes = {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c", "task_id": "x",
              "task_path": "", "written_at": 1, "writes": []}
    assert h.content(schemas.RECORD_WRITES, writes) != h.content(schemas.RECORD_BLOBS, {
        "thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c", "written_at": 1,
        "blobs": []})


def test_chain_links_parent_to_child() -> None:
    h = _chain.Hasher(None)
    c1, c2 = "aa" * 32, "bb" * 32
    root = h.chain(None, c1)
    assert root == hashlib.sha256(b"chain\n" + bytes(32) + bytes.fromhex(c1)).hexdigest()
    child = h.chain(root, c2)
    assert child == hashlib.sha256(
        b"chain\n" + bytes.fromhex(root) + bytes.fromhex(c2)).hexdigest()
    assert h.chain(h.chain(None, "cc" * 32), c2) != child


def test_removal_marker_hash_excludes_its_own_hash_fields() -> None:
    h = _chain.Hasher(b"s" * 20)
    marker: dict[str, Any] = {
        "thread_id": "t", "checkpoint_ns": "", "written_at": 5, "reason": "prune",
        "removed": [{"checkpoint_id": "c", "parent_checkpoint_id": None, "chain_hash": None}],
    }
    digest = h.stamp(schemas.RECORD_REMOVAL, marker)
    assert marker["content_hash"] == digest and marker["hash_key_id"] == h.key_id
    assert h.content(schemas.RECORD_REMOVAL, marker) == digest
    marker["reason"] = "delete_for_runs"
    assert h.content(schemas.RECORD_REMOVAL, marker) != digest


def test_chain_key_validation_and_id() -> None:
    assert _chain.key_bytes(None) is None
    assert _chain.key_bytes("x" * 16) == b"x" * 16
    assert _chain.key_bytes(b"y" * 15 + b"\n") == b"y" * 15 + b"\n"  # bytes, exactly
    with pytest.raises(ValueError, match="at least 16 bytes"):
        _chain.key_bytes(b"short")
    assert _chain.key_id(b"k" * 32) == hashlib.sha256(b"k" * 32).hexdigest()[:16]
    assert _chain.Hasher(None).key_id is None


def test_v1_checkpoint_events_read_with_the_v2_reader() -> None:
    """Schema evolution with a real second version: a body written with v1 decodes with
    the current (v2) reader, the new fields at their defaults."""
    v1 = schemas.version(schemas.RECORD_CHECKPOINT, 1)
    assert schemas.current(schemas.RECORD_CHECKPOINT).version == 2
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, v1.parsed, _checkpoint())
    out = schemas.decode(schemas.RECORD_CHECKPOINT, buf.getvalue(), v1.fingerprint, "null")
    assert out["blobs"][0]["value"]["data"] == b"\x91\xa2hi"
    assert (out["content_hash"], out["chain_hash"], out["hash_key_id"]) == (None, None, None)
    # And v2 bodies carry them.
    rec = _checkpoint()
    h = _chain.Hasher(None)
    rec["chain_hash"] = h.chain(None, h.stamp(schemas.RECORD_CHECKPOINT, rec))
    enc = schemas.encode(schemas.RECORD_CHECKPOINT, rec, compress=True)
    back = schemas.decode(schemas.RECORD_CHECKPOINT, enc.body, enc.fingerprint, enc.codec)
    assert back["chain_hash"] == rec["chain_hash"] and back["content_hash"] == rec["content_hash"]
    assert h.content(schemas.RECORD_CHECKPOINT, back) == rec["content_hash"]


@pytest.mark.parametrize("record, current", [
    ("writes_event", 2), ("blobs_event", 2), ("view_checkpoint", 3)])
def test_every_versioned_record_reads_its_v1(record: str, current: int) -> None:
    assert schemas.current(record).version == current
    assert schemas.version(record, 1).fingerprint != schemas.current(record).fingerprint


def test_tombstone_hash_covers_key_and_time() -> None:
    h = _chain.Hasher(None)
    digest = h.tombstone("T#t", "J##~", 1000)
    assert digest == hashlib.sha256(b"tombstone\nT#t\nJ##~\n1000").hexdigest()
    assert h.tombstone("T#t", "J##~", 1001) != digest
    assert h.tombstone("T#u", "J##~", 1000) != digest
    assert _chain.Hasher(b"k" * 16).tombstone("T#t", "J##~", 1000) != digest


@pytest.mark.parametrize("key", [None, b"k" * 32])
def test_encoding_extends_the_hashed_v1_bytes(key: bytes | None) -> None:
    """The saver encodes an event's values once: the v2 body is the hashed v1 encoding
    followed by the hash fields, byte for byte what a full v2 encoding gives."""
    h = _chain.Hasher(key)
    records = {
        schemas.RECORD_CHECKPOINT: _checkpoint(),
        schemas.RECORD_WRITES: {
            "thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c", "task_id": "x",
            "task_path": "p", "written_at": 1,
            "writes": [{"channel": "a", "idx": 0, "value": {"type": "msgpack", "data": b"1"}}]},
        schemas.RECORD_BLOBS: {
            "thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c", "written_at": 1,
            "blobs": [{"channel": "a", "version": 2, "value": None}]},
    }
    for record, value in records.items():
        enc = h.encode(record, value, compress=False, parent_chain="ab" * 32)
        full = schemas.encode(record, value, compress=False)
        assert enc.body == full.body and enc.fingerprint == full.fingerprint, record
        back = schemas.decode(record, enc.body, enc.fingerprint, enc.codec)
        assert back["content_hash"] == h.content(record, back) == value["content_hash"]
    assert records[schemas.RECORD_CHECKPOINT]["chain_hash"] == h.chain(
        "ab" * 32, records[schemas.RECORD_CHECKPOINT]["content_hash"])
