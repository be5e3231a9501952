"""Key building for the single-table layout (DESIGN §3). Pure: no boto3 here.

Every journal item of a thread lives in one partition ``T#{thread}`` so that one Query
serves a thread and ``delete_thread`` is one partition walk. Sort keys:

====================================  ===============================================
``J#{ns}#{checkpoint_id}``             checkpoint event
``J#{ns}#{checkpoint_id}#B#{uniq}``    blobs carried forward by prune / delete_for_runs
``J#{ns}#{checkpoint_id}#W#{task}#{uniq}``  one pending-writes event per put_writes call
``{parent SK}#P#{n:05d}``              chunk ``n`` of a payload too large for one item
``J#{ns}#~``                           namespace tombstone written by delete_thread
====================================  ===============================================

Thread ids and namespaces are percent-escaped for ``%`` and ``#`` only, so ``#`` never
occurs inside a component and one namespace's prefix ``J#{ns}#`` can never match
another namespace. ``~`` sorts after every character a uuid or an escaped task id
uses, so the tombstone is the last item of its namespace.
"""

from __future__ import annotations

from typing import NamedTuple

from checkpoint_journal.errors import InvalidKeyError

# DynamoDB's own limits on key attribute values, in UTF-8 bytes.
MAX_PK_BYTES = 2048
MAX_SK_BYTES = 1024
# Room kept in the sort key for the checkpoint id (36), the writes suffix
# (#W#{task}#{uniq}) and a chunk suffix (#P#00000): a namespace must leave this much.
_SK_RESERVE = 36 + 3 + 128 + 1 + 32 + 8

KIND_CHECKPOINT = "C"
KIND_WRITES = "W"
KIND_BLOBS = "B"
KIND_CHUNK = "P"
KIND_TOMBSTONE = "X"

TOMBSTONE_MARK = "~"


def escape(component: str) -> str:
    """Escape ``%`` then ``#`` so a component never contains the separator."""
    return component.replace("%", "%25").replace("#", "%23")


def unescape(component: str) -> str:
    return component.replace("%23", "#").replace("%25", "%")


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidKeyError(f"{name} must be a str, got {type(value).__name__}")
    return value


def thread_pk(thread_id: str) -> str:
    """Partition key of a thread; raises InvalidKeyError if DynamoDB would refuse it."""
    _check_str("thread_id", thread_id)
    if thread_id == "":
        raise InvalidKeyError("thread_id must not be empty")
    pk = "T#" + escape(thread_id)
    if len(pk.encode()) > MAX_PK_BYTES:
        raise InvalidKeyError(
            f"thread_id is {len(thread_id.encode())} bytes once encoded; DynamoDB allows "
            f"{MAX_PK_BYTES} bytes for a partition key. Use a shorter thread id "
            "(for example a hash of the long one)."
        )
    return pk


def ns_prefix(checkpoint_ns: str) -> str:
    """``J#{ns}#``: the prefix of every journal item of one namespace."""
    _check_str("checkpoint_ns", checkpoint_ns)
    prefix = "J#" + escape(checkpoint_ns) + "#"
    if len(prefix.encode()) + _SK_RESERVE > MAX_SK_BYTES:
        raise InvalidKeyError(
            f"checkpoint_ns is {len(checkpoint_ns.encode())} bytes once encoded; with the "
            f"checkpoint id and suffixes it would exceed DynamoDB's {MAX_SK_BYTES}-byte sort "
            "key limit. Use shorter subgraph names."
        )
    return prefix


def _check_checkpoint_id(checkpoint_id: str) -> str:
    _check_str("checkpoint_id", checkpoint_id)
    if not checkpoint_id or "#" in checkpoint_id or len(checkpoint_id) > 64:
        raise InvalidKeyError(
            f"checkpoint_id {checkpoint_id[:80]!r} is not a valid id: ids are uuid6 strings "
            "made by LangGraph (at most 64 characters, no '#')"
        )
    return checkpoint_id


def checkpoint_sk(checkpoint_ns: str, checkpoint_id: str) -> str:
    return ns_prefix(checkpoint_ns) + _check_checkpoint_id(checkpoint_id)


def writes_sk(checkpoint_ns: str, checkpoint_id: str, task_id: str, uniq: str) -> str:
    _check_str("task_id", task_id)
    task = escape(task_id)
    if len(task.encode()) > 128:
        raise InvalidKeyError("task_id is longer than 128 bytes once encoded")
    return f"{checkpoint_sk(checkpoint_ns, checkpoint_id)}#W#{task}#{uniq}"


def blobs_sk(checkpoint_ns: str, checkpoint_id: str, uniq: str) -> str:
    return f"{checkpoint_sk(checkpoint_ns, checkpoint_id)}#B#{uniq}"


def chunk_sk(parent_sk: str, n: int) -> str:
    return f"{parent_sk}#P#{n:05d}"


def tombstone_sk(checkpoint_ns: str) -> str:
    return ns_prefix(checkpoint_ns) + TOMBSTONE_MARK


class ParsedKey(NamedTuple):
    """What a sort key says about its item."""

    kind: str
    """One of the KIND_* constants."""
    checkpoint_ns: str
    checkpoint_id: str
    """Empty for a tombstone."""
    parent_sk: str
    """For a chunk, the SK of the item it belongs to; otherwise the SK itself."""


def parse_sk(sk: str) -> ParsedKey:
    """Classify a journal sort key. Raises ValueError for keys outside the journal.

    Components never contain ``#`` (see ``escape``), so the number of parts and the
    marker at a fixed position identify the kind without ambiguity.
    """
    parts = sk.split("#")
    n = len(parts)
    if n < 3 or parts[0] != "J":
        raise ValueError(f"not a journal sort key: {sk!r}")
    ns, cid = unescape(parts[1]), parts[2]
    if n == 3:
        if cid == TOMBSTONE_MARK:
            return ParsedKey(KIND_TOMBSTONE, ns, "", sk)
        return ParsedKey(KIND_CHECKPOINT, ns, cid, sk)
    marker = parts[3]
    if n == 5 and marker == KIND_CHUNK:
        return ParsedKey(KIND_CHUNK, ns, cid, "#".join(parts[:3]))
    if n == 5 and marker == KIND_BLOBS:
        return ParsedKey(KIND_BLOBS, ns, cid, sk)
    if n == 6 and marker == KIND_WRITES:
        return ParsedKey(KIND_WRITES, ns, cid, sk)
    if n == 7 and marker == KIND_BLOBS and parts[5] == KIND_CHUNK:
        return ParsedKey(KIND_CHUNK, ns, cid, "#".join(parts[:5]))
    if n == 8 and marker == KIND_WRITES and parts[6] == KIND_CHUNK:
        return ParsedKey(KIND_CHUNK, ns, cid, "#".join(parts[:6]))
    raise ValueError(f"not a journal sort key: {sk!r}")


def thread_from_pk(pk: str) -> str:
    if not pk.startswith("T#"):
        raise ValueError(f"not a thread partition key: {pk!r}")
    return unescape(pk[2:])
