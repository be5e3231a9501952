"""The ``checkpoint-journal`` entry point: parse (``parser``), run the subcommand, and
turn what it raised into the exit status, the same way for every command
(:func:`exit_status`).

The reading commands (threads, history, show, diff, verify) connect with
``connect.connect`` and return a ``render.Outcome``, printed as one JSON document
(``--json``) or as lines for people; export streams its output itself; rebuild runs the
projector's own code; local and demo run the embedded deployment.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from checkpoint_journal._core import aws, extras
from checkpoint_journal.cli.errors import NotFoundError, UsageError
from checkpoint_journal.cli.parser import build_parser
from checkpoint_journal.errors import InvalidKeyError, JournalError, MissingExtraError

if TYPE_CHECKING:
    from checkpoint_journal.cli.browse import Journal
    from checkpoint_journal.cli.connect import Connection
    from checkpoint_journal.cli.render import Outcome

Progress = Callable[[str], None]

# print() to a pipe is block-buffered; a second process (or a test) reading our stdout
# must see each line as soon as it is printed.
out = functools.partial(print, flush=True)


def err(message: str) -> None:
    print(f"checkpoint-journal: {message}", file=sys.stderr, flush=True)


# -- exit statuses -----------------------------------------------------------------------

# Most specific first: the first match gives the status.
_STATUS: tuple[tuple[tuple[type[BaseException], ...], int], ...] = (
    ((NotFoundError,), 3),
    ((UsageError, InvalidKeyError), 2),
    ((JournalError,), 1),
)


def exit_status(e: BaseException, say: Callable[[str], None] = err) -> int | None:
    """The exit status of a command that met ``e``, its message said with ``say``: 3 not
    found, 2 usage, 1 a table or AWS error, 130 interrupted, 0 for a reader that went
    away (``| head``); None when ``e`` is none of these (a bug: let it raise)."""
    import os

    if isinstance(e, BrokenPipeError):
        # Point stdout at /dev/null so the interpreter's final flush does not complain.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    if isinstance(e, KeyboardInterrupt):
        say("interrupted")
        return 130
    for kinds, code in _STATUS:
        if isinstance(e, kinds):
            say(str(e))
            cause = e.__cause__
            if cause is not None and aws.is_aws_error(cause) and str(cause) not in str(e):
                say(f"  (AWS: {cause})")  # the service's own words, for a search or a ticket
            return code
    if aws.is_aws_error(e):  # one that escaped translation: still no traceback
        say(f"{type(e).__name__}: {e}")
        return 1
    return None


# -- reading commands --------------------------------------------------------------------


def _present(args: argparse.Namespace, run: Callable[[Connection, Progress], Outcome]) -> int:
    """Connect, ``run(connection, progress)``, and print its outcome: the JSON document
    with ``--json``, else its lines, coloured on a terminal and cut to its width."""
    import json
    import shutil

    from checkpoint_journal.cli import render
    from checkpoint_journal.cli.connect import connect

    progress = render.Progress(sys.stderr)
    try:
        conn = connect(args)
        try:
            outcome = run(conn, progress)
        finally:
            conn.close()
    finally:
        progress.close()
    if args.json:
        out(json.dumps(outcome.doc, indent=2, ensure_ascii=False))
    else:
        style = render.Style(render.use_colour(sys.stdout))
        width = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 100
        for line in outcome.text(style, width):
            out(line)
    return outcome.status


def _journal(args: argparse.Namespace, conn: Connection, progress: Progress) -> Journal:
    from checkpoint_journal.cli import browse

    return browse.read_namespace(conn.store, args.thread, args.ns, bucket=conn.bucket,
                                 progress=progress)


def _threads(args: argparse.Namespace) -> int:
    from checkpoint_journal.cli import browse, render

    def run(conn: Connection, progress: Progress) -> Outcome:
        rows = browse.list_threads(conn.store, limit=args.limit, progress=progress)
        return render.Outcome(render.threads_doc(rows),
                              lambda style, width: render.threads_text(rows, style))

    return _present(args, run)


def _history(args: argparse.Namespace) -> int:
    from checkpoint_journal.cli import browse, detail, render

    def run(conn: Connection, progress: Progress) -> Outcome:
        journal = _journal(args, conn, progress)
        rows = detail.history(journal, browse.default_serde(args.allow), limit=args.limit)
        total = len(journal.ns.checkpoints)
        return render.Outcome(
            render.history_doc(args.thread, args.ns, rows),
            lambda style, width: render.history_text(args.thread, args.ns, rows, total, style))

    return _present(args, run)


def _show(args: argparse.Namespace) -> int:
    from checkpoint_journal.cli import browse, detail, render

    def run(conn: Connection, progress: Progress) -> Outcome:
        shown = detail.detail(_journal(args, conn, progress), args.checkpoint,
                              browse.default_serde(args.allow))
        return render.Outcome(render.detail_doc(shown),
                              lambda style, width: render.detail_text(shown, style, width))

    return _present(args, run)


def _diff(args: argparse.Namespace) -> int:
    from checkpoint_journal.cli import browse, detail, render

    def run(conn: Connection, progress: Progress) -> Outcome:
        result = detail.diff(_journal(args, conn, progress), args.a, args.b,
                             browse.default_serde(args.allow))
        return render.Outcome(render.diff_doc(result),
                              lambda style, width: render.diff_text(result, style, width))

    return _present(args, run)


def _verify(args: argparse.Namespace) -> int:
    from checkpoint_journal.cli import verify

    return _present(args, verify.command(args))


# -- the others ------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    # Every export opens the sealed archive: say so before connecting, not at record one.
    extras.require("audit", "checkpoint-journal export")
    from checkpoint_journal.cli import export

    return export.run(args, err)


def _rebuild(args: argparse.Namespace) -> int:
    """Fold threads' journals again with the projector's own code and configuration
    (its environment variables, as the Lambda reads them, with the connection flags)."""
    from checkpoint_journal.cli.connect import names, projector_env
    from checkpoint_journal.stream_handlers.projector import make_projector

    table, bucket = names(args)
    projector = make_projector(projector_env(args, table, bucket), terms=aws.COMMAND_LINE)
    try:
        threads = list(projector.threads()) if args.all else list(args.thread)
        for thread in threads:
            stats = projector.rebuild_thread(thread)
            out(f"{thread}: {stats.namespaces} namespace(s), {stats.views_written} view(s), "
                f"{stats.index_items} index item(s), {stats.blobs_offloaded} blob(s) written")
    finally:
        projector.close()
    out(f"rebuilt {len(threads)} thread(s)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    """The demo runs an agent, whatever it raises: any failure is the demo's (exit 1)."""
    from checkpoint_journal.cli.demo import run_demo

    try:
        result = run_demo(backend=args.backend, out=out)
    except KeyboardInterrupt:
        err("demo interrupted")
        return 130
    except Exception as e:
        err(f"demo failed: {type(e).__name__}: {e}")
        return 1
    failed = result.shortfalls()
    if failed:
        err("demo ran but did not show what it should: " + "; ".join(failed))
        return 1
    return 0


def _local(args: argparse.Namespace) -> int:
    from checkpoint_journal.cli import local

    return local.run(args, out, err)


def _import_dynamodbsaver(args: argparse.Namespace) -> int:
    from checkpoint_journal.cli import import_dynamodbsaver

    return import_dynamodbsaver.run(args, out)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "local": _local, "demo": _demo, "rebuild": _rebuild, "threads": _threads,
    "history": _history, "show": _show, "diff": _diff, "verify": _verify, "export": _export,
    "import-dynamodbsaver": _import_dynamodbsaver,
}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (argparse errors exit with 2)."""
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except MissingExtraError as e:
        # One line naming the command and the extra to install (local, demo: [local];
        # rebuild: [lambda]; export, verify's archive check: [audit]); no traceback.
        what = f"checkpoint-journal {args.command}"
        if args.command == "verify":  # the table check alone needs no extra
            what += "'s archive check (--no-archive skips it)"
        err(str(MissingExtraError(what, e.extra)))
        return 1
    except (Exception, KeyboardInterrupt) as e:
        status = exit_status(e)
        if status is None:
            raise
        return status
