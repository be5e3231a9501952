"""The ``checkpoint-journal`` command.

    checkpoint-journal local   [--backend moto|dynamodb-local]
    checkpoint-journal demo    [--backend moto|dynamodb-local]
    checkpoint-journal rebuild (--thread ID ... | --all) [--table T] [--bucket B]

Each subcommand is one ``_add_<name>(subparsers)`` function that declares its arguments
and help (with an example) and sets ``func`` to a ``_cmd_<name>(args) -> int``; new
subcommands (threads, history, show, verify, export, rebuild) go in the same way and are
listed in ``_SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import functools
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from checkpoint_journal import __version__

_BACKENDS = ("moto", "dynamodb-local")

# print() to a pipe is block-buffered; a second process (or a test) reading our stdout
# must see each line as soon as it is printed.
out = functools.partial(print, flush=True)


def _err(message: str) -> None:
    print(f"checkpoint-journal: {message}", file=sys.stderr, flush=True)


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
    p.set_defaults(func=_cmd_local)


class _Stop(BaseException):
    """Ctrl-C (SIGINT) or SIGTERM asks ``local`` to stop. A BaseException, like
    KeyboardInterrupt, so that no ``except Exception`` on the way swallows it."""


@contextmanager
def _signals(handler: Any) -> Iterator[None]:
    """SIGINT and SIGTERM handled by ``handler`` inside the block, restored after."""
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        # A shell starts background jobs with SIGINT ignored so that Ctrl-C reaches only
        # the foreground job; keep it that way (SIGTERM still stops them).
        if sig == signal.SIGINT and signal.getsignal(sig) == signal.SIG_IGN:
            continue
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _wait_for_signal() -> None:
    """Block until a signal handler raises (``_Stop``)."""
    while True:
        if hasattr(signal, "pause"):
            signal.pause()
        else:  # Windows has no pause(); sleep wakes up on Ctrl-C there too
            time.sleep(3600)


def _print_deployment(dep: Any) -> None:
    from checkpoint_journal.local import MOTO_ITEM_BYTES

    out(f"checkpoint-journal local ({dep.backend}) is running on 127.0.0.1")
    out(f"  DynamoDB endpoint: {dep.endpoint_url}")
    out(f"  S3 endpoint:       {dep.s3_endpoint_url}")
    out(f"  table:             {dep.table_name}")
    out(f"  bucket:            {dep.bucket}")
    out("")
    out("In a second terminal:")
    for name, value in dep.env().items():
        out(f"export {name}={shlex.quote(value)}")
    out("")
    if dep.backend == "moto":
        # moto counts Binary attributes by their base64 length (see LocalDeployment).
        out(f"On the moto backend, pass max_item_bytes={MOTO_ITEM_BYTES} to JournalSaver "
            "if records may approach 300 KB.")
    out("Press Ctrl-C to stop.")


def _cmd_local(args: argparse.Namespace) -> int:
    from checkpoint_journal.local import LocalDeployment

    dep = LocalDeployment(backend=args.backend)
    try:
        with _signals(_raise_stop):
            dep.start()  # stops what it started if interrupted or failing
            _print_deployment(dep)
            _wait_for_signal()
    except _Stop:
        out("Stopping ...")
    except Exception as e:  # startup failures: Java missing, port trouble, ...
        _err(f"could not run the local deployment: {type(e).__name__}: {e}")
        return 1
    finally:
        # A second Ctrl-C must not interrupt the shutdown half-way.
        with _signals(signal.SIG_IGN):
            dep.stop()
    out("Stopped.")
    return 0


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
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from checkpoint_journal.demo import run_demo

    try:
        result = run_demo(backend=args.backend, out=out)
    except KeyboardInterrupt:
        _err("demo interrupted")
        return 130
    except Exception as e:
        _err(f"demo failed: {type(e).__name__}: {e}")
        return 1
    failed = _demo_failures(result)
    if failed:
        _err("demo ran but did not show what it should: " + "; ".join(failed))
        return 1
    return 0


def _demo_failures(result: Any) -> list[str]:
    checks = {
        "no interrupt was seen and resumed": result.interrupt_seen and result.interrupt_resumed,
        "the crash was not resumed without re-running finished nodes":
            result.crash_resumed_without_rerun,
        "the fork did not change the outcome": result.fork_changed_outcome,
    }
    return [msg for msg, ok in checks.items() if not ok]


# -- rebuild ----------------------------------------------------------------------------------


_REBUILD_EPILOG = """\
example:
  export CHECKPOINT_JOURNAL_TABLE=my-table CHECKPOINT_JOURNAL_BUCKET=my-bucket
  checkpoint-journal rebuild --thread customer-42
  checkpoint-journal rebuild --all          # every thread (scans the table)

Run it with credentials that may do what the projector does (its role, or an operator's):
write view, head and index items, and put and delete objects under blobs/. Endpoints come
from boto3's usual settings (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_S3, AWS_REGION).
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
    p.set_defaults(func=_cmd_rebuild)


def _cmd_rebuild(args: argparse.Namespace) -> int:
    import os

    from checkpoint_journal.errors import JournalError
    from checkpoint_journal.stream_handlers.projector import make_projector

    table = args.table or os.environ.get("CHECKPOINT_JOURNAL_TABLE")
    if not table:
        _err("no table: pass --table or set CHECKPOINT_JOURNAL_TABLE")
        return 2
    env = dict(os.environ)
    env["TABLE_NAME"] = table
    env["BUCKET_NAME"] = args.bucket or os.environ.get("CHECKPOINT_JOURNAL_BUCKET", "")
    projector = make_projector(env)
    try:
        threads = list(projector.threads()) if args.all else list(args.thread)
        for thread in threads:
            stats = projector.rebuild_thread(thread)
            out(f"{thread}: {stats.namespaces} namespace(s), {stats.views_written} view(s), "
                f"{stats.index_items} index item(s), {stats.blobs_offloaded} blob(s) written")
    except (JournalError, OSError, RuntimeError) as e:
        _err(f"rebuild failed: {e}")
        return 1
    except Exception as e:  # botocore errors: say which, not a traceback
        _err(f"rebuild failed: {type(e).__name__}: {e}")
        return 1
    finally:
        projector.close()
    out(f"rebuilt {len(threads)} thread(s)")
    return 0


# -- entry point ------------------------------------------------------------------------------


_SUBCOMMANDS: list[Callable[[Any], None]] = [_add_local, _add_demo, _add_rebuild]


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


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse errors exit with 2)."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
