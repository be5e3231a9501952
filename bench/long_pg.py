"""PostgresSaver for the long-conversation bench: a throwaway local cluster and a
statement counter.

:func:`local_postgres` starts a PostgreSQL cluster from the machine's ``initdb`` and
``pg_ctl`` in a temporary directory, listening on 127.0.0.1 only (and on a unix socket
in that directory), on a free port; it is stopped and the directory deleted when the
block exits, error or not. Run as root, the server runs as the ``postgres`` (or
``nobody``) user through ``runuser``: PostgreSQL refuses to run as root.

:class:`SqlCounter` counts what a PostgresSaver sends: its connection is opened with a
cursor class that counts every statement (``executemany``: one per parameter set) and
the bytes of the parameters of INSERT / UPDATE / DELETE statements ("bytes written"),
and sleeps the simulated round trip once per ``execute`` / ``executemany`` call (a
pipelined ``executemany`` is one round trip).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PG_BINARIES",
    "SqlCounter",
    "SqlStats",
    "create_database",
    "local_postgres",
    "postgres_missing",
    "relation_bytes",
]

PG_BINARIES = ("initdb", "pg_ctl", "postgres")
_WRITE_VERBS = frozenset({"INSERT", "UPDATE", "DELETE"})


def _binary(name: str) -> str | None:
    return shutil.which(name) or (
        f"/usr/local/bin/{name}" if os.access(f"/usr/local/bin/{name}", os.X_OK) else None
    )


def postgres_missing() -> str | None:
    """Why PostgresSaver cannot run here, or None."""
    missing = [b for b in PG_BINARIES if _binary(b) is None]
    if missing:
        return f"PostgreSQL binaries not found: {', '.join(missing)}"
    try:
        import psycopg  # noqa: F401
        from langgraph.checkpoint.postgres import PostgresSaver  # noqa: F401
    except ImportError as e:
        return (f"{e.name or 'a package'} is not installed "
                "(pip install -e '.[bench]' installs langgraph-checkpoint-postgres and psycopg)")
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> str | None:
    """The user to run the server as when this process is root, else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


@contextmanager
def local_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster; yields a libpq connection string for its
    ``postgres`` database (user ``postgres``, trust authentication, 127.0.0.1 only)."""
    user = _server_user()
    prefix = ["runuser", "-u", user, "--"] if user else []
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    data = root / "data"
    port = _free_port()
    started = False
    try:
        if user:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [*prefix, str(_binary("initdb")), "-D", str(data), "-U", "postgres",
             "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
            check=True, capture_output=True, text=True,
        )
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        subprocess.run(
            [*prefix, str(_binary("pg_ctl")), "-D", str(data), "-o", options,
             "-l", str(root / "server.log"), "-w", "-t", "60", "start"],
            check=True, capture_output=True, text=True,
        )
        started = True
        yield f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    except subprocess.CalledProcessError as e:
        raise RuntimeError(
            f"PostgreSQL failed: {' '.join(e.cmd)}: {e.stderr or e.stdout}"
        ) from e
    finally:
        if started:
            subprocess.run(
                [*prefix, str(_binary("pg_ctl")), "-D", str(data), "-m", "immediate", "-w",
                 "stop"],
                check=False, capture_output=True,
            )
        shutil.rmtree(root, ignore_errors=True)


# -- counting ---------------------------------------------------------------------------


@dataclass
class SqlStats:
    statements: Counter[str] = field(default_factory=Counter)
    """Statements by verb (SELECT, INSERT, ...)."""
    calls: int = 0
    """``execute`` / ``executemany`` calls: the round trips simulated."""
    param_bytes: Counter[str] = field(default_factory=Counter)
    """Bytes of the parameters by verb."""

    @property
    def total_statements(self) -> int:
        return sum(self.statements.values())

    @property
    def bytes_written(self) -> int:
        return sum(n for verb, n in self.param_bytes.items() if verb in _WRITE_VERBS)


def param_size(value: Any) -> int:
    """Bytes a parameter takes on the wire, near enough: bytes as they are, text as UTF-8,
    JSON(B) as its JSON text, numbers as 8, None as 0."""
    if value is None:
        return 0
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, (bool, int, float)):
        return 8
    obj = getattr(value, "obj", None)  # psycopg.types.json.Json / Jsonb
    if obj is not None:
        return len(json.dumps(obj, default=str).encode("utf-8"))
    if isinstance(value, (list, tuple)):
        return sum(param_size(v) for v in value)
    return len(str(value).encode("utf-8"))


def _verb(query: Any) -> str:
    text = query if isinstance(query, str) else getattr(query, "as_string", lambda _: "")(None)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for token in str(text).split():
        if token.isalpha():
            return token.upper()
    return "OTHER"


def _params_size(params: Any) -> int:
    if params is None:
        return 0
    if isinstance(params, dict):
        return sum(param_size(v) for v in params.values())
    return sum(param_size(v) for v in params)


class SqlCounter:
    """Counts the statements of the connections it made (thread-safe)."""

    def __init__(self, rtt_s: float) -> None:
        self.rtt_s = rtt_s
        self.stats = SqlStats()
        self._lock = threading.Lock()

    def record(self, query: Any, params_seq: Iterable[Any]) -> None:
        verb = _verb(query)
        n = 0
        size = 0
        for params in params_seq:
            n += 1
            size += _params_size(params)
        with self._lock:
            self.stats.statements[verb] += max(n, 1)
            self.stats.param_bytes[verb] += size
            self.stats.calls += 1
        if self.rtt_s > 0:
            time.sleep(self.rtt_s)

    def connect(self, conninfo: str) -> Any:
        """A psycopg connection configured as ``PostgresSaver.from_conn_string`` does,
        whose cursors report to this counter."""
        import psycopg
        from psycopg.rows import dict_row

        counter = self

        class CountingCursor(psycopg.Cursor[Any]):
            def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
                counter.record(query, [params])
                return super().execute(query, params, **kw)

            def executemany(self, query: Any, params_seq: Any, **kw: Any) -> None:
                seq = list(params_seq)
                counter.record(query, seq)
                super().executemany(query, seq, **kw)

        return psycopg.Connection.connect(
            conninfo, autocommit=True, prepare_threshold=0, row_factory=dict_row,
            cursor_factory=CountingCursor,
        )


def create_database(conninfo: str, name: str) -> str:
    """Create database ``name`` (uncounted); its connection string."""
    import psycopg

    with psycopg.Connection.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return conninfo.replace("dbname=postgres", f"dbname={name}")


def relation_bytes(conninfo: str) -> int:
    """``pg_total_relation_size`` of the saver's tables, summed (uncounted)."""
    import psycopg

    with psycopg.Connection.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname = 'public' AND c.relname LIKE 'checkpoint%'"
        ).fetchone()
    return int(row[0]) if row else 0
