"""Count every HTTP request a boto3 session sends, and add a simulated round trip to it.

The hook is botocore's ``before-send`` event: it fires once per HTTP *attempt*, right
before the request goes on the wire, so retries are counted (``before-call`` /
``after-call`` fire once per API call and would hide them). The event name carries the
service and operation (``before-send.dynamodb.PutItem``), and the prepared request its
final headers and body, so the byte counts are what is actually sent. Its twin,
``response-received``, also fires once per attempt and gives the response size, the
HTTP status and the attempt number (so retries and error responses are visible).

A handler registered on a session applies to every client created from that session
*afterwards* (botocore copies the session's emitter into each new client), so attach
the counter before building the saver; :meth:`RequestCounter.attach_client` hooks a
client that already exists (the projector builds its own from its environment).

Write requests are also labelled with the kind of item they store (``item_kind``): the
``kind`` attribute every checkpoint-journal item carries (checkpoint event, writes
event, chunk, view, head, index entry, ...), or "S3 object" for a PutObject body, so a
report can say which items the bytes go to.

Sleeping in the hook adds a fixed latency per request, standing in for the network
round trip to DynamoDB/S3 in a region (the local moto server answers in well under a
millisecond, which would make every saver look free). Requests sent concurrently from
several threads sleep concurrently, as real round trips would overlap.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

from checkpoint_journal._core import keys as _keys

__all__ = [
    "KIND_NAMES",
    "READ_OPERATIONS",
    "WRITE_OPERATIONS",
    "PhaseStats",
    "RequestCounter",
    "body_size",
    "item_kind",
]

# Operations whose request body is a change to what is stored: puts, updates and
# uploads, and deletes (their body is the key they remove, a few dozen bytes). Reads are
# not "bytes written" even though they have a (small) body.
WRITE_OPERATIONS: frozenset[str] = frozenset(
    {
        "dynamodb.PutItem",
        "dynamodb.UpdateItem",
        "dynamodb.DeleteItem",
        "dynamodb.BatchWriteItem",
        "dynamodb.TransactWriteItems",
        "s3.PutObject",
        "s3.DeleteObject",
        "s3.DeleteObjects",
        "s3.CreateMultipartUpload",
        "s3.UploadPart",
        "s3.CompleteMultipartUpload",
    }
)

# Operations whose response body is stored data coming back: "bytes read" is the sum of
# their response bodies (an S3 GetObject's is the object; Content-Length, or the
# streaming body's declared length).
READ_OPERATIONS: frozenset[str] = frozenset(
    {
        "dynamodb.GetItem",
        "dynamodb.BatchGetItem",
        "dynamodb.Query",
        "dynamodb.Scan",
        "dynamodb.TransactGetItems",
        "s3.GetObject",
    }
)

# checkpoint-journal's item kinds (the ``kind`` attribute, ``checkpoint_journal._core.keys``),
# as a report names them. Items of other savers have no ``kind``: "other item".
KIND_NAMES: dict[str, str] = {
    _keys.KIND_CHECKPOINT: "checkpoint event",
    _keys.KIND_WRITES: "writes event",
    _keys.KIND_BLOBS: "carried values",
    _keys.KIND_CHUNK: "chunk",
    _keys.KIND_TOMBSTONE: "tombstone",
    _keys.KIND_VIEW: "view",
    _keys.KIND_HEAD: "head",
    _keys.KIND_INDEX: "index entry",
}
S3_OBJECT = "S3 object"


@dataclass
class PhaseStats:
    """Requests and bytes of one phase (e.g. the 12-turn run) of one saver."""

    requests: Counter[str] = field(default_factory=Counter)
    """HTTP attempts by ``service.Operation``."""
    bytes_sent: Counter[str] = field(default_factory=Counter)
    """Request body bytes by ``service.Operation``."""
    bytes_received: Counter[str] = field(default_factory=Counter)
    """Response body bytes by ``service.Operation`` (what reads cost on the wire)."""
    retries: Counter[str] = field(default_factory=Counter)
    """Attempts after the first (already included in ``requests``)."""
    errors: Counter[str] = field(default_factory=Counter)
    """Responses with an HTTP status >= 400, e.g. a failed ConditionExpression."""
    written_by_kind: Counter[str] = field(default_factory=Counter)
    """Body bytes of write requests (``WRITE_OPERATIONS``) by what they store (see
    ``item_kind``); sums to ``bytes_written``."""
    writes_by_kind: Counter[str] = field(default_factory=Counter)
    """Write requests by what they store."""
    wall_s: float = 0.0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_sent.values())

    @property
    def total_received(self) -> int:
        return sum(self.bytes_received.values())

    @property
    def bytes_written(self) -> int:
        return sum(n for op, n in self.bytes_sent.items() if op in WRITE_OPERATIONS)

    @property
    def bytes_read(self) -> int:
        """Response bodies of reads (``READ_OPERATIONS``): the stored data that came back."""
        return sum(n for op, n in self.bytes_received.items() if op in READ_OPERATIONS)


def item_kind(op: str, body: Any) -> str:
    """What a write request stores: a ``KIND_NAMES`` value for a checkpoint-journal item,
    "S3 object" for an S3 upload, "delete" for a delete, "other item" otherwise.

    A BatchWriteItem or TransactWriteItems is named after its items' kind when they all
    have the same one, else "mixed batch".
    """
    if op.startswith("s3."):
        return "delete" if "Delete" in op else S3_OBJECT
    if op == "dynamodb.DeleteItem":
        return "delete"
    if not isinstance(body, (bytes, bytearray, str)):
        return "other item"
    try:
        doc = json.loads(body)
    except ValueError:
        return "other item"
    items: list[Any]
    if op == "dynamodb.BatchWriteItem":
        items = [
            r.get("PutRequest", {}).get("Item") if "PutRequest" in r else None
            for rs in doc.get("RequestItems", {}).values()
            for r in rs
        ]
    elif op == "dynamodb.TransactWriteItems":
        # A Delete counts as a delete; an Update or ConditionCheck carries no item.
        items = [
            t["Put"].get("Item") if "Put" in t else None if "Delete" in t else {}
            for t in doc.get("TransactItems", [])
        ]
    else:
        items = [doc.get("Item")]
    names = {
        "delete" if item is None else KIND_NAMES.get(item.get("kind", {}).get("S"), "other item")
        for item in items
    }
    if len(names) == 1:
        return names.pop()
    return "mixed batch" if names else "other item"


def body_size(request: Any) -> int:
    """Size in bytes of a prepared request's body.

    ``Content-Length`` when botocore set it (it does for DynamoDB's JSON bodies and for
    S3 uploads of known length); otherwise measured: bytes/str directly, a seekable
    stream (S3 bodies are file-like) by seeking to its end and back.
    """
    length = request.headers.get("Content-Length")
    if length is not None:
        return int(length)
    body = request.body
    if body is None:
        return 0
    if isinstance(body, (bytes, bytearray)):
        return len(body)
    if isinstance(body, str):
        return len(body.encode("utf-8"))
    if hasattr(body, "seek") and hasattr(body, "tell"):
        pos = body.tell()
        end = body.seek(0, io.SEEK_END)
        body.seek(pos)
        return int(end - pos)
    raise TypeError(f"cannot size a request body of type {type(body).__name__}")


class RequestCounter:
    """Per-phase request statistics for the sessions it is attached to.

    Thread-safe: LangGraph sends a step's writes from worker threads.
    """

    def __init__(self, rtt_s: float) -> None:
        self.rtt_s = rtt_s
        self.phases: dict[str, PhaseStats] = {}
        self._current = "setup"
        self._lock = threading.Lock()

    def attach(self, session: boto3.session.Session) -> None:
        # "before-send" matches every service and operation (botocore's emitter is
        # hierarchical: "before-send" is a prefix of "before-send.dynamodb.PutItem").
        session.events.register("before-send", self._on_send)
        # Fired once per attempt too, after the response arrived (or the send failed).
        session.events.register("response-received", self._on_response)

    def attach_client(self, client: Any) -> None:
        """Hook an existing boto3 client (its own emitter; other clients are unaffected)."""
        client.meta.events.register("before-send", self._on_send)
        client.meta.events.register("response-received", self._on_response)

    @contextmanager
    def phase(self, name: str) -> Iterator[PhaseStats]:
        """Attribute every request sent inside the block to phase ``name``, and time it."""
        with self._lock:
            stats = self.phases.setdefault(name, PhaseStats())
            previous, self._current = self._current, name
        start = time.perf_counter()
        try:
            yield stats
        finally:
            stats.wall_s += time.perf_counter() - start
            with self._lock:
                self._current = previous

    def stats(self, name: str) -> PhaseStats:
        return self.phases.get(name, PhaseStats())

    def _on_send(self, request: Any, event_name: str, **_: Any) -> None:
        # event_name is "before-send.<service-id>.<Operation>".
        service, operation = event_name.split(".", 2)[1:]
        op = f"{service}.{operation}"
        size = body_size(request)
        kind = item_kind(op, request.body) if op in WRITE_OPERATIONS else None
        with self._lock:
            stats = self.phases.setdefault(self._current, PhaseStats())
            stats.requests[op] += 1
            stats.bytes_sent[op] += size
            if kind is not None:
                stats.written_by_kind[kind] += size
                stats.writes_by_kind[kind] += 1
        if self.rtt_s > 0:
            time.sleep(self.rtt_s)
        # Returning None lets botocore send the request normally.

    def _on_response(
        self,
        response_dict: dict[str, Any] | None,
        context: dict[str, Any],
        event_name: str,
        **_: Any,
    ) -> None:
        service, operation = event_name.split(".", 2)[1:]
        op = f"{service}.{operation}"
        attempt = int(context.get("retries", {}).get("attempt", 1))
        size = 0
        status = 0
        if response_dict is not None:
            status = int(response_dict.get("status_code", 0))
            length = response_dict.get("headers", {}).get("Content-Length")
            body = response_dict.get("body")
            if length is not None:
                size = int(length)
            elif isinstance(body, (bytes, bytearray)):
                size = len(body)
            elif (declared := getattr(body, "_content_length", None)) is not None:
                # botocore's StreamingBody (S3 GetObject) without the header.
                size = int(declared)
        with self._lock:
            stats = self.phases.setdefault(self._current, PhaseStats())
            stats.bytes_received[op] += size
            if attempt > 1:
                stats.retries[op] += 1
            if response_dict is None or status >= 400:
                stats.errors[op] += 1
