"""DynamoDB Local as a child process: it serves on 127.0.0.1, and stop() (or our death) ends it.

What needs no process (a missing package explained) is in tests/unit/test_ddblocal.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import boto3

from checkpoint_journal.local import _ddblocal
from checkpoint_journal.local._ddblocal import DynamoDBLocal


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def test_serves_items_over_http_and_stop_closes_the_port() -> None:
    with DynamoDBLocal() as ddb:
        assert ddb.port is not None
        port = ddb.port
        assert ddb.endpoint_url == f"http://127.0.0.1:{port}"
        client = boto3.client(
            "dynamodb",
            endpoint_url=ddb.endpoint_url,
            region_name=_ddblocal.REGION,
            aws_access_key_id=_ddblocal.ACCESS_KEY_ID,
            aws_secret_access_key=_ddblocal.SECRET_ACCESS_KEY,
        )
        client.create_table(
            TableName="ddblocal_probe",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.put_item(TableName="ddblocal_probe", Item={"pk": {"S": "k1"}, "v": {"N": "42"}})
        got = client.get_item(TableName="ddblocal_probe", Key={"pk": {"S": "k1"}}, ConsistentRead=True)
        assert got["Item"] == {"pk": {"S": "k1"}, "v": {"N": "42"}}
        assert _accepts_connections(port)
    # stop() has waited for java to exit, so its listening socket is already closed.
    assert not _accepts_connections(port)
    assert ddb.pid is None
    ddb.stop()  # idempotent


def test_child_dies_with_its_parent_even_on_sigkill() -> None:
    project_root = Path(_ddblocal.__file__).resolve().parents[2]
    script = textwrap.dedent(
        """
        import os, signal
        from checkpoint_journal.local._ddblocal import DynamoDBLocal
        ddb = DynamoDBLocal()
        ddb.start()
        print(ddb.port, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no finally: only PDEATHSIG is left
        """
    )
    pythonpath = os.pathsep.join(filter(None, [str(project_root), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    parent = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert parent.returncode == -9, parent.stderr
    port = int(parent.stdout.strip())
    # The kernel delivers SIGKILL to java asynchronously; give it a bounded moment.
    deadline = time.monotonic() + 10
    while _accepts_connections(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _accepts_connections(port)
