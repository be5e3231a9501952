"""``checkpoint-journal local``: the embedded deployment in the foreground, until Ctrl-C
or SIGTERM, with the export lines that point a second terminal at it."""

from __future__ import annotations

import argparse
import shlex
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from checkpoint_journal.local import LocalDeployment

Say = Callable[[str], None]


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


def _print_deployment(dep: LocalDeployment, out: Say) -> None:
    out(f"checkpoint-journal local ({dep.backend}) is running on 127.0.0.1")
    out(f"  DynamoDB endpoint: {dep.endpoint_url}")
    out(f"  S3 endpoint:       {dep.s3_endpoint_url}")
    out(f"  table:             {dep.table_name}")
    out(f"  bucket:            {dep.bucket}")
    out(f"  region:            {dep.region_name}")
    out("")
    out("In a second terminal:")
    for name, value in dep.env().items():
        out(f"export {name}={shlex.quote(value)}")
    out("")
    out("Press Ctrl-C to stop.")


def run(args: argparse.Namespace, out: Say, err: Say) -> int:
    """Run the deployment until a signal; 0 when stopped, 1 when it could not start."""
    from checkpoint_journal._core import aws
    from checkpoint_journal.local import LocalDeployment

    # The region a second terminal's tools will resolve (AWS_REGION, AWS_DEFAULT_REGION,
    # AWS_PROFILE's); `local` has no --profile, so a bad AWS_PROFILE is named as such.
    region = aws.default_region(terms=aws.ENVIRONMENT)
    dep = LocalDeployment(backend=args.backend, region_name=region)
    try:
        with _signals(_raise_stop):
            dep.start()  # stops what it started if interrupted or failing
            _print_deployment(dep, out)
            _wait_for_signal()
    except _Stop:
        out("Stopping ...")
    except Exception as e:  # startup failures: Java missing, port trouble, ...
        err(f"could not run the local deployment: {type(e).__name__}: {e}")
        return 1
    finally:
        # A second Ctrl-C must not interrupt the shutdown half-way.
        with _signals(signal.SIG_IGN):
            dep.stop()
    out("Stopped.")
    return 0
