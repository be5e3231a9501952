"""The ``checkpoint-journal`` command line: every subcommand's arguments, help and epilog.

    checkpoint-journal local   [--backend moto|dynamodb-local]
    checkpoint-journal demo    [--backend moto|dynamodb-local]
    checkpoint-journal rebuild (--thread ID ... | --all) [--table T] [--bucket B]
                               [--endpoint-url URL] [--region R] [--profile P]
    checkpoint-journal threads [--limit N]                  [connection] [--json]
    checkpoint-journal history THREAD [--ns NS] [--limit N] [connection] [--json]
    checkpoint-journal show    THREAD [CHECKPOINT] [--ns NS] [connection] [--json]
    checkpoint-journal diff    THREAD A B [--ns NS]         [connection] [--json]
    checkpoint-journal verify  [--thread T] [--chain-key-secret ARN | --chain-key-file PATH]
                               [--no-archive] [connection] [--json]
    checkpoint-journal export  [--thread T] [--since WHEN] [--until WHEN]
                               [--format jsonl|avro] [--output PATH] [connection]
    checkpoint-journal import-dynamodbsaver --source-table NAME [--source-bucket NAME]
                               (--thread ID ... | --all) [connection] [--json]

    connection: [--table T] [--bucket B] [--endpoint-url URL] [--region R] [--profile P]

Each subcommand is one ``_add_<name>(subparsers)`` function that declares its arguments
and help (with an example), listed in ``_SUBCOMMANDS``; ``args.command`` names the
subcommand, and ``main`` runs it. Nothing here does I/O or imports more than argparse
needs, so that ``--help`` is quick.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from checkpoint_journal import __version__

_BACKENDS = ("moto", "dynamodb-local")


def _add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=_BACKENDS,
        default="moto",
        help="moto (default): an in-process moto server for DynamoDB and S3; "
        "dynamodb-local: AWS's DynamoDB Local (Java) for the table, moto for S3",
    )


# -- local ---------------------------------------------------------------------------------


_LOCAL_EPILOG = """\
example:
  checkpoint-journal local
  # then, in a second terminal, paste the printed export lines and run your agent:
  python -c 'import os; from checkpoint_journal import JournalSaver; \\
JournalSaver(os.environ["CHECKPOINT_JOURNAL_TABLE"]).check()'

Stop with Ctrl-C (or SIGTERM); the table and bucket live in memory and are gone after.
"""


def _add_local(sub: Any) -> None:
    p = sub.add_parser(
        "local",
        help="run the local deployment (DynamoDB + S3 on 127.0.0.1) in the foreground",
        description="Start the stack of template.yaml on 127.0.0.1 (a moto server, or\n"
        "DynamoDB Local plus moto), print its endpoints and the export lines that point\n"
        "a second terminal at it, and keep it running until Ctrl-C or SIGTERM.",
        epilog=_LOCAL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_backend(p)


# -- demo ----------------------------------------------------------------------------------


_DEMO_EPILOG = """\
example:
  checkpoint-journal demo
  checkpoint-journal demo --backend dynamodb-local

It runs a customer-support agent (no LLM, no network) on a fresh embedded deployment:
a multi-turn conversation, a human-approval interrupt, a crash resumed by a fresh
process, a fork from an earlier checkpoint, and what the journal stored.
"""


def _add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the customer-support agent demo on the embedded local deployment",
        description="Run a deterministic customer-support agent on JournalSaver and\n"
        "narrate what the checkpointer does: memory across turns, interrupts, crash\n"
        "recovery, time travel and storage.",
        epilog=_DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_backend(p)


# -- rebuild ----------------------------------------------------------------------------------


_REBUILD_EPILOG = """\
example:
  export CHECKPOINT_JOURNAL_TABLE=my-table CHECKPOINT_JOURNAL_BUCKET=my-bucket
  checkpoint-journal rebuild --thread customer-42
  checkpoint-journal rebuild --all          # every thread (scans the table)

Run it with credentials that may do what the projector does (its role, or an operator's):
write view, head and index items, and put and delete objects under blobs/. Region,
profile and endpoints resolve as the AWS CLI's: --region, else $AWS_REGION,
$AWS_DEFAULT_REGION, the profile's; --profile, else $AWS_PROFILE; --endpoint-url, else
$AWS_ENDPOINT_URL_DYNAMODB, $AWS_ENDPOINT_URL (S3: $AWS_ENDPOINT_URL_S3).
"""


def _add_rebuild(sub: Any) -> None:
    p = sub.add_parser(
        "rebuild",
        help="replay threads' journals into a fresh view (after a failed batch, or to "
        "check the view)",
        description="Drop the view, head and index items of the given threads and fold\n"
        "their journals again, exactly as the projector does. The journal is not touched.",
        epilog=_REBUILD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--thread", action="append", metavar="ID", help="a thread id (repeatable)")
    which.add_argument("--all", action="store_true", help="every thread in the table")
    p.add_argument("--table", help="the journal table (default: $CHECKPOINT_JOURNAL_TABLE)")
    p.add_argument("--bucket", help="the blob bucket (default: $CHECKPOINT_JOURNAL_BUCKET)")
    _add_aws(p)


# -- browsing: threads, history, show, diff -----------------------------------------------------


_BROWSE_NOTES = """
Connection: --table and --bucket default to $CHECKPOINT_JOURNAL_TABLE and
$CHECKPOINT_JOURNAL_BUCKET; region, credentials and endpoints resolve as the AWS CLI's
(--region, else $AWS_REGION, $AWS_DEFAULT_REGION, the profile's; --profile, else
$AWS_PROFILE; --endpoint-url, else $AWS_ENDPOINT_URL_DYNAMODB, $AWS_ENDPOINT_URL), so the
export lines that `checkpoint-journal local` prints are all a second terminal needs.
Reads only: Query on the table and its ThreadIndex, nothing in S3, no Scan.

exit status: 0 ok, 1 AWS or table error, 2 usage error, 3 thread or checkpoint not found
"""


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


def _add_aws(p: Any) -> None:
    """--endpoint-url, --region and --profile, resolved as the AWS CLI resolves them
    (``connect``): the flag, then the environment, then the profile."""
    p.add_argument("--endpoint-url", metavar="URL",
                   help="the DynamoDB endpoint (default: $AWS_ENDPOINT_URL_DYNAMODB, else "
                   "$AWS_ENDPOINT_URL, else the profile's; none for AWS itself)")
    p.add_argument("--region", help="the AWS region (default: $AWS_REGION, else "
                   "$AWS_DEFAULT_REGION, else the profile's)")
    p.add_argument("--profile", metavar="NAME",
                   help="the AWS profile for credentials and region, as in the AWS CLI "
                   "(default: $AWS_PROFILE, else the default profile)")


def _add_connection(p: Any, *, table: str, bucket: str) -> None:
    """The connection flags (see ``connect``), with what the table and bucket are for."""
    conn = p.add_argument_group("connection")
    conn.add_argument("--table", help=f"{table} (default: $CHECKPOINT_JOURNAL_TABLE)")
    conn.add_argument("--bucket", help=bucket)
    _add_aws(conn)
    p.add_argument("--allow", action="append", default=[], metavar="MODULE.NAME",
                   help="rebuild stored values of this type of yours too (repeatable); by "
                   "default only LangGraph's and langchain-core's own types are rebuilt, and "
                   "a value naming any other type is shown as not readable")


def _add_browse_parser(
    sub: Any, name: str, help: str, description: str, epilog: str,
    bucket: str = "the blob bucket, to print offloaded values' s3:// URIs "
    "(default: $CHECKPOINT_JOURNAL_BUCKET)",
) -> Any:
    p = sub.add_parser(
        name, help=help, description=description, epilog=epilog + _BROWSE_NOTES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_connection(p, table="the journal table", bucket=bucket)
    p.add_argument("--json", action="store_true",
                   help="print one JSON document on stdout (stable keys), for scripts")
    return p


def _add_ns(p: Any) -> None:
    p.add_argument("--ns", default="", metavar="NS",
                   help="checkpoint namespace: '' (default) is the graph itself, a subgraph's "
                   "is like 'node:task-id' (see `threads --json`)")


def _add_threads(sub: Any) -> None:
    p = _add_browse_parser(
        sub, "threads",
        help="list threads by last activity, newest first, with their checkpoint counts",
        description="List threads, most recently active first: checkpoints and namespaces\n"
        "of each, the step of its latest checkpoint, and that checkpoint's id.",
        epilog="""\
example:
  checkpoint-journal threads --limit 20
  checkpoint-journal threads --json | jq -r '.threads[].thread_id'

The order comes from the projector's ThreadIndex (eventually consistent: a thread first
written a second ago may not be listed yet); the counts are read from each thread.
""")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="at most N threads")


def _add_history(sub: Any) -> None:
    p = _add_browse_parser(
        sub, "history",
        help="list a thread's checkpoints, newest first",
        description="List the checkpoints of a thread's namespace, newest first: id, step,\n"
        "source, the node(s) whose writes made it, time, bytes stored in the journal and\n"
        "in the projector's view, and the pending writes (and interrupts) saved on it.",
        epilog="""\
example:
  checkpoint-journal history customer-42 --limit 10
  checkpoint-journal history customer-42 --json | jq '.checkpoints[0]'

WRITTEN BY is read from what LangGraph 1.x stores: the tasks that saved results on the
parent checkpoint (their task path names the node); `versions_seen` when no pending
writes were saved (durability="exit"); __input__ for an input checkpoint; update_state
does not record the node it acted as.
""")
    p.add_argument("thread", metavar="THREAD", help="the thread id")
    _add_ns(p)
    p.add_argument("--limit", type=_positive_int, metavar="N", help="the newest N checkpoints")


def _add_show(sub: Any) -> None:
    p = _add_browse_parser(
        sub, "show",
        help="show one checkpoint: state values, metadata, pending writes, interrupts",
        description="Show a checkpoint (the latest if none is given): every channel value,\n"
        "its metadata, the pending writes and interrupts saved on it, and where each value\n"
        "is stored (the journal record that holds it; inline in the view, or the S3 object\n"
        "the projector offloaded it to). Long values are cut to the terminal's width; --json\n"
        "prints them whole. A list of chat messages (LangChain messages or their dict forms)\n"
        "reads as a conversation: each message's role and text, an assistant's tool calls,\n"
        "the tool results, and the pending interrupts with what resuming them takes.",
        epilog="""\
example:
  checkpoint-journal show customer-42
  checkpoint-journal show customer-42 1f0b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d --json

CHECKPOINT is an id from `history`, or a prefix of one that only it has. Values are read
with LangGraph's default JsonPlusSerializer: a value it cannot read (a thread written
with an EncryptedSerializer, say) is reported as such, value by value.
""")
    p.add_argument("thread", metavar="THREAD", help="the thread id")
    p.add_argument("checkpoint", metavar="CHECKPOINT", nargs="?",
                   help="a checkpoint id or unique prefix (default: the latest)")
    _add_ns(p)


def _add_diff(sub: Any) -> None:
    p = _add_browse_parser(
        sub, "diff",
        help="show which channels changed between two checkpoints of a thread",
        description="Compare two checkpoints of a thread's namespace: channels added,\n"
        "removed and changed, and how (items appended to a list, text appended to a string,\n"
        "keys added, removed or changed in a dict, or old -> new). For a list of chat\n"
        "messages: the messages added, changed and removed (matched by id, else by\n"
        "position), shown as turns.",
        epilog="""\
example:
  checkpoint-journal diff customer-42 1f0b2c3d-4e5f-6a7b 1f0b2c3e-0a1b-6c2d
  checkpoint-journal diff customer-42 A B --json | jq '.changes[].channel'
""")
    p.add_argument("thread", metavar="THREAD", help="the thread id")
    p.add_argument("a", metavar="A", help="the earlier checkpoint (id or unique prefix)")
    p.add_argument("b", metavar="B", help="the later checkpoint (id or unique prefix)")
    _add_ns(p)


def _add_verify(sub: Any) -> None:
    p = _add_browse_parser(
        sub, "verify",
        help="prove the journal and its archive intact: hashes, hash chains, table vs archive",
        description="Check that no checkpoint in the table or the archive was altered, removed\n"
        "or inserted after it was written. Every journal event carries a hash of its content,\n"
        "and every checkpoint a chain hash linking it to its parent's, so a thread's history\n"
        "is a hash chain (a tree where it forks). verify recomputes every hash from the table\n"
        "and from the Avro archive, checks every link, compares the two stores, and checks the\n"
        "projector's views against the journal. prune and delete_for_runs leave removal\n"
        "markers, delete_thread tombstones: those removals are reported as such, not as\n"
        "problems. Each problem names the thread, checkpoint and the exact table item or\n"
        "archive file and record.",
        epilog="""\
example:
  checkpoint-journal verify --thread customer-42 --chain-key-secret CHAIN_KEY_SECRET_ARN
  checkpoint-journal verify --chain-key-file chain.key --json | jq '.problems[]'

Problems: damaged (an item fails its seal: altered, or copied from another key),
altered (content does not match its hash), chain-broken (a checkpoint does not link to
its parent's chain), removed (missing without a prune/delete), misplaced (an event under
another checkpoint's key), wrong-key (hashed under another key, or without the
deployment's key: a forgery), view-mismatch, blob-missing and blob-damaged (an S3 object
a view points to; checked whenever a bucket is known, --no-archive included), disagree
(table and archive differ), not-archived, archive-damaged, unreadable. verify always
finishes its report, whatever an item holds.

With a chain key (JournalSaver(chain_key=...); the stack makes one, ChainKeySecretArn,
readable by AgentPolicy and AuditorPolicy) the hashes are HMAC-SHA-256, so an event
forged by someone without the key is detected; without one they are SHA-256, which
detects any change that does not recompute every later hash. Archived events of a thread
erased by delete_thread cannot be read any more (their key is destroyed): they are
counted, not checked.

exit status: 0 ok (intact, and archived as far as checked), 5 pending (intact, but the
archiver has not caught up with the newest checkpoints yet: run again later), 4 damaged
(problems found), 1 AWS or table error, 2 usage error, 3 thread not found
""",
        bucket="the bucket whose archive/ is checked against the table "
        "(default: $CHECKPOINT_JOURNAL_BUCKET; none: the table only)",
    )
    p.add_argument("--thread", metavar="THREAD",
                   help="verify one thread (default: every thread in the table)")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--chain-key-secret", metavar="ARN",
                     help="the Secrets Manager secret holding the chain key (the stack's "
                     "ChainKeySecretArn output; default: $CHECKPOINT_JOURNAL_CHAIN_KEY_SECRET)")
    key.add_argument("--chain-key-file", metavar="PATH",
                     help="a file holding the chain key, e.g. made by `openssl rand -hex "
                     "32` (its final newline is ignored; default: "
                     "$CHECKPOINT_JOURNAL_CHAIN_KEY_FILE). Neither: plain SHA-256")
    p.add_argument("--no-archive", action="store_true",
                   help="do not check the archive (offloaded values in the bucket are "
                   "still checked)")


# -- export -----------------------------------------------------------------------------------


_EXPORT_EPILOG = """\
example:
  checkpoint-journal export --thread customer-42 > customer-42.jsonl
  checkpoint-journal export --since 2026-01-01 --until 2026-01-31 --format avro \\
      --output january.avro

jsonl (default): one JSON object per event, in stream order: its plain fields, its
state, its metadata and its journal record decoded, values read with LangGraph's
JsonPlusSerializer as `show --json` renders them. Events of a thread that delete_thread
erased are listed with state "shredded" and no content. avro: an Avro container file of
archive_event records with their content in clear, for fastavro, Spark or Athena.

WHEN is an ISO date or date-time, UTC unless it names a zone (2026-01-31,
2026-01-31T12:00, 2026-01-31T12:00:00+02:00); it applies to when an event entered the
journal. --since is inclusive, --until exclusive, and a bare --until date includes that
whole day.

Connection: --table, --bucket as for the browsing commands ($CHECKPOINT_JOURNAL_TABLE,
$CHECKPOINT_JOURNAL_BUCKET); --endpoint-url is DynamoDB's, S3 follows boto3's settings
(AWS_ENDPOINT_URL_S3). Reads only: the archive under archive/, the threads' archive keys
and referenced bodies in the table. The stack's AuditorPolicy is enough.

The output holds in clear what the archive seals: keep it as you keep the journal.
Damaged archive files are reported on stderr and skipped.

exit status: 0 ok, 1 AWS or table error, 2 usage error, 3 thread not in the archive
"""


def _when(end: bool) -> Callable[[str], int]:
    """--since / --until: epoch ms (the parser lives with export, imported when used)."""

    def parse(text: str) -> int:
        from checkpoint_journal.cli.export import when_arg

        return when_arg(end)(text)

    return parse


def _add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export the audit archive, decrypted, as JSON lines or an Avro file",
        description="Read the archiver's Avro files (one thread, a time range, or all of\n"
        "them), decrypt each event's content with its thread's archive key, and write\n"
        "them out in stream order.",
        epilog=_EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--thread", metavar="THREAD", help="one thread's events only")
    p.add_argument("--since", metavar="WHEN", type=_when(end=False),
                   help="events that entered the journal at or after WHEN")
    p.add_argument("--until", metavar="WHEN", type=_when(end=True),
                   help="events that entered the journal before WHEN")
    p.add_argument("--format", choices=("jsonl", "avro"), default="jsonl",
                   help="jsonl (default) or avro")
    p.add_argument("--output", metavar="PATH",
                   help="write to PATH (replaced only once complete) instead of stdout")
    _add_connection(p, table="the journal table, which holds the threads' archive keys",
                    bucket="the bucket of the archive (default: $CHECKPOINT_JOURNAL_BUCKET)")


# -- import-dynamodbsaver ---------------------------------------------------------------------


_IMPORT_EPILOG = """\
example:
  export CHECKPOINT_JOURNAL_TABLE=journal-table
  checkpoint-journal import-dynamodbsaver --source-table checkpoints \\
      --source-bucket checkpoints-offload --all
  checkpoint-journal import-dynamodbsaver --source-table checkpoints --thread customer-42 --json

What is kept: every checkpoint of every namespace (subgraphs too) with its id, parent,
metadata and values, and every pending write (interrupts, resume values, errors) with its
task, path and index: get_state_history on the journal shows what it showed on
DynamoDBSaver, and an interrupted thread resumes on JournalSaver. Payloads offloaded to
S3 (350 KB or more) are read from --source-bucket; gzip-compressed ones are read as they
are. The journal is written through JournalSaver.put / put_writes, oldest first.
Values are read with the strict serde: a value of a type of yours stops the import with
an error naming the type; allow it with --allow module.Name (repeatable).

Run it again at any time: it compares what the journal holds (one list per thread) and
copies only what is missing, so an interrupted import finishes by running it again, and a
second run copies nothing. A checkpoint id the journal holds with other content is an
error (exit 1) naming the thread and the checkpoint; nothing is overwritten.

Connection: --table, --bucket as for the other commands; the source table and bucket are
reached at the same --endpoint-url and --region. Needs on the source: dynamodb:Query,
BatchGetItem (and Scan for --all), s3:GetObject; on the journal: the stack's AgentPolicy.

exit status: 0 ok, 1 AWS or table error (a conflict, an unreadable item), 2 usage error,
3 a --thread not in the source table
"""


def _add_import_dynamodbsaver(sub: Any) -> None:
    p = sub.add_parser(
        "import-dynamodbsaver",
        help="copy threads from langgraph-checkpoint-aws's DynamoDBSaver (1.x) into the journal",
        description="Copy threads written by langgraph-checkpoint-aws 1.x DynamoDBSaver (its\n"
        "table, and its S3 offload bucket) into the journal, keeping checkpoint ids, parents,\n"
        "metadata, subgraph namespaces, pending writes and interrupts. Idempotent and\n"
        "resumable: a re-run copies only what is missing.",
        epilog=_IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source-table", required=True, metavar="NAME",
                   help="the DynamoDBSaver table")
    p.add_argument("--source-bucket", metavar="NAME",
                   help="the DynamoDBSaver's S3 offload bucket (s3_offload_config's "
                   "bucket_name); needed when it offloaded payloads")
    p.add_argument("--source-key-prefix", metavar="PREFIX",
                   help="s3_offload_config's key_prefix, if the DynamoDBSaver had one")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--thread", action="append", metavar="ID",
                       help="a thread id to import (repeatable)")
    which.add_argument("--all", action="store_true",
                       help="every thread of the source table (scans it)")
    p.add_argument("--concurrency", type=_positive_int, default=4, metavar="N",
                   help="threads imported at once (default 4; 1 for a table with little "
                   "provisioned capacity)")
    _add_connection(p, table="the journal table to import into",
                    bucket="the journal's blob bucket (default: $CHECKPOINT_JOURNAL_BUCKET)")
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON document on stdout")


# -- entry point ------------------------------------------------------------------------------


_SUBCOMMANDS: list[Callable[[Any], None]] = [
    _add_local, _add_demo, _add_rebuild, _add_threads, _add_history, _add_show, _add_diff,
    _add_verify, _add_export, _add_import_dynamodbsaver,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="checkpoint-journal",
        description="Tools for checkpoint-journal, the event-sourced LangGraph "
        "checkpointer on DynamoDB.",
        epilog="example:\n  checkpoint-journal demo\n  checkpoint-journal local --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser
