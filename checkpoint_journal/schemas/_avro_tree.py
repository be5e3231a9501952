"""The schema side of the journal's Avro codec (``_avro``): a JSON schema parsed into a
tree of nodes, refusing what the codec does not support, and the tree's parsing canonical
form and CRC-64-AVRO fingerprint (Avro specification, "Parsing Canonical Form for
Schemas" and "Schema Fingerprints")."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any


class SchemaError(ValueError):
    """A schema this codec does not support, or two schemas that do not resolve."""


_PRIMITIVES = frozenset({"null", "int", "long", "double", "string", "bytes"})
# The Avro names of types this codec refuses (named so that the error says "unsupported",
# not "unknown type").
_UNSUPPORTED = frozenset({"boolean", "float", "map", "enum", "fixed", "error"})
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Attributes a schema node may carry without changing its encoding. Anything else (e.g.
# "aliases", which changes how fields resolve) is refused rather than silently ignored.
_RECORD_KEYS = frozenset({"type", "name", "namespace", "doc", "fields"})
_FIELD_KEYS = frozenset({"name", "type", "doc", "default", "order"})
_LOGICAL = {"long": frozenset({"timestamp-millis"})}


# -- the tree -------------------------------------------------------------------------


@dataclass(eq=False)
class Field:
    name: str
    type: Node
    has_default: bool
    default: Any


@dataclass(eq=False)
class Record:
    fullname: str
    fields: list[Field] = field(default_factory=list)
    complete: bool = False


@dataclass(eq=False)
class Array:
    items: Node


@dataclass(eq=False)
class Union:
    branches: list[Node]


@dataclass(eq=False)
class Prim:
    name: str
    logical: str | None = None


Node = Prim | Record | Array | Union


def _fullname(name: Any, namespace: str | None, where: str) -> str:
    if not isinstance(name, str) or not all(_NAME_RE.fullmatch(p) for p in name.split(".")):
        raise SchemaError(f"{where}: invalid name {name!r}")
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


class _Parser:
    def __init__(self) -> None:
        self.named: dict[str, Record] = {}

    def node(self, raw: Any, namespace: str | None, where: str) -> Node:
        if isinstance(raw, list):
            if not raw:
                raise SchemaError(f"{where}: an empty union")
            branches = [self.node(b, namespace, where) for b in raw]
            if any(isinstance(b, Union) for b in branches):
                raise SchemaError(f"{where}: a union directly inside a union")
            return Union(branches)
        if isinstance(raw, str):
            return self.reference(raw, namespace, where)
        if not isinstance(raw, dict) or "type" not in raw:
            raise SchemaError(f"{where}: not a schema: {raw!r}")
        kind = raw["type"]
        if kind == "record":
            return self.record(raw, namespace, where)
        if kind == "array":
            if set(raw) - {"type", "items", "doc"}:
                raise SchemaError(f"{where}: unsupported array attributes {sorted(raw)}")
            return Array(self.node(raw["items"], namespace, where))
        if isinstance(kind, str) and kind in _PRIMITIVES:
            logical = raw.get("logicalType")
            if set(raw) - {"type", "logicalType", "doc"} or (
                    logical is not None and logical not in _LOGICAL.get(kind, ())):
                raise SchemaError(f"{where}: unsupported {kind} attributes {raw!r}")
            return Prim(kind, logical)
        if isinstance(kind, (dict, list)):
            return self.node(kind, namespace, where)
        raise SchemaError(f"{where}: unsupported type {kind!r}")

    def reference(self, name: str, namespace: str | None, where: str) -> Node:
        if name in _PRIMITIVES:
            return Prim(name)
        if name in _UNSUPPORTED:
            raise SchemaError(f"{where}: type {name!r} is not supported by this codec")
        for candidate in (_fullname(name, namespace, where), name):
            found = self.named.get(candidate)
            if found is not None:
                if not found.complete:
                    raise SchemaError(f"{where}: recursive record {found.fullname} is not "
                                      "supported")
                return found
        raise SchemaError(f"{where}: unknown type {name!r}")

    def record(self, raw: dict[str, Any], namespace: str | None, where: str) -> Record:
        if set(raw) - _RECORD_KEYS:
            raise SchemaError(f"{where}: unsupported record attributes "
                              f"{sorted(set(raw) - _RECORD_KEYS)}")
        own_ns = raw.get("namespace", namespace)
        fullname = _fullname(raw.get("name"), own_ns, where)
        if fullname in self.named:
            raise SchemaError(f"{where}: record {fullname} is defined twice")
        rec = Record(fullname)
        self.named[fullname] = rec
        inner_ns = fullname.rpartition(".")[0] or None
        fields = raw.get("fields")
        if not isinstance(fields, list):
            raise SchemaError(f"{where}: record {fullname} has no field list")
        seen: set[str] = set()
        for f in fields:
            if not isinstance(f, dict) or set(f) - _FIELD_KEYS:
                raise SchemaError(f"{where}: unsupported field {f!r} in {fullname}")
            name = f.get("name")
            if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in seen:
                raise SchemaError(f"{where}: bad or repeated field name {name!r} in {fullname}")
            seen.add(name)
            node = self.node(f.get("type"), inner_ns, f"{where}: {fullname}.{name}")
            rec.fields.append(Field(name, node, "default" in f, f.get("default")))
        rec.complete = True
        return rec


# -- canonical form and fingerprint ----------------------------------------------------------


def canonical(node: Node, seen: set[str]) -> str:
    # Avro's parsing canonical form: full names, only name/type/fields/items in that
    # order, primitives as bare names (a logical type is dropped), a named type spelled
    # out at its first occurrence only, no whitespace.
    if isinstance(node, Prim):
        return json.dumps(node.name)
    if isinstance(node, Union):
        return "[" + ",".join(canonical(b, seen) for b in node.branches) + "]"
    if isinstance(node, Array):
        return '{"type":"array","items":' + canonical(node.items, seen) + "}"
    if node.fullname in seen:
        return json.dumps(node.fullname)
    seen.add(node.fullname)
    fields = ",".join('{"name":' + json.dumps(f.name) + ',"type":' + canonical(f.type, seen)
                      + "}" for f in node.fields)
    return '{"name":' + json.dumps(node.fullname) + ',"type":"record","fields":[' + fields + "]}"


_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> str:
    """CRC-64-AVRO (Rabin) fingerprint of ``data``, as 16 hex digits of its bytes in
    little-endian order (Java's and fastavro's convention)."""
    fp = _CRC64_EMPTY
    table = _CRC64_TABLE
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little").hex()


def parse(raw: Any, where: str) -> Record:
    """The record schema ``raw`` (its JSON form) as a tree; SchemaError for anything the
    codec does not support, ``where`` naming the schema in the message."""
    root = _Parser().node(raw, None, where)
    if not isinstance(root, Record):
        raise SchemaError(f"{where}: the top-level schema must be a record")
    return root
