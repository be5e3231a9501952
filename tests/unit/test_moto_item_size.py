"""The local deployment's patch of moto's item-size check (``local/_moto_size.py``).

moto counts a Binary attribute by its base64 text against 405,000 bytes; DynamoDB counts
its raw bytes against 409,600 ("Item sizes and formats"). These tests fail if a moto
upgrade moves the method the patch replaces, or if the patched check stops counting as
DynamoDB does, on either side of the limit. In process (``mock_aws``), no network.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest
from moto import mock_aws

from checkpoint_journal._core.size import MAX_ITEM_BYTES
from checkpoint_journal.local import _moto_size
from tests.integration.tables import create_pk_sk_table

TABLE = "sizes"
# The two string keys as DynamoDB counts them: "PK" + "p", "SK" + "s".
KEYS_BYTES = 2 + 1 + 2 + 1


@pytest.fixture()
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's DynamoDB, in process, with the patch installed as a deployment does."""
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(var, value)
    assert _moto_size.install(), "this moto cannot be patched: see local/_moto_size.py"
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            create_pk_sk_table(client, TABLE)
            yield client
    finally:
        _moto_size.uninstall()


def _put(ddb: Any, **attrs: Any) -> None:
    ddb.put_item(TableName=TABLE, Item={"PK": {"S": "p"}, "SK": {"S": "s"}, **attrs})


def _refused(ddb: Any, **attrs: Any) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        _put(ddb, **attrs)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    return str(info.value.response["Error"]["Message"])


def test_the_patched_method_is_where_the_patch_expects_it() -> None:
    found = _moto_size.target()
    assert found is not None, "moto moved LimitedSizeDict.__setitem__: revisit _moto_size"
    limited, dynamo_type, too_large = found
    # moto's own check still refuses what DynamoDB accepts; if not, the patch can go.
    own = vars(limited)["__setitem__"]
    if own is not _moto_size._setitem:
        item = limited()
        with pytest.raises(too_large):
            own(item, "body", dynamo_type({"B": "A" * 546_000}))  # base64 of 409,500 bytes


def test_binary_counts_its_raw_bytes_up_to_400_kb_exactly(ddb: Any) -> None:
    body = MAX_ITEM_BYTES - KEYS_BYTES - len("body")
    _put(ddb, body={"B": b"\x00" * body})  # 409,600 bytes: DynamoDB takes it
    stored = ddb.get_item(TableName=TABLE, Key={"PK": {"S": "p"}, "SK": {"S": "s"}})
    assert len(stored["Item"]["body"]["B"]) == body
    message = _refused(ddb, body={"B": b"\x00" * (body + 1)})  # 409,601: refused
    assert message == "Item size has exceeded the maximum allowed size"


def test_names_numbers_lists_and_maps_count_as_documented(ddb: Any) -> None:
    """A map costs 3 bytes plus 1 per element and its keys; a list the same without
    keys; a number (significant digits + 1) / 2 + 1 bytes."""
    overhead = (len("m") + 3                       # the map attribute
                + len("a") + 2 + 1                 # "a": N "12" (2 bytes) + 1
                + len("b") + 3 + 1 + 1)            # "b": L [B] + 1 per element, + 1
    room = MAX_ITEM_BYTES - KEYS_BYTES - overhead

    def item(n: int) -> dict[str, Any]:
        return {"m": {"M": {"a": {"N": "12"}, "b": {"L": [{"B": b"\x01" * n}]}}}}

    _put(ddb, **item(room))
    _refused(ddb, **item(room + 1))


def test_a_replaced_attribute_is_counted_once(ddb: Any) -> None:
    """An update that replaces a large value measures the item as it will be (moto
    counted the old and the new value together)."""
    big = 300_000
    _put(ddb, body={"B": b"\x00" * big})
    ddb.update_item(TableName=TABLE, Key={"PK": {"S": "p"}, "SK": {"S": "s"}},
                    UpdateExpression="SET body = :b",
                    ExpressionAttributeValues={":b": {"B": b"\x02" * big}})
    with pytest.raises(botocore.exceptions.ClientError, match="exceeded the maximum"):
        ddb.update_item(TableName=TABLE, Key={"PK": {"S": "p"}, "SK": {"S": "s"}},
                        UpdateExpression="SET extra = :b",
                        ExpressionAttributeValues={":b": {"B": b"\x03" * 120_000}})


def test_install_is_counted_and_the_last_uninstall_restores_moto() -> None:
    found = _moto_size.target()
    assert found is not None
    before = _moto_size.installed()  # a deployment of this process may hold it already
    assert _moto_size.install() and _moto_size.install()
    assert _moto_size.installed()
    _moto_size.uninstall()
    assert _moto_size.installed()
    _moto_size.uninstall()
    assert _moto_size.installed() == before
    if not before:
        assert vars(found[0])["__setitem__"] is not _moto_size._setitem
