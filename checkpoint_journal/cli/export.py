"""``checkpoint-journal export``: the audit archive, decrypted, as JSON lines or as an Avro
extract.

The events come from ``archive_read.iter_archive`` (stream order, de-duplicated, one
thread and a time range if asked). Two formats:

- ``jsonl`` (default): one JSON object per event, its plain fields, its ``state``, its
  metadata and its journal record decoded, every typed value in it (channel values,
  writes, the checkpoint, the metadata) deserialised with LangGraph's
  the saver's strict serde (pickle never; ``--allow`` adds types) and rendered JSON-safe
  exactly as ``show --json`` renders values (``browse.load`` and ``browse.jsonable``).
  An erased event (``shredded``) is there, with its plain fields and no content.
- ``avro``: an Avro object container file of ``archive_event`` records (the current
  schema) with the content in clear: ``body`` the journal record's bytes (a referenced
  body read from the table, when it is still there), ``metadata_json`` the metadata,
  ``key_id`` null. An event whose content could not be read keeps its ``key_id`` and has
  no content, so it reads back as what it is. Any Avro reader (fastavro, Spark, Athena)
  reads the extract; the journal schemas its bodies were written with travel in the file's
  metadata, as in the archive.

The extract holds what the archive no longer shows in clear: keep it as you keep the
journal. Time ranges apply to when an event entered the journal (its stream record's
ApproximateCreationDateTime).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_journal import errors, schemas
from checkpoint_journal._core import archive_read as archive
from checkpoint_journal._core import delta as _delta
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.archive import (
    AVRO_CODEC,
    RECORD_ARCHIVE,
    SCHEMAS_METADATA_KEY,
    ArchiveDamage,
)
from checkpoint_journal.cli.browse import default_serde, iso_ms, jsonable, load
from checkpoint_journal.cli.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

    from checkpoint_journal.cli.connect import Connection

FORMATS = ("jsonl", "avro")
# The states whose content was read (and is given in clear).
READABLE = frozenset({archive.STATE_INLINE, archive.STATE_REFERENCED})
# The states whose content is sealed and could not be opened: the extract keeps key_id.
SEALED = frozenset({archive.STATE_SHREDDED, archive.STATE_UNDECRYPTABLE,
                    archive.STATE_NO_KEY_ACCESS})
EXPORT_METADATA_KEY = "checkpoint_journal.export"


# -- arguments (pure) --------------------------------------------------------------------------


def parse_when(text: str, *, end: bool = False) -> int:
    """Epoch milliseconds of an ISO date or date-time (UTC when it names no zone).

    A bare date is its day's first instant; with ``end`` (``--until``) the next day's,
    so ``--until 2026-01-31`` includes the whole of the 31st.

    Raises:
        ValueError: not an ISO date or date-time.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            return int((start + (dt.timedelta(days=1) if end else dt.timedelta())).timestamp()
                       * 1000)
        moment = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"not an ISO date or date-time: {text!r} (e.g. 2026-01-31, "
            "2026-01-31T12:00, 2026-01-31T12:00:00+02:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def when_arg(end: bool) -> Callable[[str], int]:
    """An argparse ``type`` for --since (``end`` False) and --until (``end`` True)."""

    def parse(text: str) -> int:
        try:
            return parse_when(text, end=end)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


# -- one event as JSON (pure) ---------------------------------------------------------------


def _render(value: Any, serde: SerializerProtocol) -> Any:
    """A decoded journal record JSON-safe, each typed value ({type, data}) deserialised."""
    if isinstance(value, dict):
        if (set(value) == {"type", "data"} and isinstance(value["type"], str)
                and isinstance(value["data"], bytes)):
            loaded, error = load(serde, (value["type"], value["data"]))
            return {"type": value["type"], "bytes": len(value["data"]),
                    "value": None if error else jsonable(loaded), "error": error}
        return {str(k): _render(v, serde) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, serde) for v in value]
    return jsonable(value)


class Deltas:
    """Each channel's latest value seen in an export, by (thread, namespace, channel): a
    value the journal holds as a delta against its previous version (``_core/delta``) is
    rendered whole when that version came before it in the export (stream order puts a
    base before the values built on it)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str, str], tuple[Any, str, bytes]] = {}

    def whole(self, ev: archive.ArchivedEvent, record: dict[str, Any]) -> None:
        """Replace the deltas among a checkpoint record's blobs by the values they stand
        for, where the base is at hand (left as stored, and said why, where not)."""
        if ev.kind != _keys.KIND_CHECKPOINT:
            return
        for blob in record.get("blobs") or []:
            value, key = blob.get("value"), (ev.thread_id, ev.checkpoint_ns, blob["channel"])
            if value is None:
                continue
            typed = (value["type"], value["data"])
            if _delta.is_delta(typed):
                where = f"checkpoint {ev.checkpoint_id}, channel {blob['channel']!r}"
                d = _delta.parse(typed, where)
                base = self._last.get(key)
                if base is None or (base[0], base[1]) != (d.base_version, d.base_source):
                    blob["delta_of"] = {"version": d.base_version,
                                        "checkpoint_id": d.base_source, "bytes": d.size}
                    continue  # its base is not in this export: rendered as stored
                typed = (d.type, _delta.apply(d, base[2], where))
                blob["value"] = {"type": typed[0], "data": typed[1]}
            self._last[key] = (blob["version"], ev.checkpoint_id or "", typed[1])


def event_doc(ev: archive.ArchivedEvent, serde: SerializerProtocol,
              deltas: Deltas | None = None) -> dict[str, Any]:
    """The JSON object of one event (stable keys)."""
    record: Any = None
    error = ev.detail
    if ev.state in READABLE:
        try:
            decoded = ev.record()
            if decoded is not None and deltas is not None:
                deltas.whole(ev, decoded)
            record = None if decoded is None else _render(decoded, serde)
        except errors.CorruptRecordError as e:
            error = str(e)
    metadata: Any = None
    if ev.metadata_json is not None:
        try:
            metadata = json.loads(ev.metadata_json)
        except ValueError:
            error = error or "metadata_json is not JSON"
    return {
        "sequence_number": ev.sequence_number,
        "event_id": ev.event_id,
        "event_name": ev.event_name,
        "approximate_creation_time": iso_ms(ev.approximate_creation_ms),
        "thread_id": ev.thread_id,
        "checkpoint_ns": ev.checkpoint_ns,
        "checkpoint_id": ev.checkpoint_id,
        "kind": ev.kind,
        "task_id": ev.task_id,
        "pk": ev.pk,
        "sk": ev.sk,
        "written_at": iso_ms(ev.written_at_ms),
        "expires_at": ev.expires_at,
        "run_id": ev.run_id,
        "source": ev.source,
        "step": ev.step,
        "fingerprint": ev.fingerprint,
        "codec": ev.codec,
        "key_id": ev.key_id,
        "state": ev.state,
        "body_bytes": None if ev.body is None else len(ev.body),
        "body_ref": ev.body_ref,
        "metadata": metadata,
        "record": record,
        "error": error,
        "file": ev.file,
        "position": ev.position,
    }


# -- one event as an archive_event record in clear (pure) -----------------------------------


def extract_record(ev: archive.ArchivedEvent) -> dict[str, Any]:
    body: Any = None
    if ev.state in READABLE:
        body = ev.body
    elif ev.body_ref is not None and ev.state not in SEALED:
        body = ev.body_ref  # the table item is gone or differs: keep the reference
    return {
        "thread_id": ev.thread_id,
        "checkpoint_ns": ev.checkpoint_ns,
        "checkpoint_id": ev.checkpoint_id,
        "kind": ev.kind,
        "task_id": ev.task_id,
        "pk": ev.pk,
        "sk": ev.sk,
        "event_name": ev.event_name,
        "sequence_number": ev.sequence_number,
        "event_id": ev.event_id,
        "approximate_creation_time": ev.approximate_creation_ms,
        "written_at": ev.written_at_ms,
        "fingerprint": ev.fingerprint,
        "codec": ev.codec,
        "body": body,
        "run_id": ev.run_id,
        "source": ev.source,
        "step": ev.step,
        "metadata_json": None if ev.state in SEALED else ev.metadata_json,
        "key_id": ev.key_id if ev.state in SEALED else None,
        "metadata_sealed": None,
        "expires_at": ev.expires_at,
    }


def journal_schemas() -> dict[str, Any]:
    """fingerprint -> writer schema of every journal record schema this package knows: an
    extract's bodies were written with some of them (the file header comes first)."""
    return {fp: info.raw for fp, info in sorted(schemas.registry().items())
            if info.record != RECORD_ARCHIVE}


# -- the export -----------------------------------------------------------------------------


@dataclass
class Stats:
    events: int = 0
    states: Counter[str] = field(default_factory=Counter)
    damaged: list[ArchiveDamage] = field(default_factory=list)

    def count(self, events: Iterable[archive.ArchivedEvent]) -> Iterator[archive.ArchivedEvent]:
        for ev in events:
            self.events += 1
            self.states[ev.state] += 1
            yield ev


def write_jsonl(events: Iterable[archive.ArchivedEvent], out: IO[str],
                serde: SerializerProtocol) -> None:
    deltas = Deltas()
    for ev in events:
        out.write(json.dumps(event_doc(ev, serde, deltas), ensure_ascii=False) + "\n")


def write_avro(events: Iterable[archive.ArchivedEvent], out: IO[bytes], *,
               source: str) -> None:
    # Here, not with the module: the command line imports this module on the agent's
    # install, which has no fastavro; `export` itself requires the [audit] extra first.
    import fastavro

    fastavro.writer(
        out,
        schemas.current(RECORD_ARCHIVE).parsed,
        (extract_record(ev) for ev in events),
        codec=AVRO_CODEC,
        metadata={
            SCHEMAS_METADATA_KEY: json.dumps(journal_schemas(), sort_keys=True),
            EXPORT_METADATA_KEY: source,
        },
        strict=True,
    )


def export(
    s3: S3Client, dynamodb: DynamoDBClient, *, bucket: str, table: str, fmt: str,
    out: IO[Any], serde: SerializerProtocol, thread_id: str | None = None,
    since_ms: int | None = None, until_ms: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Stats:
    """Write the archive's events to ``out`` (text for jsonl, bytes for avro).

    Raises:
        NotFoundError: ``thread_id`` has no event in the archive (in the range); nothing
            was written.
        JournalError: S3 or DynamoDB refused.
    """
    stats = Stats()
    events = stats.count(archive.iter_archive(
        s3, bucket, dynamodb=dynamodb, table=table, thread_id=thread_id,
        since_ms=since_ms, until_ms=until_ms, damaged=stats.damaged, progress=progress,
    ))
    first = next(events, None)
    if first is None and thread_id is not None:
        raise NotFoundError(f"thread {thread_id!r} has no event in s3://{bucket}/archive/"
                            + _range_text(since_ms, until_ms))
    everything = events if first is None else itertools.chain([first], events)
    if fmt == "avro":
        write_avro(everything, out, source=f"s3://{bucket}/archive/")
    else:
        write_jsonl(everything, out, serde)
    return stats


def _range_text(since_ms: int | None, until_ms: int | None) -> str:
    if since_ms is None and until_ms is None:
        return ""
    return (f" entered between {iso_ms(since_ms) or 'the beginning'} and "
            f"{iso_ms(until_ms) or 'now'}")


# -- the command ----------------------------------------------------------------------------


def run(args: argparse.Namespace, err: Callable[[str], None]) -> int:
    """``checkpoint-journal export``: 0 once written (``err`` prints the damaged files
    skipped, and a summary when writing to a file). Errors are raised for ``main``'s exit
    statuses: UsageError (2), NotFoundError (no such thread in the archive, 3), any other
    JournalError (1)."""
    from checkpoint_journal.cli.connect import connect
    from checkpoint_journal.cli.render import Progress

    conn = connect(args, bucket_for="the archive is under its archive/ prefix")
    try:
        if args.since is not None and args.until is not None and args.since >= args.until:
            raise UsageError(f"--since ({iso_ms(args.since)}) must be before --until "
                             f"({iso_ms(args.until)})")
        if args.format == "avro" and args.output is None and sys.stdout.isatty():
            raise UsageError("refusing to write a binary Avro file to the terminal: pass "
                             "--output PATH (or redirect stdout)")
        progress = Progress(sys.stderr)
        try:
            stats = _write(args, conn, progress)
        finally:
            progress.close()
    finally:
        conn.close()
    for d in stats.damaged:
        where = "" if d.position is None else f" record {d.position}"
        err(f"warning: damaged archive file {d.file}{where}: {d.reason} (skipped)")
    if args.output is not None:
        states = ", ".join(f"{n:,} {state}" for state, n in sorted(stats.states.items()))
        err(f"exported {stats.events:,} event(s) to {args.output}"
            + (f" ({states})" if states else ""))
    return 0


def _write(args: argparse.Namespace, conn: Connection, progress: Callable[[str], None]) -> Stats:
    """The export, to stdout or to ``--output`` (written to ``PATH.partial`` first, and
    renamed only once complete)."""
    assert conn.bucket is not None  # connect(bucket_for=...) made sure

    def report(done: int, total: int) -> None:
        progress(f"reading the archive: {done:,} of {total:,} files")

    partial = None if args.output is None else f"{args.output}.partial"
    try:
        opened: IO[Any]
        if partial is not None:
            opened = (open(partial, "wb") if args.format == "avro"
                      else open(partial, "w", encoding="utf-8"))
        elif args.format == "avro":
            opened = sys.stdout.buffer
        else:
            opened = sys.stdout
        try:
            stats = export(conn.s3, conn.dynamodb, bucket=conn.bucket, table=conn.table,
                           fmt=args.format, out=opened, serde=default_serde(args.allow),
                           thread_id=args.thread, since_ms=args.since, until_ms=args.until,
                           progress=report)
            opened.flush()
        finally:
            if partial is not None:
                opened.close()
        if partial is not None:
            os.replace(partial, args.output)
            partial = None
    except BrokenPipeError:
        raise  # a reader that went away (| head): not a failure
    except OSError as e:
        raise errors.JournalError(f"cannot write the export: {e}") from e
    finally:
        if partial is not None and os.path.exists(partial):
            os.unlink(partial)
    return stats


__all__ = ["event_doc", "export", "extract_record", "parse_when", "run"]
