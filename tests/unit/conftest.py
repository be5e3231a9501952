"""Fixtures shared by the unit tests, and the tier's rule: no network at all.

Unit tests are pure or patch AWS in process (moto's ``mock_aws``); anything that talks
HTTP, even to a server on 127.0.0.1, belongs in tests/integration. The guard below
refuses every IP connection before it is made. A connection to loopback is refused as
if nothing listened there (so a test of an unreachable endpoint still sees one), while
a DNS lookup or a connection to any other address also fails the test.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.unit.test_archiver import BUCKET, TABLE

_LOOPBACK_NAMES = {None, "localhost", b"localhost"}


def _is_literal_or_loopback(host: Any) -> bool:
    """Whether resolving ``host`` needs no DNS: an IP literal, localhost, or none."""
    if host in _LOOPBACK_NAMES:
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(text.split("%")[0])  # an IPv6 literal may carry a zone
    except ValueError:
        return False
    return True


def _is_loopback(address: Any) -> bool:
    host = address[0]
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    attempts: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_literal_or_loopback(host):
            attempts.append(f"getaddrinfo({host!r})")
            raise OSError(f"unit tests are offline: DNS lookup of {host!r} refused")
        return real_getaddrinfo(host, *args, **kwargs)

    def refuse(sock: socket.socket, address: Any) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return  # Unix sockets (an event loop's self-pipe) are no network
        if not _is_loopback(address):
            attempts.append(f"connect({address!r})")
        raise ConnectionRefusedError(
            f"unit tests are offline: connection to {address!r} refused (a test that needs "
            "a server belongs in tests/integration)"
        )

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        refuse(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        refuse(self, address)
        return real_connect_ex(self, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket.socket, "connect_ex", connect_ex)
        # Credentials or a region missing from a test's environment must not send boto3
        # to the EC2 instance metadata service.
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield
    # Libraries may swallow the OSError and carry on; the record still fails the test.
    assert attempts == [], f"a unit test tried to reach the network: {attempts}"


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """In-process S3 (with the archive bucket) and DynamoDB (with a journal table)."""
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(var, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                       {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                                  {"AttributeName": "SK", "AttributeType": "S"}],
        )
        yield s3, ddb
