"""Key building for the single-table layout (DESIGN §3). Pure: no boto3 here.

Every item of a thread lives in one partition ``T#{thread}`` so that one Query serves a
thread and ``delete_thread`` is one partition walk. Sort keys:

==========================================  ==============================================
``J#{ns}#{checkpoint_id}``                   checkpoint event (saver)
``J#{ns}#{checkpoint_id}#B#{uniq}``          blobs carried forward by prune / delete_for_runs
``J#{ns}#{checkpoint_id}#V``                 the checkpoint materialised (projector)
``J#{ns}#{checkpoint_id}#W#{task}#{uniq}``   one pending-writes event per put_writes call
``J#{ns}#~``                                 namespace tombstone written by delete_thread
``P#{...parent SK after "J#"}#{n:05d}``     chunk ``n`` of a payload too large for one item
``H#{ns}``                                   head of a namespace (projector)
``I#{ns}#{checkpoint_id}#{key hash}``       metadata index entry (projector)
``R#{ns}#{uniq}``                           removal marker written by prune / delete_for_runs
``O#``                                       the thread's write owner (claim_write_ownership)
==========================================  ==============================================

The view item of a checkpoint sorts between its event and its writes, so one Query in
descending order over ``J#{ns}#`` meets, for each checkpoint, its writes, then its view,
then its event: the newest checkpoint and everything that is not folded yet arrive in the
first page (the read path, I4). Chunks live in their own ``P#`` range so that reading a
namespace never drags megabytes of chunks along when the view already holds the value.

A checkpoint event also says, in plain attributes, how far down a read of it must go:
``jfrom`` the start of its values' delta chains (``delta``), ``vfrom`` the oldest event
holding one of its values (for a read without views), ``hfrom`` where the history of its
DeltaChannels starts (``get_delta_channel_history``).

Thread ids and namespaces are percent-escaped for ``%`` and ``#`` only, so ``#`` never
occurs inside a component and one namespace's prefix ``J#{ns}#`` can never match
another namespace. ``~`` sorts after every character a uuid or an escaped task id
uses, so the tombstone is the last item of its namespace.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
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
KIND_VIEW = "V"
KIND_HEAD = "H"
KIND_INDEX = "I"
KIND_REMOVAL = "R"
KIND_OWNER = "O"

TOMBSTONE_MARK = "~"


def escape(component: str) -> str:
    """Escape ``%`` then ``#`` so a component never contains the separator."""
    return component.replace("%", "%25").replace("#", "%23")


def unescape(component: str) -> str:
    return component.replace("%23", "#").replace("%25", "%")


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidKeyError(f"{name} must be a str, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidKeyError(
            f"{name} {value[:80]!r} is not valid Unicode text (a lone surrogate at position "
            f"{e.start}); DynamoDB keys are UTF-8. Decode it properly, or use a hash of it."
        ) from None
    return value


# LangGraph's checkpoint ids: uuid6 (time-ordered) in canonical text form.
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def new_checkpoint_id(checkpoint_id: object) -> str:
    """A checkpoint id a ``put`` may store: a uuid in canonical form, as LangGraph makes
    them. Ids order checkpoints ("latest" is the greatest), so an id of another shape
    (``zzzz`` would stay the latest forever; ``~`` is the tombstone's place) is refused."""
    cid = _check_str("checkpoint id", checkpoint_id)
    if not _UUID_RE.match(cid):
        raise InvalidKeyError(
            f"checkpoint id {cid[:80]!r} is not a uuid: checkpoint ids order a thread's "
            "history, so the journal stores LangGraph's own (uuid6, lowercase, e.g. "
            "'1ef4f797-8335-6428-8001-8a1503f9b875'). Let LangGraph make the id."
        )
    return cid


def from_config(config: object) -> tuple[str, str, str | None]:
    """(thread id, namespace, checkpoint id or None) of a LangGraph config, checked: a
    config without a thread id is an InvalidKeyError saying what to pass. An int or UUID
    thread id is taken as its text, as LangGraph's own savers do."""
    conf = config.get("configurable") if isinstance(config, dict) else None
    if not isinstance(conf, dict) or conf.get("thread_id") is None:
        raise InvalidKeyError(
            "the config has no thread_id: pass {'configurable': {'thread_id': ...}} "
            "(graph.invoke(..., config) and every saver call need one)")
    thread_id = conf["thread_id"]
    if isinstance(thread_id, int | uuid.UUID) and not isinstance(thread_id, bool):
        thread_id = str(thread_id)
    ns = conf.get("checkpoint_ns") or ""
    cid = conf.get("checkpoint_id") or None
    _check_str("thread_id", thread_id)
    _check_str("checkpoint_ns", ns)
    if cid is not None:
        _check_str("checkpoint_id", cid)
    return thread_id, ns, cid


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


def chunk_prefix(parent_sk: str) -> str:
    """The prefix of every chunk of the record stored at ``parent_sk``."""
    if not parent_sk.startswith("J#"):
        raise ValueError(f"not a journal sort key: {parent_sk!r}")
    return f"P#{parent_sk[2:]}#"


def chunk_sk(parent_sk: str, n: int) -> str:
    return f"{chunk_prefix(parent_sk)}{n:05d}"


def view_sk(checkpoint_ns: str, checkpoint_id: str) -> str:
    return f"{checkpoint_sk(checkpoint_ns, checkpoint_id)}#{KIND_VIEW}"


def head_sk(checkpoint_ns: str) -> str:
    return "H#" + ns_prefix(checkpoint_ns)[2:-1]


def index_prefix(checkpoint_ns: str, checkpoint_id: str) -> str:
    return "I#" + checkpoint_sk(checkpoint_ns, checkpoint_id)[2:] + "#"


def index_sk(checkpoint_ns: str, checkpoint_id: str, key_hash: str) -> str:
    return index_prefix(checkpoint_ns, checkpoint_id) + key_hash


def tombstone_sk(checkpoint_ns: str) -> str:
    return ns_prefix(checkpoint_ns) + TOMBSTONE_MARK


def removal_prefix(checkpoint_ns: str) -> str:
    """The prefix of every removal marker of a namespace."""
    return "R#" + ns_prefix(checkpoint_ns)[2:]


def removal_sk(checkpoint_ns: str, uniq: str) -> str:
    """A removal marker: which checkpoints a prune or delete_for_runs took away, so that
    ``verify`` tells a legitimate removal from a deletion. Outside the ``J#`` range, so
    reads never meet it, and owned by no checkpoint, so later prunes keep it."""
    return removal_prefix(checkpoint_ns) + uniq


def owner_sk() -> str:
    """``O#``: the thread's write owner (``JournalSaver.claim_write_ownership``), one
    item per thread holding the current owner's token. Not a journal key: ``parse_sk``
    refuses it, so folds, reads and verification pass it by; ``owner`` and
    ``namespace_of`` give None, so prunes keep it and ``delete_thread`` (which deletes
    the whole partition) removes it, superseding every owner."""
    return "O#"


class ParsedKey(NamedTuple):
    """What a sort key says about its item."""

    kind: str
    """One of the KIND_* constants."""
    checkpoint_ns: str
    checkpoint_id: str
    """Empty for a tombstone."""
    parent_sk: str
    """For a chunk, the SK of the item it belongs to; for a view item, the SK of its
    checkpoint event; otherwise the SK itself."""


def parse_sk(sk: str) -> ParsedKey:
    """Classify a journal sort key. Raises ValueError for keys outside the journal.

    Components never contain ``#`` (see ``escape``), so the number of parts and the
    marker at a fixed position identify the kind without ambiguity.
    """
    parts = sk.split("#")
    n = len(parts)
    if n == 3 and parts[0] == KIND_REMOVAL and parts[2]:
        return ParsedKey(KIND_REMOVAL, unescape(parts[1]), "", sk)
    if n >= 4 and parts[0] == KIND_CHUNK and parts[-1].isdigit():
        parent = parse_sk("J#" + "#".join(parts[1:-1]))
        if parent.kind in (KIND_CHECKPOINT, KIND_BLOBS, KIND_WRITES):
            return ParsedKey(KIND_CHUNK, parent.checkpoint_ns, parent.checkpoint_id,
                             parent.parent_sk)
        raise ValueError(f"not a journal sort key: {sk!r}")
    if n < 3 or parts[0] != "J":
        raise ValueError(f"not a journal sort key: {sk!r}")
    ns, cid = unescape(parts[1]), parts[2]
    if n == 3:
        if cid == TOMBSTONE_MARK:
            return ParsedKey(KIND_TOMBSTONE, ns, "", sk)
        return ParsedKey(KIND_CHECKPOINT, ns, cid, sk)
    marker = parts[3]
    if n == 4 and marker == KIND_VIEW:
        return ParsedKey(KIND_VIEW, ns, cid, "#".join(parts[:3]))
    if n == 5 and marker == KIND_BLOBS:
        return ParsedKey(KIND_BLOBS, ns, cid, sk)
    if n == 6 and marker == KIND_WRITES:
        return ParsedKey(KIND_WRITES, ns, cid, sk)
    raise ValueError(f"not a journal sort key: {sk!r}")


def thread_from_pk(pk: str) -> str:
    if not pk.startswith("T#"):
        raise ValueError(f"not a thread partition key: {pk!r}")
    return unescape(pk[2:])


def owner(sk: str) -> tuple[str, str] | None:
    """(namespace, checkpoint id) an item belongs to: journal, view, chunk and index items
    belong to a checkpoint; tombstones, removal markers and heads to none."""
    if sk.startswith("I#"):
        parts = sk.split("#")
        return (unescape(parts[1]), parts[2]) if len(parts) == 4 else None
    try:
        key = parse_sk(sk)
    except ValueError:
        return None
    if key.kind in (KIND_TOMBSTONE, KIND_REMOVAL):
        return None
    return key.checkpoint_ns, key.checkpoint_id


def namespace_of(sk: str) -> str | None:
    """The namespace of any item of a thread partition (None for foreign keys)."""
    if sk.startswith("H#"):
        return unescape(sk[2:])
    own = owner(sk)
    if own is not None:
        return own[0]
    try:
        return parse_sk(sk).checkpoint_ns
    except ValueError:
        return None


def namespaces(sort_keys: Iterable[str]) -> list[str]:
    """The namespaces these sort keys belong to, sorted (keys of no namespace skipped)."""
    return sorted({ns for sk in sort_keys if (ns := namespace_of(sk)) is not None})
