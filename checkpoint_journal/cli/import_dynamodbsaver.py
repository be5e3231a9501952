"""``checkpoint-journal import-dynamodbsaver``: copy threads from a ``DynamoDBSaver``
(langgraph-checkpoint-aws 1.x) table into the journal, with a progress bar on stderr and
a summary on stdout (``--json``: one JSON document). The work is
``checkpoint_journal.migrate.import_dynamodbsaver``; this module connects, draws and
prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from checkpoint_journal.cli.connect import names
from checkpoint_journal.cli.errors import NotFoundError, UsageError
from checkpoint_journal.migrate import (
    ImportProgress,
    ImportSummary,
    SourceThreadNotFoundError,
    import_dynamodbsaver,
)

# A log (not a terminal) gets a progress line at most this often: a long import shows
# it is alive, a short one prints none.
LINE_EVERY_S = 10.0
# A terminal's bar is redrawn at most ten times a second.
REDRAW_EVERY_S = 0.1
BAR_WIDTH = 24
# Skipped items listed by the text summary; --json lists them all.
SKIPPED_SHOWN = 10


class ProgressBar:
    """Import progress on ``stream`` (stderr): a bar redrawn in place on a terminal,
    plain lines every ``LINE_EVERY_S`` seconds otherwise (none for a quick import).
    ``close`` erases the bar."""

    def __init__(self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic,
                 line_every: float = LINE_EVERY_S) -> None:
        isatty = getattr(stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.stream = stream
        self.clock = clock
        self.every = REDRAW_EVERY_S if self.tty else line_every
        self.last = clock()
        self.drawn = False

    @staticmethod
    def text(p: ImportProgress) -> str:
        return (f"{p.threads_done}/{p.threads_total} threads · thread {p.thread_id!r} "
                f"{p.checkpoints_done}/{p.checkpoints_total} checkpoints · "
                f"{p.checkpoints_copied} copied")

    def __call__(self, p: ImportProgress) -> None:
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        if not self.tty:
            self.stream.write(f"checkpoint-journal: importing: {self.text(p)}\n")
            self.stream.flush()
            return
        part = p.checkpoints_done / p.checkpoints_total if p.checkpoints_total else 1.0
        share = (p.threads_done + part) / p.threads_total if p.threads_total else 1.0
        filled = int(share * BAR_WIDTH)
        bar = "█" * filled + "░" * (BAR_WIDTH - filled)
        self.stream.write(f"\r\x1b[K{bar} {share:4.0%} {self.text(p)}")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


def summary_text(s: ImportSummary) -> list[str]:
    lines = [
        f"imported {s.threads} thread(s) from DynamoDBSaver table {s.source_table!r} into "
        f"{s.target_table!r} in {s.seconds:.1f} s",
        f"  checkpoints  {s.checkpoints_copied:>6} copied, {s.checkpoints_present} already there",
        f"  writes       {s.writes_copied:>6} copied, {s.writes_present} already there",
        f"  S3 objects   {s.s3_objects_read:>6} read from the DynamoDBSaver bucket",
    ]
    if s.skipped:
        lines.append(f"  skipped      {len(s.skipped):>6} item(s) whose payload is missing "
                     "(a DynamoDBSaver write that crashed half-way; DynamoDBSaver does not "
                     "show them either):")
        lines += [f"      {key}" for key in s.skipped[:SKIPPED_SHOWN]]
        if len(s.skipped) > SKIPPED_SHOWN:
            lines.append(f"      ... and {len(s.skipped) - SKIPPED_SHOWN} more (--json lists "
                         "them all)")
    return lines


def _s3_endpoint(endpoint_url: str | None) -> str | None:
    """S3's endpoint when --endpoint-url (DynamoDB's) is given: boto3's variables
    (``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL``), as the other commands resolve
    it; without them S3 follows --endpoint-url (one emulator serving both)."""
    if not endpoint_url:
        return None
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def run(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    from checkpoint_journal._core import aws
    from checkpoint_journal._core.serde import StrictSerializer, parse_allow
    from checkpoint_journal.saver import JournalSaver

    table, bucket = names(args)
    if args.source_table == table:
        raise UsageError(f"--source-table and the journal table are both {table!r}: name the "
                         "DynamoDBSaver's table with --source-table and the journal's with "
                         "--table (or $CHECKPOINT_JOURNAL_TABLE)")
    try:
        allow = parse_allow(args.allow)
    except ValueError as e:
        raise UsageError(str(e)) from e
    s3_endpoint = _s3_endpoint(args.endpoint_url)
    # One session for the journal's clients and the source's: it loads botocore's
    # service models once. --profile (else AWS_PROFILE) as the other commands take it.
    session = aws.new_session(getattr(args, "profile", None), terms=aws.COMMAND_LINE)
    saver = JournalSaver(table, bucket=bucket, endpoint_url=args.endpoint_url,
                         s3_endpoint_url=s3_endpoint, region_name=args.region,
                         serde=StrictSerializer(allow), boto3_session=session)
    bar = ProgressBar(sys.stderr)
    try:
        summary = import_dynamodbsaver(
            saver, args.source_table, threads=None if args.all else args.thread,
            source_bucket=args.source_bucket, source_key_prefix=args.source_key_prefix,
            allow=allow, endpoint_url=args.endpoint_url, s3_endpoint_url=s3_endpoint,
            region_name=args.region, boto3_session=session, progress=bar,
            concurrency=args.concurrency)
    except SourceThreadNotFoundError as e:
        raise NotFoundError(str(e)) from e
    finally:
        bar.close()
        saver.close()
    if args.json:
        out(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False))
    else:
        for line in summary_text(summary):
            out(line)
    return 0
