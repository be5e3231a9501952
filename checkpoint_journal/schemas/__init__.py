"""Avro schemas of the journal records, and the codec that reads and writes them.

The ``.avsc`` files beside this module are data: each is parsed once, fingerprinted
(CRC-64-AVRO of its parsing canonical form), and registered. Every stored record names
its writer schema by that fingerprint and its codec, so a record written with an older
schema stays readable: it is decoded with its writer schema and resolved to the current
reader schema of its record type, by Avro's own resolution rules.

File names are ``{record}.v{N}.avsc``; the highest ``N`` of a record is the one written.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import zstandard

from checkpoint_journal.errors import CorruptRecordError
from checkpoint_journal.schemas import _avro

CODEC_NULL = "null"
CODEC_ZSTD = "zstd"
# Below this many bytes zstd's frame header costs more than it saves.
COMPRESS_MIN_BYTES = 256
# Level 3 is zstd's default: most of the ratio of higher levels at a fraction of the CPU.
_ZSTD_LEVEL = 3
# A decompressed record larger than this is refused rather than allocated (zip bomb).
MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024

_FILE_RE = re.compile(r"^(?P<record>[a-z_]+)\.v(?P<version>\d+)\.avsc$")

RECORD_CHECKPOINT = "checkpoint_event"
RECORD_WRITES = "writes_event"
RECORD_BLOBS = "blobs_event"
RECORD_VIEW = "view_checkpoint"
RECORD_REMOVAL = "removal_event"


@dataclass(frozen=True)
class SchemaInfo:
    record: str
    """Record type, e.g. ``checkpoint_event``."""
    version: int
    fingerprint: str
    """CRC-64-AVRO of the parsing canonical form, 16 hex digits."""
    codec: _avro.Schema = field(repr=False)
    """The schema compiled by our own codec (``_avro``): what the journal encodes and
    decodes with."""
    raw: dict[str, Any] = field(repr=False)

    @property
    def parsed(self) -> Any:
        """The schema as ``fastavro.parse_schema`` makes it, for the audit parts that
        write or read Avro container files with fastavro (the archive, ``export``). It
        imports fastavro, which only the ``[audit]`` and ``[lambda]`` extras install:
        nothing on the saver's or the reading commands' paths may use it."""
        return _fastavro_parsed(self.fingerprint)


@dataclass(frozen=True)
class Encoded:
    body: bytes
    fingerprint: str
    codec: str


@cache
def registry() -> dict[str, SchemaInfo]:
    """Every schema shipped with the package, by fingerprint."""
    found: dict[str, SchemaInfo] = {}
    for entry in resources.files(__package__).iterdir():
        m = _FILE_RE.match(entry.name)
        if not m:
            continue
        raw = json.loads(entry.read_text(encoding="utf-8"))
        # Raises SchemaError now for anything the codec does not support.
        schema = _avro.Schema(raw, entry.name)
        fp = schema.fingerprint
        found[fp] = SchemaInfo(m["record"], int(m["version"]), fp, schema, raw)
    # Every version must resolve to its record's current schema: compile each reader now
    # so that a schema change that breaks old records fails here, not at the first read.
    for info in found.values():
        _resolver(info, found)
    return found


def _resolver(info: SchemaInfo, found: dict[str, SchemaInfo]
              ) -> Callable[[bytes], dict[str, Any]]:
    cached = _RESOLVERS.get(info.fingerprint)
    if cached is None:
        reader = max((s for s in found.values() if s.record == info.record),
                     key=lambda s: s.version)
        cached = _RESOLVERS[info.fingerprint] = info.codec.reader(
            None if reader is info else reader.codec)
    return cached


_RESOLVERS: dict[str, Callable[[bytes], dict[str, Any]]] = {}
"""Per writer fingerprint: its decoder, resolved to its record's current schema."""


@cache
def _fastavro_parsed(fp: str) -> Any:
    import fastavro  # only on the audit parts' paths (see SchemaInfo.parsed)

    return fastavro.parse_schema(registry()[fp].raw)


@cache
def current(record: str) -> SchemaInfo:
    """The newest schema of a record type: the one new records are written with."""
    candidates = [s for s in registry().values() if s.record == record]
    if not candidates:
        raise KeyError(f"no schema for record type {record!r}")
    return max(candidates, key=lambda s: s.version)


@cache
def version(record: str, number: int) -> SchemaInfo:
    """One given version of a record type's schema."""
    for s in registry().values():
        if s.record == record and s.version == number:
            return s
    raise KeyError(f"no schema {record}.v{number}")


def squeeze(raw: bytes) -> tuple[bytes, str]:
    """``raw`` zstd-compressed when that makes it smaller, and the codec used.
    Incompressible payloads (already compressed, encrypted, random) stay raw."""
    if len(raw) >= COMPRESS_MIN_BYTES:
        packed = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(raw)
        if len(packed) < len(raw):
            return packed, CODEC_ZSTD
    return raw, CODEC_NULL


def unsqueeze(body: bytes, codec: str, what: str) -> bytes:
    """The inverse of ``squeeze``; CorruptRecordError names ``what`` on damage."""
    if codec == CODEC_NULL:
        return body
    if codec != CODEC_ZSTD:
        raise CorruptRecordError(f"{what}: unknown codec {codec!r}")
    try:
        return zstandard.ZstdDecompressor().decompress(body, max_output_size=MAX_DECOMPRESSED_BYTES)
    except zstandard.ZstdError as e:
        raise CorruptRecordError(f"{what}: zstd payload is damaged: {e}") from e


@cache
def _extension(record: str) -> int | None:
    """How many leading fields the current schema of ``record`` shares, unchanged, with
    its v1 schema, when it only appends fields to it (None otherwise, or when v1 is
    current). Avro encodes a record as its fields one after the other, so v1's encoding
    followed by the encoding of the appended fields is the current encoding."""
    cur, first = current(record), version(record, 1)
    n = len(first.raw["fields"])
    if cur.version == 1 or cur.raw["fields"][:n] != first.raw["fields"]:
        return None
    return n


def encode(
    record: str, value: dict[str, Any], *, compress: bool, v1: bytes | None = None
) -> Encoded:
    """``value`` in the current schema of ``record``. ``v1``: its encoding under the
    record's v1 schema, already made (the content hash's input): the current encoding
    then extends it instead of encoding every field again."""
    schema = current(record)
    extension = _extension(record) if v1 is not None else None
    if extension is not None:
        assert v1 is not None
        raw = v1 + schema.codec.encode_fields(value, extension)
    else:
        raw = schema.codec.encode(value)
    body, codec = squeeze(raw) if compress else (raw, CODEC_NULL)
    return Encoded(body, schema.fingerprint, codec)


def decode(record: str, body: bytes, fp: str, codec: str) -> dict[str, Any]:
    """Decode a stored body written by any known schema version of ``record``."""
    found = registry()
    writer = found.get(fp)
    if writer is None or writer.record != record:
        raise CorruptRecordError(
            f"unknown {record} schema fingerprint {fp!r}: the item was written by a newer "
            "checkpoint-journal; upgrade this reader"
        )
    body = unsqueeze(body, codec, record)
    try:
        return _resolver(writer, found)(body)
    except _avro.AvroDecodeError as e:
        raise CorruptRecordError(f"{record}: Avro payload cannot be read: {e}") from e


def millis(value: Any) -> int:
    """A ``timestamp-millis`` value (``written_at``) as epoch milliseconds: ``decode``
    gives an aware datetime, a record being written holds an int."""
    if isinstance(value, _dt.datetime):
        return int(value.timestamp() * 1000)
    return int(value)
