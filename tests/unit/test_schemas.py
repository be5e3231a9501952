from __future__ import annotations

import json
import os
from importlib import resources

import pytest

from checkpoint_journal import schemas
from checkpoint_journal.errors import CorruptRecordError

WRITES = {
    "thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c", "task_id": "k",
    "task_path": "p", "written_at": 1_700_000_000_000,
    "writes": [{"channel": "a", "idx": 0, "value": {"type": "msgpack", "data": b"x" * 2000}}],
}


def test_every_schema_file_is_registered_and_fingerprinted() -> None:
    files = [f.name for f in resources.files("checkpoint_journal.schemas").iterdir()
             if f.name.endswith(".avsc")]
    reg = schemas.registry()
    assert len(reg) == len(files) >= 3
    for fp, info in reg.items():
        assert len(fp) == 16 and info.fingerprint == fp
        assert json.dumps(info.raw)  # plain data


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(compress: bool) -> None:
    enc = schemas.encode(schemas.RECORD_WRITES, WRITES, compress=compress)
    assert enc.codec == ("zstd" if compress else "null")
    out = schemas.decode(schemas.RECORD_WRITES, enc.body, enc.fingerprint, enc.codec)
    assert schemas.millis(out["written_at"]) == WRITES["written_at"]
    assert out["writes"] == WRITES["writes"]


def test_small_or_incompressible_records_are_not_compressed() -> None:
    small = {**WRITES, "writes": []}
    assert schemas.encode(schemas.RECORD_WRITES, small, compress=True).codec == "null"
    noisy = {**WRITES, "writes": [{"channel": "a", "idx": 0,
                                   "value": {"type": "bytes", "data": os.urandom(5000)}}]}
    assert schemas.encode(schemas.RECORD_WRITES, noisy, compress=True).codec == "null"


def test_unknown_or_damaged_records_are_corrupt_errors() -> None:
    enc = schemas.encode(schemas.RECORD_WRITES, WRITES, compress=True)
    with pytest.raises(CorruptRecordError, match="newer"):
        schemas.decode(schemas.RECORD_WRITES, enc.body, "0" * 16, enc.codec)
    with pytest.raises(CorruptRecordError, match="zstd"):
        schemas.decode(schemas.RECORD_WRITES, b"garbage", enc.fingerprint, "zstd")
    with pytest.raises(CorruptRecordError, match="codec"):
        schemas.decode(schemas.RECORD_WRITES, enc.body, enc.fingerprint, "lz4")
    with pytest.raises(CorruptRecordError, match="schema fingerprint"):
        schemas.decode(schemas.RECORD_CHECKPOINT, enc.body, enc.fingerprint, enc.codec)
    raw = schemas.encode(schemas.RECORD_WRITES, WRITES, compress=False)
    with pytest.raises(CorruptRecordError, match="cannot be read"):
        schemas.decode(schemas.RECORD_WRITES, raw.body[:10], raw.fingerprint, raw.codec)
