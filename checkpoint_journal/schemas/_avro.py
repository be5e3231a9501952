"""A small, exact Avro binary codec for the journal's own schemas (no fastavro needed).

It covers what the ``.avsc`` files beside it use, and refuses everything else when a
schema is parsed (:class:`SchemaError`, ``_avro_tree``), never while encoding or decoding:

- types: ``null``, ``int``, ``long`` (also as ``timestamp-millis``), ``double``,
  ``string``, ``bytes``, records, arrays, unions, and references to named records;
- schema resolution (Avro specification, "Schema Resolution"), as fastavro does it: a
  reader field missing in the writer takes its default, a writer field missing in the
  reader is skipped, fields match by name in any order, a writer's union branch reads
  as the first reader branch it matches (records by unqualified name), and the
  promotions int to long and int or long to double;
- the parsing canonical form and its CRC-64-AVRO fingerprint (``_avro_tree``).

Encoding is byte-for-byte what ``fastavro.schemaless_writer`` writes for the values the
journal stores (the content hashes depend on it; ``tests/unit/test_avro_codec.py`` holds
fastavro as the oracle), including how it picks a union branch: the first branch the
value validates against, except that among records the one naming most of the value's
keys wins. Decoding gives what ``fastavro.schemaless_reader`` gives: dicts, ``int``,
``float``, ``str``, ``bytes``, ``None``, and for ``timestamp-millis`` an aware UTC
``datetime``. Damaged bytes (truncated, an over-long varint, a union branch or length
out of range, invalid UTF-8, bytes left over) raise :class:`AvroDecodeError`, and no
length is trusted beyond the bytes actually present, so nothing large is allocated.

Each schema is compiled once into closures (one per node): nothing interprets the schema
per value.
"""

from __future__ import annotations

import array
import datetime as _dt
import numbers
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from types import NoneType
from typing import Any

from checkpoint_journal.schemas._avro_tree import (Array, Node, Prim, Record, SchemaError,
                                                   Union, canonical, crc64_avro, parse)

__all__ = ["AvroDecodeError", "AvroEncodeError", "Schema", "SchemaError", "crc64_avro"]

Writer = Callable[[bytearray, Any], None]
"""Appends the encoding of a value to the buffer."""
Reader = Callable[[bytes, int], tuple[Any, int]]
"""Reads one value at an offset: the value and the offset after it."""
Validator = Callable[[Any], bool]
"""Whether a value can be written with a union branch (fastavro's validation rules)."""


class AvroEncodeError(ValueError):
    """A value that does not fit its schema."""


class AvroDecodeError(ValueError):
    """Bytes that are not a valid encoding under the writer schema."""


INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1
# The longest varint of a 64-bit long: 10 bytes of 7 bits. A longer one is damage.
_MAX_VARINT_SHIFT = 63
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_DOUBLE = struct.Struct("<d")


# -- primitives: encoding --------------------------------------------------------------------


def _write_long(out: bytearray, v: int) -> None:
    n = (v << 1) ^ (v >> 63)  # zigzag
    if n < 0x80:
        if n < 0:  # v below the long range
            raise AvroEncodeError(f"{v} is out of the range of an Avro long")
        out.append(n)
        return
    if n >> 64:
        raise AvroEncodeError(f"{v} is out of the range of an Avro long")
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _write_int(out: bytearray, v: int) -> None:
    if not INT_MIN <= v <= INT_MAX:
        raise AvroEncodeError(f"{v} is out of the range of an Avro int")
    _write_long(out, v)


def _write_string(out: bytearray, v: str) -> None:
    b = v.encode()
    n = len(b)
    if n < 64:  # zigzag(n) < 0x80: a one-byte length, the common case
        out.append(n << 1)
    else:
        _write_long(out, n)
    out += b


def _write_bytes(out: bytearray, v: bytes) -> None:
    n = len(v)
    if n < 64:
        out.append(n << 1)
    else:
        _write_long(out, n)
    out += v


def _write_double(out: bytearray, v: float) -> None:
    out += _DOUBLE.pack(v)


def _write_null(out: bytearray, v: None) -> None:
    if v is not None:
        raise AvroEncodeError(f"{v!r} is not null")


def _millis(v: Any) -> Any:
    """A timestamp-millis value as fastavro prepares it: an aware datetime from the epoch
    in UTC, a naive one as local time, anything else unchanged."""
    if isinstance(v, _dt.datetime):
        if v.tzinfo is not None:
            d = v - _EPOCH
            return (d.days * 86400 + d.seconds) * 1000 + int(d.microseconds / 1000)
        return int(time.mktime(v.timetuple())) * 1000 + int(v.microsecond / 1000)
    return v


def _write_millis(out: bytearray, v: Any) -> None:
    _write_long(out, _millis(v))


# -- primitives: decoding --------------------------------------------------------------------


def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    # An IndexError (the buffer ends inside the varint) is turned into AvroDecodeError
    # once, where decoding starts.
    b = buf[pos]
    pos += 1
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos
    n = b & 0x7F
    shift = 7
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > _MAX_VARINT_SHIFT:
            raise AvroDecodeError("a varint longer than 10 bytes")
    if n >> 64:
        raise AvroDecodeError("a varint beyond 64 bits")
    return (n >> 1) ^ -(n & 1), pos


def _read_int(buf: bytes, pos: int) -> tuple[int, int]:
    v, pos = _read_long(buf, pos)
    if not INT_MIN <= v <= INT_MAX:
        raise AvroDecodeError(f"int {v} out of range")
    return v, pos


def _length(buf: bytes, pos: int) -> tuple[int, int]:
    """A length prefix, checked against the bytes that follow it."""
    b = buf[pos]
    if b < 0x80 and not b & 1:
        n, pos = b >> 1, pos + 1
    else:
        n, pos = _read_long(buf, pos)
        if n < 0:
            raise AvroDecodeError(f"negative length {n}")
    if pos + n > len(buf):
        raise AvroDecodeError(f"length {n} runs past the end of the data")
    return n, pos


def _read_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = _length(buf, pos)
    end = pos + n
    return buf[pos:end], end


def _read_string(buf: bytes, pos: int) -> tuple[str, int]:
    n, pos = _length(buf, pos)
    end = pos + n
    return buf[pos:end].decode(), end  # strict UTF-8: damage raises UnicodeDecodeError


def _read_double(buf: bytes, pos: int) -> tuple[float, int]:
    end = pos + 8
    if end > len(buf):
        raise AvroDecodeError("a double runs past the end of the data")
    return _DOUBLE.unpack_from(buf, pos)[0], end


def _read_null(buf: bytes, pos: int) -> tuple[None, int]:
    return None, pos


def _read_millis(buf: bytes, pos: int) -> tuple[_dt.datetime, int]:
    v, pos = _read_long(buf, pos)
    # As fastavro: the epoch plus a timedelta (datetime.fromtimestamp loses precision and
    # range on some platforms). Out of datetime's range raises OverflowError: damage.
    return _EPOCH + _dt.timedelta(milliseconds=v), pos


def _promote(read: Reader, to: Callable[[Any], Any]) -> Reader:
    def promoted(buf: bytes, pos: int) -> tuple[Any, int]:
        v, pos = read(buf, pos)
        return to(v), pos
    return promoted


# -- compiling writers -----------------------------------------------------------------------


def _prim_writer(node: Prim) -> Writer:
    if node.logical == "timestamp-millis":
        return _write_millis
    writers: dict[str, Writer] = {
        "null": _write_null, "int": _write_int, "long": _write_long,
        "double": _write_double, "string": _write_string, "bytes": _write_bytes,
    }
    return writers[node.name]


def _validator(node: Node) -> Validator:
    """fastavro's ``validate`` of a value against a node, which is how its writer picks
    a union branch (so the same value gets the same branch, hence the same bytes)."""
    if isinstance(node, Prim):
        name = node.name
        if name == "null":
            return lambda v: v is None
        if name == "string":
            return lambda v: isinstance(v, str)
        if name == "bytes":
            return lambda v: isinstance(v, (bytes, bytearray))
        if name == "double":
            return lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)
        lo, hi = (INT_MIN, INT_MAX) if name == "int" else (LONG_MIN, LONG_MAX)
        if node.logical == "timestamp-millis":
            return lambda v: _integral_in(_millis(v), lo, hi)
        return lambda v: _integral_in(v, lo, hi)
    if isinstance(node, Union):
        branches = [_validator(b) for b in node.branches]
        return lambda v: any(ok(v) for ok in branches)
    if isinstance(node, Array):
        item = _validator(node.items)
        return lambda v: (isinstance(v, (Sequence, array.array)) and not isinstance(v, str)
                          and all(item(x) for x in v))
    checks = [(f.name, f.default if f.has_default else None, _validator(f.type))
              for f in node.fields]
    fullname = node.fullname
    return lambda v: (isinstance(v, Mapping)
                      and not ("-type" in v and v["-type"] != fullname)
                      and all(ok(v.get(name, dflt)) for name, dflt, ok in checks))


def _integral_in(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and lo <= int(v) <= hi


_MISSING = object()


def _record_writer(node: Record, start: int = 0) -> Writer:
    # Per field: its writer, and what a value without the key writes (fastavro: the
    # default, else null when the type is a union with null, else an error).
    plan: list[tuple[str, Any, Writer]] = []
    for f in node.fields[start:]:
        if f.has_default:
            absent: Any = f.default
        elif isinstance(f.type, Union) and any(
                isinstance(b, Prim) and b.name == "null" for b in f.type.branches):
            absent = None
        else:
            absent = _MISSING
        plan.append((f.name, absent, _writer(f.type)))
    fullname = node.fullname

    def write_record(out: bytearray, v: Any) -> None:
        if not isinstance(v, Mapping):
            raise AvroEncodeError(f"{fullname}: expected a mapping, got {type(v).__name__}")
        get = v.get
        for name, absent, write in plan:
            x = get(name, absent)
            if x is _MISSING:
                raise AvroEncodeError(f"{fullname}: no value and no default for {name!r}")
            write(out, x)
    return write_record


def _union_writer(node: Union) -> Writer:
    branches = node.branches
    writers = [_writer(b) for b in branches]
    checks = [_validator(b) for b in branches]
    record_fields = [frozenset(f.name for f in b.fields) if isinstance(b, Record) else None
                     for b in branches]
    # Values whose branch depends on their type alone get it from a table (the first
    # branch of their kind): None, str, bytes, float. Ints depend on their range, and
    # mappings on their keys: those take fastavro's search below. Arrays would accept
    # bytes, so a union with an array has no table.
    fast: dict[type, int] = {}
    if not any(isinstance(b, Array) for b in branches):
        kinds: dict[type, str] = {NoneType: "null", str: "string", bytes: "bytes",
                                  bytearray: "bytes", float: "double"}
        for pytype, kind in kinds.items():
            for i, b in enumerate(branches):
                if isinstance(b, Prim) and b.name == kind:
                    fast[pytype] = i
                    break
    if len(branches) > 64:  # the branch index is written as one byte below
        raise SchemaError("a union of more than 64 branches is not supported")
    pairs = list(zip(checks, record_fields, strict=True))

    def write_union(out: bytearray, v: Any) -> None:
        best = fast.get(type(v), -1)
        if best < 0:
            most = -1
            for i, (ok, fields) in enumerate(pairs):
                if ok(v):
                    if fields is None:
                        best = i
                        break
                    score = len(fields.intersection(v))
                    if score > most:
                        best, most = i, score
            if best < 0:
                raise AvroEncodeError(f"{v!r:.80} matches no branch of the union")
        out.append(best << 1)
        writers[best](out, v)
    return write_union


def _array_writer(node: Array) -> Writer:
    item = _writer(node.items)

    def write_array(out: bytearray, v: Any) -> None:
        if isinstance(v, (str, bytes, Mapping)):
            raise AvroEncodeError(f"expected a sequence, got {type(v).__name__}")
        n = len(v)
        if n:
            _write_long(out, n)
            for x in v:
                item(out, x)
        out.append(0)
    return write_array


def _writer(node: Node) -> Writer:
    if isinstance(node, Prim):
        return _prim_writer(node)
    if isinstance(node, Record):
        return _record_writer(node)
    if isinstance(node, Union):
        return _union_writer(node)
    return _array_writer(node)


# -- compiling readers (with schema resolution) ----------------------------------------------


def _matches(w: Node, r: Node) -> bool:
    """fastavro's ``match_types``: can a writer's branch ``w`` be read as ``r``."""
    if isinstance(w, Union) or isinstance(r, Union):
        return True
    if isinstance(w, Record) and isinstance(r, Record):
        return w.fullname.rpartition(".")[2] == r.fullname.rpartition(".")[2]
    if isinstance(w, Array) and isinstance(r, Array):
        return _matches(w.items, r.items)
    if isinstance(w, Prim) and isinstance(r, Prim):
        return w.name == r.name or (w.name, r.name) in _PROMOTIONS
    return False


_PROMOTIONS = {("int", "long"), ("int", "double"), ("long", "double")}


def _min_size(node: Node) -> int:
    """The fewest bytes a value of ``node`` encodes to."""
    if isinstance(node, Prim):
        return {"null": 0, "double": 8}.get(node.name, 1)
    if isinstance(node, Union):
        return 1 + min(_min_size(b) for b in node.branches)
    if isinstance(node, Array):
        return 1
    return sum(_min_size(f.type) for f in node.fields)


def _reader(w: Node, r: Node | None, where: str) -> Reader:
    """A reader of values written as ``w``, resolved to ``r`` (None: read as written)."""
    if isinstance(w, Union):
        return _union_reader(w, r, where)
    if isinstance(r, Union):
        for branch in r.branches:
            if _matches(w, branch):
                return _reader(w, branch, where)
        raise SchemaError(f"{where}: the writer's type reads as no branch of the reader's union")
    if r is not None and not _matches(w, r):
        raise SchemaError(f"{where}: the writer's type cannot be read as the reader's")
    if isinstance(w, Prim):
        read = _prim_reader(w)
        if isinstance(r, Prim) and r.name != w.name:
            # Only int to long (the same Python int) and int or long to double (a float).
            return _promote(read, float) if r.name == "double" else read
        return read
    if isinstance(w, Array):
        assert r is None or isinstance(r, Array)
        return _array_reader(w, r, where)
    assert isinstance(w, Record) and (r is None or isinstance(r, Record))
    return _record_reader(w, r, where)


def _prim_reader(node: Prim) -> Reader:
    # fastavro applies the writer's logical type.
    if node.logical == "timestamp-millis":
        return _read_millis
    readers: dict[str, Reader] = {
        "null": _read_null, "int": _read_int, "long": _read_long, "double": _read_double,
        "string": _read_string, "bytes": _read_bytes,
    }
    return readers[node.name]


def _union_reader(w: Union, r: Node | None, where: str) -> Reader:
    readers: list[Reader] = []
    for i, branch in enumerate(w.branches):
        if r is None:
            readers.append(_reader(branch, None, where))
            continue
        candidates = r.branches if isinstance(r, Union) else [r]
        match = next((c for c in candidates if _matches(branch, c)), None)
        # A writer branch the reader cannot read is an error only for a value that uses
        # it (Avro's rule): its reader raises.
        readers.append(_reader(branch, match, where) if match is not None
                       else _unreadable(f"{where}: union branch {i} has no reader branch"))
    count = len(readers)

    def read_union(buf: bytes, pos: int) -> tuple[Any, int]:
        b = buf[pos]
        if b < 0x80 and not b & 1:
            i, pos = b >> 1, pos + 1
        else:
            i, pos = _read_long(buf, pos)
        if not 0 <= i < count:
            raise AvroDecodeError(f"union branch {i} out of range (0 to {count - 1})")
        return readers[i](buf, pos)
    return read_union


def _unreadable(message: str) -> Reader:
    def fail(buf: bytes, pos: int) -> tuple[Any, int]:
        raise AvroDecodeError(message)
    return fail


def _array_reader(w: Array, r: Array | None, where: str) -> Reader:
    item = _reader(w.items, None if r is None else r.items, where)
    item_size = _min_size(w.items)
    if item_size == 0:
        # Nothing would bound a damaged count: refuse the schema instead.
        raise SchemaError(f"{where}: arrays of a type that can encode to no bytes are not "
                          "supported")

    def read_array(buf: bytes, pos: int) -> tuple[list[Any], int]:
        out: list[Any] = []
        append = out.append
        size = len(buf)
        while True:
            count, pos = _read_long(buf, pos)
            if count == 0:
                return out, pos
            if count < 0:  # a block with its byte size: the size is not needed
                count = -count
                _, pos = _read_long(buf, pos)
            # Refuse a count the remaining bytes cannot hold before looping over it.
            if count * item_size > size - pos:
                raise AvroDecodeError(f"array block of {count} items runs past the end "
                                      "of the data")
            for _ in range(count):
                x, pos = item(buf, pos)
                append(x)
    return read_array


def _record_reader(w: Record, r: Record | None, where: str) -> Reader:
    reader_fields = {f.name: f for f in r.fields} if r is not None else {}
    steps: list[tuple[str | None, Reader]] = []
    for f in w.fields:
        if r is None:
            steps.append((f.name, _reader(f.type, None, where)))
        elif f.name in reader_fields:
            steps.append((f.name, _reader(f.type, reader_fields.pop(f.name).type,
                                          f"{where}: {w.fullname}.{f.name}")))
        else:  # removed from the reader: read and dropped
            steps.append((None, _reader(f.type, None, where)))
    defaults: list[tuple[str, Any]] = []
    for name, f in reader_fields.items():
        if not f.has_default:
            raise SchemaError(f"{where}: reader field {name!r} of {w.fullname} is missing in "
                              "the writer and has no default")
        defaults.append((name, f.default))
    # Defaults that are lists or dicts are copied, so that a caller changing one record
    # does not change the next.
    mutable = [(n, d) for n, d in defaults if isinstance(d, (list, dict))]
    plain = [(n, d) for n, d in defaults if not isinstance(d, (list, dict))]

    def read_record(buf: bytes, pos: int) -> tuple[dict[str, Any], int]:
        rec: dict[str, Any] = {}
        for name, read in steps:
            v, pos = read(buf, pos)
            if name is not None:
                rec[name] = v
        for name, d in plain:
            rec[name] = d
        for name, d in mutable:
            rec[name] = deepcopy(d)
        return rec, pos
    return read_record


# -- the public face -------------------------------------------------------------------------


class Schema:
    """One parsed record schema: its canonical form, fingerprint and compiled writer.

    ``raw`` is the schema's JSON as loaded (a record). Raises :class:`SchemaError` for a
    schema or feature this codec does not support."""

    def __init__(self, raw: Any, where: str = "schema") -> None:
        root = parse(raw, where)
        self._root = root
        self._where = where
        self.canonical_form = canonical(root, set())
        """The parsing canonical form (Avro specification)."""
        self.fingerprint = crc64_avro(self.canonical_form.encode())
        """CRC-64-AVRO of the canonical form, 16 hex digits."""
        self.field_names = tuple(f.name for f in root.fields)
        self._write = _record_writer(root)
        self._tails: dict[int, Writer] = {}

    def encode(self, value: Mapping[str, Any]) -> bytes:
        """``value``'s Avro binary encoding (what fastavro's schemaless_writer writes).
        Raises AvroEncodeError when it does not fit the schema."""
        return self.encode_fields(value, 0)

    def encode_fields(self, value: Mapping[str, Any], start: int) -> bytes:
        """The encoding of ``value``'s fields from the ``start``-th on: a record's
        encoding is its fields' encodings one after the other, so the encoding of the
        first ``start`` fields followed by this one is the whole record's."""
        write = self._write if start == 0 else self._tails.get(start)
        if write is None:
            write = self._tails[start] = _record_writer(self._root, start)
        out = bytearray()
        try:
            write(out, value)
        except AvroEncodeError:
            raise
        except (TypeError, ValueError, AttributeError, OverflowError, struct.error) as e:
            raise AvroEncodeError(f"{self._where}: value does not fit the schema: {e}") from e
        return bytes(out)

    def reader(self, reader: Schema | None = None) -> Callable[[bytes], dict[str, Any]]:
        """A decoder of bytes written with this schema, resolved to ``reader`` (None: as
        written). Compiled now, so schemas that do not resolve raise SchemaError here. The
        decoder raises AvroDecodeError on damaged bytes, whatever the damage."""
        read = _reader(self._root, None if reader is None else reader._root,
                       f"{self._where} read as {reader._where if reader else 'itself'}")

        def decode(body: bytes) -> dict[str, Any]:
            buf = bytes(body)
            try:
                value, pos = read(buf, 0)
            except AvroDecodeError:
                raise
            except IndexError:
                raise AvroDecodeError("the data ends inside a value (truncated)") from None
            except (ValueError, OverflowError) as e:  # bad UTF-8, a date out of range
                raise AvroDecodeError(f"{type(e).__name__}: {e}") from None
            if pos != len(buf):
                raise AvroDecodeError(f"{len(buf) - pos} byte(s) after the end of the record")
            result: dict[str, Any] = value
            return result
        return decode
