"""Our Avro codec (``checkpoint_journal/schemas/_avro.py``) against fastavro as the oracle.

For every shipped schema version: values generated from the schema encode to fastavro's
bytes (the content hashes depend on it), and what fastavro writes decodes, resolved to the
record's current schema, to what fastavro reads. Fingerprints and canonical forms equal
fastavro's. Damaged bytes give CorruptRecordError or a valid record, never another
exception; schemas with features the codec lacks are refused when parsed.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import fastavro
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkpoint_journal import schemas
from checkpoint_journal.errors import CorruptRecordError
from checkpoint_journal.schemas import _avro

RECORD_ARCHIVE = "archive_event"
SCHEMAS = sorted(schemas.registry().values(), key=lambda s: (s.record, s.version))
IDS = [f"{s.record}.v{s.version}" for s in SCHEMAS]
# Deterministic and cheap: a fixed set of examples per schema, no example database.
FEW = settings(max_examples=25, derandomize=True, database=None, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_MS_MIN = -62135596800000  # 0001-01-01: datetime's range, which fastavro reads into
_MS_MAX = 253402300799999  # 9999-12-31T23:59:59.999
_LONG = (-(1 << 63), (1 << 63) - 1)


def _values(raw: Any, named: dict[str, Any], ns: str | None = None) -> st.SearchStrategy[Any]:
    """Values of an Avro schema (the JSON form), written independently of the codec."""
    if isinstance(raw, list):
        return st.one_of([_values(b, named, ns) for b in raw])
    if isinstance(raw, str):
        if raw in named:
            return named[raw]
        if ns and f"{ns}.{raw}" in named:
            return named[f"{ns}.{raw}"]
        return _values({"type": raw}, named, ns)
    kind = raw["type"]
    if kind == "record":
        ns = raw.get("namespace", ns)
        full = f"{ns}.{raw['name']}" if ns else raw["name"]
        required: dict[str, st.SearchStrategy[Any]] = {}
        optional: dict[str, st.SearchStrategy[Any]] = {}
        for f in raw["fields"]:
            # A field with a default may be left out: the writer writes the default.
            (optional if "default" in f else required)[f["name"]] = _values(f["type"], named, ns)
        strategy = st.fixed_dictionaries(required, optional=optional)
        named[full] = named[raw["name"]] = strategy
        return strategy
    if kind == "array":
        return st.lists(_values(raw["items"], named, ns), max_size=3)
    if raw.get("logicalType") == "timestamp-millis":
        return st.one_of(st.integers(_MS_MIN, _MS_MAX),
                         st.datetimes(timezones=st.just(dt.timezone.utc)))
    return {
        "null": st.none(),
        "string": st.text(max_size=40),
        "bytes": st.binary(max_size=90),
        "int": st.integers(-(1 << 31), (1 << 31) - 1),
        # Beyond a long's range, an int in ["string", "long", "double"] is written as a double.
        "long": st.integers(*_LONG),
        "double": st.one_of(st.floats(allow_nan=False), st.integers(1 << 63, 1 << 80)),
    }[kind]


def _fastavro_bytes(parsed: Any, value: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, value)
    return buf.getvalue()


@pytest.mark.parametrize("info", SCHEMAS, ids=IDS)
def test_fingerprint_and_canonical_form_are_fastavros(info: schemas.SchemaInfo) -> None:
    parsed = fastavro.parse_schema(info.raw)
    pcf = to_parsing_canonical_form(parsed)
    assert info.codec.canonical_form == pcf
    assert info.fingerprint == fingerprint(pcf, "CRC-64-AVRO")


@pytest.mark.parametrize("info", SCHEMAS, ids=IDS)
def test_encoding_is_fastavros_and_decoding_resolves_like_fastavro(
        info: schemas.SchemaInfo) -> None:
    writer = fastavro.parse_schema(info.raw)
    reader = fastavro.parse_schema(schemas.current(info.record).raw)

    @FEW
    @given(_values(info.raw, {}))
    def check(value: dict[str, Any]) -> None:
        expected = _fastavro_bytes(writer, value)
        assert info.codec.encode(value) == expected
        decoded = schemas.decode(info.record, expected, info.fingerprint, schemas.CODEC_NULL)
        assert decoded == fastavro.schemaless_reader(io.BytesIO(expected), writer, reader)

    check()


def test_encode_extends_the_v1_encoding_as_fastavro_writes_the_whole() -> None:
    # The saver hashes a record's v1 encoding, then appends the newer fields to it.
    v1 = schemas.version(schemas.RECORD_WRITES, 1)
    value = {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c", "task_id": "k",
             "written_at": 1_700_000_000_000,
             "writes": [{"channel": "x", "idx": -1, "value": {"type": "json", "data": b"1"}}],
             "content_hash": "ab" * 32, "hash_key_id": None}
    enc = schemas.encode(schemas.RECORD_WRITES, value, compress=False, v1=v1.codec.encode(value))
    current = schemas.current(schemas.RECORD_WRITES)
    assert enc.fingerprint == current.fingerprint
    assert enc.body == _fastavro_bytes(fastavro.parse_schema(current.raw), value)


def test_a_timestamp_reads_as_an_aware_datetime_as_with_fastavro() -> None:
    info = schemas.current(schemas.RECORD_REMOVAL)
    value = {"thread_id": "t", "checkpoint_ns": "", "written_at": 1_700_000_000_123,
             "reason": "prune", "removed": []}
    got = schemas.decode(info.record, info.codec.encode(value), info.fingerprint, "null")
    assert got["written_at"] == dt.datetime(2023, 11, 14, 22, 13, 20, 123000,
                                            tzinfo=dt.timezone.utc)
    assert schemas.millis(got["written_at"]) == 1_700_000_000_123
    # Defaults of a newer reader are fresh objects: changing one record changes no other.
    old = schemas.version(schemas.RECORD_CHECKPOINT, 1)
    event = {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c", "written_at": 0,
             "checkpoint": {"type": "t", "data": b""}, "metadata": {"type": "t", "data": b""},
             "blobs": []}
    body = old.codec.encode(event)
    first = schemas.decode(old.record, body, old.fingerprint, "null")
    assert first["channel_versions"] == [] and first["content_hash"] is None
    first["channel_versions"].append("changed")
    assert schemas.decode(old.record, body, old.fingerprint, "null")["channel_versions"] == []



def _archive_event(**fields: Any) -> dict[str, Any]:
    return {"thread_id": "t", "checkpoint_ns": "", "kind": "C", "pk": "p", "sk": "s",
            "event_name": "INSERT", "sequence_number": "1", "event_id": "e",
            "approximate_creation_time": 0, "written_at": None, "fingerprint": None,
            "codec": None, **fields}


@pytest.mark.parametrize("value", [
    # Two records validate: the one naming more of the keys wins, the first on a tie.
    _archive_event(body={"nonce": b"n", "ciphertext": b"c", "digest": "d", "chunks": 0}),
    _archive_event(body={"nonce": b"n", "ciphertext": b"c", "digest": "d", "chunks": 0,
                         "size": None}),
    _archive_event(body={"digest": "d", "size": 3, "chunks": 1, "extra": "ignored"}),
    # A nullable field without a default, left out, is written as null.
    {k: v for k, v in _archive_event(body=b"x").items() if k != "written_at"},
    _archive_event(body=None, written_at=dt.datetime(2024, 2, 29, 12, 0, 0, 999999,
                                                     tzinfo=dt.timezone.utc)),
], ids=["tie", "more-keys", "extra-key", "missing-nullable", "datetime"])
def test_a_union_branch_is_chosen_as_fastavro_chooses_it(value: dict[str, Any]) -> None:
    info = schemas.current(RECORD_ARCHIVE)
    assert info.codec.encode(value) == _fastavro_bytes(fastavro.parse_schema(info.raw), value)


@pytest.mark.parametrize("version", [1, "1", 1.5, -(1 << 63), 1 << 63, 1 << 70, True],
                         ids=repr)
def test_a_channel_version_is_written_in_fastavros_branch(version: Any) -> None:
    info = schemas.current(schemas.RECORD_BLOBS)
    value = {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c", "written_at": 0,
             "blobs": [{"channel": "c", "version": version, "value": None}]}
    parsed = fastavro.parse_schema(info.raw)
    try:
        expected: bytes | None = _fastavro_bytes(parsed, value)
    except ValueError:
        expected = None  # a bool is no long for fastavro: neither is it for us
    if expected is None:
        with pytest.raises(_avro.AvroEncodeError):
            info.codec.encode(value)
    else:
        assert info.codec.encode(value) == expected


# -- damage --------------------------------------------------------------------------------


def _typical(record: str) -> tuple[schemas.SchemaInfo, bytes]:
    info = schemas.current(record)
    tv = {"type": "msgpack", "data": bytes(range(40))}
    common = {"thread_id": "thread-1", "checkpoint_ns": "", "checkpoint_id": "1f0-1",
              "parent_checkpoint_id": "1f0-0", "written_at": 1_767_225_600_123,
              "checkpoint": tv, "metadata": tv}
    if record == schemas.RECORD_CHECKPOINT:
        value = {**common, "blobs": [{"channel": "messages", "version": "00001.0.5", "value": tv},
                                     {"channel": "n", "version": 2.5, "value": None}],
                 "channel_versions": [{"channel": "messages", "version": 7}],
                 "content_hash": "ab" * 32, "chain_hash": "cd" * 32, "hash_key_id": None}
    else:
        ref = {"key": "blobs/x", "type": "msgpack", "digest": "ef" * 32, "size": 500_000,
               "stored": 120_000, "codec": "zstd"}
        value = {**common, "channels": [{"channel": "m", "version": 3, "value": ref,
                                         "stored_at": 5}],
                 "writes": [{"task_id": "k", "task_path": "p", "channel": "m", "idx": 0,
                             "value": tv}],
                 "writes_folded": 1, "chain_hash": None}
    return info, info.codec.encode(value)


def _decodes_or_is_corrupt(info: schemas.SchemaInfo, body: bytes) -> None:
    try:
        out = schemas.decode(info.record, body, info.fingerprint, schemas.CODEC_NULL)
    except CorruptRecordError:
        return
    # What decodes is a whole record of the schema, which encodes back to the same bytes.
    assert isinstance(out, dict) and list(out) == list(info.codec.field_names)
    assert info.codec.encode(out) == body


@pytest.mark.parametrize("record", [schemas.RECORD_CHECKPOINT, schemas.RECORD_VIEW])
def test_every_truncation_and_every_bit_flip_is_corrupt_or_a_record(record: str) -> None:
    info, body = _typical(record)
    for n in range(len(body)):
        with pytest.raises(CorruptRecordError):
            schemas.decode(info.record, body[:n], info.fingerprint, schemas.CODEC_NULL)
    with pytest.raises(CorruptRecordError, match="after the end"):
        schemas.decode(info.record, body + b"\0", info.fingerprint, schemas.CODEC_NULL)
    for i in range(len(body)):
        for bit in range(8):
            damaged = bytearray(body)
            damaged[i] ^= 1 << bit
            _decodes_or_is_corrupt(info, bytes(damaged))


@pytest.mark.parametrize(("raw", "message"), [
    (b"\xff" * 11, "longer than 10 bytes"),                 # thread_id's length varint
    (b"\xff" * 9 + b"\x7f", "beyond 64 bits"),
    (b"\x80" * 9 + b"\x01", "runs past the end"),         # a length of 2^62
    (b"\x01", "negative length"),
    (b"\x02a\x00\x00\x03", "union branch -2 out of range"),  # parent_checkpoint_id
    (b"\x02a\x00\x00\x08", "union branch 4 out of range"),
])
def test_bad_varints_lengths_and_union_branches_are_corrupt(raw: bytes, message: str) -> None:
    info = schemas.current(schemas.RECORD_CHECKPOINT)
    with pytest.raises(CorruptRecordError, match=message):
        schemas.decode(info.record, raw, info.fingerprint, schemas.CODEC_NULL)


def test_an_absurd_array_count_is_refused_before_reading_items() -> None:
    info = schemas.version(schemas.RECORD_REMOVAL, 1)
    head = info.codec.encode({"thread_id": "t", "checkpoint_ns": "", "written_at": 0,
                              "reason": "r", "removed": []})[:-3]  # up to the array
    huge = b"\x80" * 9 + b"\x01"  # a count of 2^62, a few bytes left
    with pytest.raises(CorruptRecordError, match="array block of .* runs past the end"):
        schemas.decode(info.record, head + huge + b"\0\0\0", info.fingerprint, "null")


# -- schemas the codec refuses -------------------------------------------------------------


@pytest.mark.parametrize("field_type", [
    {"type": "map", "values": "string"},
    {"type": "enum", "name": "E", "symbols": ["A"]},
    {"type": "fixed", "name": "F", "size": 4},
    "boolean",
    "float",
    {"type": "bytes", "logicalType": "decimal", "precision": 4},
    "Unknown",
    {"type": "array", "items": "null"},
])
def test_unsupported_features_are_refused_when_parsed(field_type: Any) -> None:
    raw = {"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]}
    with pytest.raises(_avro.SchemaError):
        _avro.Schema(raw).reader()


def test_aliases_recursion_and_unresolvable_readers_are_refused() -> None:
    with pytest.raises(_avro.SchemaError, match="unsupported field"):
        _avro.Schema({"type": "record", "name": "R",
                      "fields": [{"name": "f", "type": "long", "aliases": ["g"]}]})
    with pytest.raises(_avro.SchemaError, match="recursive"):
        _avro.Schema({"type": "record", "name": "R",
                      "fields": [{"name": "next", "type": ["null", "R"]}]})
    old = _avro.Schema({"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]})
    new = _avro.Schema({"type": "record", "name": "R", "fields": [
        {"name": "a", "type": "long"}, {"name": "b", "type": "string"}]})
    with pytest.raises(_avro.SchemaError, match="no default"):
        old.reader(new)
    assert old.reader(_avro.Schema({"type": "record", "name": "R", "fields": [
        {"name": "a", "type": "double"}]}))(b"\x04") == {"a": 2.0}  # long promoted to double
