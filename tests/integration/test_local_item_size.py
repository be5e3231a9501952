"""``checkpoint-journal local`` on moto takes what DynamoDB takes: a plain JournalSaver with
default settings stores a 3 MB state, and the real 400 KB item limit is still enforced,
at the byte DynamoDB enforces it (``local/_moto_size.py``).

Without the patch moto counted binary attributes by their base64 text against 405,000
bytes, and the first chunk of such a state failed with PayloadTooLargeError.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest
from langgraph.checkpoint.base import empty_checkpoint

from checkpoint_journal import JournalSaver
from checkpoint_journal._core.size import MAX_ITEM_BYTES, item_size
from checkpoint_journal.local import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, LocalDeployment
from tests.integration.tables import create_pk_sk_table, partition


@pytest.fixture()
def plain_env(moto_deployment: LocalDeployment, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and region only: the endpoint comes from ``endpoint_url=`` alone."""
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", moto_deployment.region_name)


def test_a_3mb_state_through_a_plain_saver(moto_deployment: LocalDeployment,
                                           plain_env: None) -> None:
    dep = moto_deployment
    thread = f"three-mb-{uuid.uuid4()}"
    # Incompressible, so that zstd cannot bring any item under moto's old arithmetic:
    # one value the projector offloads to S3 (>= 350 KB), nine near 300 KB.
    values: dict[str, Any] = {"offloaded": os.urandom(400_000), "turns": 3}
    values.update({f"near-300k-{i}": os.urandom(295_000 + i) for i in range(9)})
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    with JournalSaver(dep.table_name, bucket=dep.bucket, endpoint_url=dep.endpoint_url) as saver:
        assert saver.max_item_bytes == MAX_ITEM_BYTES  # the default: DynamoDB's 400 KB
        cp = empty_checkpoint()
        version = saver.get_next_version(None, None)
        cp["channel_values"] = values
        cp["channel_versions"] = {name: version for name in values}
        saver.put(config, cp, {"source": "input", "step": -1}, cp["channel_versions"])

        fresh = saver.get_tuple(config)  # from the journal: its chunks
        assert fresh is not None and fresh.checkpoint["channel_values"] == values
        dep.drain(timeout=60)
        folded = saver.get_tuple(config)  # from the projector's view, and S3
        assert folded is not None and folded.checkpoint["channel_values"] == values

    items = partition(dep, thread)
    sizes = sorted(item_size(i) for i in items)
    # Items past moto's old arithmetic (a 300 KB binary is 400 KB of base64), none past
    # DynamoDB's limit.
    assert sizes[-1] <= MAX_ITEM_BYTES and sizes[-2] > 300 * 1024
    s3 = dep.client("s3")
    listed = s3.list_objects_v2(Bucket=dep.bucket, Prefix="blobs/")
    assert any(o["Size"] >= 400_000 for o in listed.get("Contents", []))


@pytest.fixture()
def table(moto_deployment: LocalDeployment) -> Iterator[tuple[Any, str]]:
    """A table of its own on the deployment's server (no stream: no handler sees it)."""
    ddb, name = moto_deployment.client("dynamodb"), f"sizes-{uuid.uuid4().hex[:8]}"
    create_pk_sk_table(ddb, name)
    yield ddb, name
    ddb.delete_table(TableName=name)


def test_the_400kb_limit_is_enforced_where_dynamodb_enforces_it(
        table: tuple[Any, str]) -> None:
    ddb, name = table
    keys = {"PK": {"S": "p"}, "SK": {"S": "s"}}  # 6 bytes as DynamoDB counts them

    def item(body: int) -> dict[str, Any]:
        return {**keys, "body": {"B": os.urandom(body)}}

    largest = item(MAX_ITEM_BYTES - 6 - len("body"))
    assert item_size(largest) == MAX_ITEM_BYTES == 409_600
    ddb.put_item(TableName=name, Item=largest)
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        ddb.put_item(TableName=name, Item=item(MAX_ITEM_BYTES - 6 - len("body") + 1))
    error = refused.value.response["Error"]
    assert (error["Code"], error["Message"]) == (
        "ValidationException", "Item size has exceeded the maximum allowed size")
