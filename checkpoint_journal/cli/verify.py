"""``checkpoint-journal verify``: is the journal, and its archive, as the savers wrote it?

Checks, per thread (``_core/chain.py`` defines the hashes; ``verify_table`` and
``verify_archive`` hold the checks):

Table
  - every checkpoint, writes, blobs event and removal marker: it decodes, it sits under
    the key its content names (thread, namespace, checkpoint), and its ``content_hash``
    recomputes (under the chain key when the journal is keyed);
  - every checkpoint's ``chain_hash`` follows from its parent's: the parent found in the
    table, or listed by a removal marker of a ``prune``/``delete_for_runs``;
  - a checkpoint named as a parent, or by a writes event, that is in neither is
    *removed*; a removal marker listing a checkpoint that is still there is a prune
    that did not finish (a note, not a problem);
  - every projector view agrees with the journal: the same chain hash, checkpoint and
    metadata, and every channel value equal to the journal's (an offloaded value by its
    SHA-256, which names the S3 object).

Archive (when a bucket is given)
  - every file reads, every record decrypts (its AES-GCM tag authenticates it) and its
    event's ``content_hash`` recomputes;
  - every archived checkpoint still in the table has the same hashes there; one that is
    not is explained by a removal marker or a tombstone (``delete_thread``), or it was
    *removed from the table*; a checkpoint the table holds that the archive lacks,
    although newer files exist, was *removed from the archive* (or never archived).

Items hidden by a tombstone (a ``delete_thread`` in progress) and events of erased
threads (their archive key destroyed) are counted, not checked: they are gone by design.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checkpoint_journal._core import chain as _chain
from checkpoint_journal._core import extras
from checkpoint_journal._core import keys as _keys
from checkpoint_journal._core.blobs import BlobStore, unpack
from checkpoint_journal._core.chain import Hasher
from checkpoint_journal._core.store import DynamoJournalStore, thread_ids
from checkpoint_journal.cli.errors import NotFoundError, UsageError
from checkpoint_journal.cli.render import Outcome
from checkpoint_journal.cli.verify_table import (
    BLOB_DAMAGED,
    BLOB_MISSING,
    EXIT_STATUS,
    UNREADABLE,
    Report,
    ThreadState,
    check_thread,
)
from checkpoint_journal.errors import CorruptRecordError, JournalError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

    from checkpoint_journal._core.archive import ArchiveDamage
    from checkpoint_journal.cli.connect import Connection

KEY_FILE_ENV = "CHECKPOINT_JOURNAL_CHAIN_KEY_FILE"
KEY_SECRET_ENV = "CHECKPOINT_JOURNAL_CHAIN_KEY_SECRET"


# -- reading ---------------------------------------------------------------------------


def verify(
    dynamodb: DynamoDBClient, table: str, *, hasher: Hasher, thread_id: str | None = None,
    s3: S3Client | None = None, bucket: str | None = None, blob_bucket: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Check the table (one thread, or all), with ``blob_bucket`` every S3 object its
    views point to, and with ``bucket`` the archive. Raises NotFoundError when
    ``thread_id`` is in neither."""
    report = Report(hasher.key_id)
    tick = progress or (lambda message: None)
    # Threads from the table itself (a keys-only Scan), not from the projector's
    # ThreadIndex, which whoever could edit the table could edit too.
    ids = [thread_id] if thread_id is not None else list(thread_ids(dynamodb, table))
    states: dict[str, ThreadState] = {}
    present: set[str] = set()
    # Items as stored: verify reports damage rather than stopping at it.
    store = DynamoJournalStore(dynamodb, table, check_seals=False)
    try:
        for n, tid in enumerate(ids):
            tick(f"verifying the table: thread {n + 1:,} of {len(ids):,}")
            pk = _keys.thread_pk(tid)
            items = [i for page in store.pages(pk, prefix="") for i in page]
            if not items:
                continue
            present.add(tid)
            try:
                states[tid] = check_thread(report, hasher, tid, items)
            except (JournalError, KeyError, ValueError, TypeError) as e:
                # Whatever an item holds, the report goes on to the next thread.
                report.add(UNREADABLE, "table", tid, None, None, pk,
                           f"verify could not finish checking this thread: "
                           f"{type(e).__name__}: {e}")
    finally:
        store.close()
    if s3 is not None and blob_bucket:
        check_blobs(report, BlobStore(s3, blob_bucket), states, tick)
    archived = 0
    if s3 is not None and bucket:
        # The archive check alone needs the [audit] extra (fastavro reads the container
        # files, cryptography opens sealed content): imported here, so that the table
        # check runs on the agent's install.
        extras.require("audit", "checking the audit archive (skip it with --no-archive)")
        from checkpoint_journal._core import archive_read as archive
        from checkpoint_journal.cli.verify_archive import check_archive

        damaged: list[ArchiveDamage] = []
        events = archive.iter_archive(
            s3, bucket, dynamodb=dynamodb, table=table, thread_id=thread_id, damaged=damaged,
            progress=lambda done, total: tick(f"verifying the archive: file {done:,} of {total:,}"),
        )
        check_archive(report, hasher, events, damaged, states, bucket=bucket,
                      thread_filter=thread_id)
        archived = report.counts["archive events"]
    if thread_id is not None and not present and not archived:
        raise NotFoundError(f"thread {thread_id!r} is neither in the table nor in the archive")
    return report


def check_blobs(report: Report, blobs: BlobStore, states: dict[str, ThreadState],
                tick: Callable[[str], None]) -> None:
    """Read every S3 object an intact view points to, once, and check it against the
    digest the view holds (what a read of that view would get)."""
    refs = {key: (tid, entry) for tid, state in states.items()
            for key, entry in state.blobs.items()}
    for n, (key, (tid, (ref, loc, ns, cid))) in enumerate(sorted(refs.items())):
        tick(f"verifying offloaded values: {n + 1:,} of {len(refs):,}")
        where = f"s3://{blobs.bucket}/{key} (pointed to by {loc})"
        try:
            body = blobs.get(key, "verify an offloaded value")
            if body is None:
                report.add(BLOB_MISSING, "bucket", tid, ns, cid, where,
                           "the object is gone; reads of this view answer from the journal "
                           "while it holds the value, then raise")
                continue
            unpack(body, ref.codec, ref.digest, ref.type)
        except CorruptRecordError as e:
            report.add(BLOB_DAMAGED, "bucket", tid, ns, cid, where,
                       f"{e}; reads of this view answer from the journal while it holds the "
                       "value, then raise. `checkpoint-journal rebuild --thread` rewrites it")
            continue
        except JournalError as e:
            report.add(UNREADABLE, "bucket", tid, ns, cid, where, f"cannot read it: {e}")
            continue
        report.counts["offloaded values intact (bucket)"] += 1


# -- output ----------------------------------------------------------------------------


def text(report: Report, style: Any, archive: bool) -> list[str]:
    """The human rendering: what was checked, then every problem, then notes."""
    lines = []
    keyed = (f"chain key {report.key_id} (HMAC-SHA-256: a forger without the key is detected)"
             if report.key_id else
             "no chain key (plain SHA-256: alteration and removal are detected; an insertion "
             "with recomputed hashes is not)")
    lines.append(f"{style.bold('verified')} {len(report.threads):,} thread(s) in the table"
                 + ("" if archive else ", archive not checked (--no-archive or no bucket)")
                 + f"; {keyed}")
    for what, n in sorted(report.counts.items()):
        if n:
            lines.append(f"  {n:>8,}  {what}")
    if report.ok:
        lines.append(style.green("intact: every seal holds, every hash recomputes and every "
                                 "chain links"))
        if report.pending:
            lines.append(style.yellow(
                f"pending: {report.pending:,} checkpoint(s) are not archived yet (the "
                "archiver has not caught up: not a problem; run verify again later to "
                "check them against the archive)"))
    else:
        lines.append(style.red(f"{len(report.findings)} problem(s):"))
        for f in report.findings:
            where = f.thread_id + (f" [{f.checkpoint_ns}]" if f.checkpoint_ns else "")
            lines.append(f"  {style.red(f.problem)} in the {f.where}: thread {where}"
                         + (f", checkpoint {f.checkpoint_id}" if f.checkpoint_id else ""))
            lines.append(f"      at {f.location}")
            lines.append(f"      {f.detail}")
    for note in report.notes:
        lines.append(style.yellow("note: ") + note)
    return lines


# -- the command -------------------------------------------------------------------------


def _chain_key_source(args: argparse.Namespace) -> tuple[str, str] | None:
    """Where the chain key comes from: ("file", path) or ("secret", arn); flags first,
    then $CHECKPOINT_JOURNAL_CHAIN_KEY_FILE, then $CHECKPOINT_JOURNAL_CHAIN_KEY_SECRET."""
    import os

    for kind, value in (
        ("file", args.chain_key_file), ("secret", args.chain_key_secret),
        ("file", os.environ.get(KEY_FILE_ENV)), ("secret", os.environ.get(KEY_SECRET_ENV)),
    ):
        if value:
            return kind, value
    return None


def _chain_key(read: Callable[[], bytes]) -> bytes | None:
    """The chain key ``read`` gives, checked; a key that cannot be read or used is a
    usage error."""
    try:
        return _chain.key_bytes(read())
    except (OSError, ValueError) as e:
        raise UsageError(f"chain key: {e}") from None


def command(args: argparse.Namespace) -> Callable[[Connection, Callable[[str], None]], Outcome]:
    """``checkpoint-journal verify``: what runs once connected. A chain key file is read
    at once, so that a bad one is a usage error found before connecting to anything (its
    final newline is not part of the key: ``openssl rand -hex 32 > chain.key``)."""
    source = _chain_key_source(args)
    key = None
    if source is not None and source[0] == "file":
        key = _chain_key(lambda: Path(source[1]).read_bytes().rstrip(b"\r\n"))

    def run(conn: Connection, progress: Callable[[str], None]) -> Outcome:
        secret = key
        if source is not None and source[0] == "secret":
            secret = _chain_key(
                lambda: conn.secret(source[1]).encode())
        archive = conn.bucket is not None and not args.no_archive
        report = verify(
            conn.dynamodb, conn.table, hasher=Hasher(secret), thread_id=args.thread,
            s3=conn.s3, bucket=conn.bucket if archive else None, blob_bucket=conn.bucket,
            progress=progress,
        )
        return Outcome({**report.doc(), "archive_checked": archive},
                       lambda style, width: text(report, style, archive),
                       EXIT_STATUS[report.outcome])

    return run
