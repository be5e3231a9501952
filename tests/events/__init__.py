"""Canonical Lambda events of the journal table's stream, as JSON files, and their loader.

Each ``<name>.json`` here is one event, ``{"Records": [...]}``, exactly as Lambda hands
it to a function subscribed to the stream (see ``make_events``, which makes them from
the code's own items, for the story they tell):

=========================  ==========================================================
``checkpoint_insert``      INSERT of a checkpoint event (kind C), as ``put`` writes it
``writes_insert``          INSERT of a pending-writes event (W), as ``put_writes`` does
``chunk_insert``           INSERT of the last chunk (P) of a record too large for one item
``chunked_commit_insert``  INSERT of that record's commit item (C, ``chunks``, ``digest``)
``blobs_insert``           INSERT of the values ``prune`` carries forward (B)
``removal_insert``         INSERT of ``prune``'s removal marker (R)
``delete_remove``          REMOVE of a journal item by ``prune`` (keys only)
``tombstone_insert``       INSERT of ``delete_thread``'s tombstone (X)
``tombstone_modify``       MODIFY of it by a second ``delete_thread``
``ttl_remove``             REMOVE of it by DynamoDB's TTL process (a Service identity)
``view_insert``            INSERT of a view item (V) written by the projector
``index_insert``           INSERT of a metadata index entry (I), by the projector
``head_insert``            INSERT of a namespace head (H), by the projector
``mixed_batch``            every record of the story, in stream order
=========================  ==========================================================

After a change to the items, re-make the files (``tests/unit/test_event_fixtures.py``
fails until then)::

    .venv/bin/python -m tests.events.make_events
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DIRECTORY = Path(__file__).resolve().parent

#: The JSON type of each DynamoDB attribute type's value in a Lambda stream record:
#: numbers are strings, binary is base64 text.
ATTRIBUTE_JSON_TYPES: dict[str, type[Any]] = {
    "S": str, "N": str, "B": str, "BOOL": bool, "NULL": bool,
    "SS": list, "NS": list, "BS": list, "M": dict, "L": list,
}
_IMAGES = ("Keys", "NewImage", "OldImage")


def names() -> list[str]:
    """Every event's name (its file name without ``.json``), sorted."""
    return sorted(p.stem for p in DIRECTORY.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    """The event in ``<name>.json``: a fresh copy, which the caller may change."""
    path = DIRECTORY / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no event fixture {name!r}: one of {names()}")
    event: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return event


def record(name: str) -> dict[str, Any]:
    """The one record of a one-record event."""
    (only,) = load(name)["Records"]
    return only  # type: ignore[no-any-return]


def shape(value: Any) -> Any:
    """The structure of a JSON value: objects keep their keys (and the shapes of their
    values), arrays the shapes of their elements, other values become their type's name.
    Two records of the same shape differ only in their values."""
    if isinstance(value, Mapping):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def envelope(record: Mapping[str, Any]) -> Any:
    """The :func:`shape` of a record around its item, what records of different items
    (and tables) have in common: ``Keys`` and the images show only that they are there
    (check their values with :func:`attribute_type_errors`)."""
    body = {k: "image" if k in _IMAGES else shape(v) for k, v in record["dynamodb"].items()}
    return {k: body if k == "dynamodb" else shape(v) for k, v in record.items()}


def attribute_type_errors(image: Mapping[str, Any]) -> list[str]:
    """Attributes of a Lambda-shaped image whose value is not of its JSON type
    (:data:`ATTRIBUTE_JSON_TYPES`), recursively; empty when the image is well formed."""
    errors = []
    for name, attr in image.items():
        if not isinstance(attr, Mapping) or len(attr) != 1:
            errors.append(f"{name}: not one typed value: {attr!r:.80}")
            continue
        ((tag, value),) = attr.items()
        expected = ATTRIBUTE_JSON_TYPES.get(tag)
        if expected is None or not isinstance(value, expected):
            errors.append(f"{name}: {tag} holds a {type(value).__name__}")
        elif tag == "M":
            errors += [f"{name}.{e}" for e in attribute_type_errors(value)]
        elif tag == "L":
            errors += [f"{name}{e}" for e in attribute_type_errors(
                {f"[{i}]": v for i, v in enumerate(value)})]
        elif tag in ("SS", "NS", "BS") and not all(isinstance(v, str) for v in value):
            errors.append(f"{name}: {tag} holds a non-string")
    return errors


def wire(image: Mapping[str, Any]) -> dict[str, Any]:
    """A Lambda-shaped image as boto3's low-level client has it: binary as bytes."""

    def value(attr: Mapping[str, Any]) -> dict[str, Any]:
        ((tag, inner),) = attr.items()
        if tag == "B":
            return {tag: base64.b64decode(inner)}
        if tag == "BS":
            return {tag: [base64.b64decode(b) for b in inner]}
        if tag == "M":
            return {tag: {k: value(v) for k, v in inner.items()}}
        if tag == "L":
            return {tag: [value(v) for v in inner]}
        return {tag: inner}

    return {name: value(attr) for name, attr in image.items()}
