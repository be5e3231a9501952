"""The stream runner's shard handling, against a fake DynamoDB Streams API.

moto keeps one shard per stream and never closes it, and DynamoDB Local does not roll
shards within a test's lifetime, so what only shows with several shards is tested here:
a closed parent is read to its end before its children, LATEST skips what came before
the start, and expired or "trimmed" iterators are re-taken without losing or repeating
records.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import botocore.exceptions
import pytest

from checkpoint_journal.local import StreamEventSource, StreamRunner
from tests.stream_probe import HANDLER, Probe, new_probe

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00.000"


def raw(seq: int) -> dict[str, Any]:
    return {
        "eventID": f"e{seq}",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": dt.datetime.now(dt.UTC),
            "Keys": {"PK": {"S": f"k{seq}"}},
            "NewImage": {"PK": {"S": f"k{seq}"}},
            "SequenceNumber": f"{seq:021d}",
            "SizeBytes": 10,
            "StreamViewType": "NEW_IMAGE",
        },
    }


def client_error(code: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, "GetRecords")


class FakeStreams:
    """Shards as lists of records; iterators are "shard|position" strings."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.shards: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []  # the listing order
        self.faults: dict[str, list[str]] = {}  # shard -> error codes for next get_records
        self.iterator_requests: list[tuple[str, str, str | None]] = []

    def add(self, shard: str, *, parent: str | None = None, seqs: list[int] | None = None,
            first: bool = False) -> None:
        with self.lock:
            self.shards[shard] = {"parent": parent, "records": [raw(s) for s in seqs or []], "closed": False}
            self.order.insert(0, shard) if first else self.order.append(shard)

    def write(self, shard: str, *seqs: int) -> None:
        with self.lock:
            self.shards[shard]["records"] += [raw(s) for s in seqs]

    def close(self, shard: str) -> None:
        with self.lock:
            self.shards[shard]["closed"] = True

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str | None = None) -> Any:
        with self.lock:
            # One shard per page, to exercise the paging.
            start = 0 if ExclusiveStartShardId is None else self.order.index(ExclusiveStartShardId) + 1
            page = self.order[start : start + 1]
            shards = []
            for shard_id in page:
                shard = self.shards[shard_id]
                item: dict[str, Any] = {"ShardId": shard_id, "SequenceNumberRange": {"StartingSequenceNumber": "1"}}
                if shard["closed"]:
                    item["SequenceNumberRange"]["EndingSequenceNumber"] = "9" * 21
                if shard["parent"]:
                    item["ParentShardId"] = shard["parent"]
                shards.append(item)
            description: dict[str, Any] = {"StreamArn": StreamArn, "Shards": shards}
            if start + 1 < len(self.order):
                description["LastEvaluatedShardId"] = page[-1]
            return {"StreamDescription": description}

    def get_shard_iterator(self, StreamArn: str, ShardId: str, ShardIteratorType: str,
                           SequenceNumber: str | None = None) -> Any:
        with self.lock:
            self.iterator_requests.append((ShardId, ShardIteratorType, SequenceNumber))
            records = self.shards[ShardId]["records"]
            if ShardIteratorType == "TRIM_HORIZON":
                position = 0
            elif ShardIteratorType == "LATEST":
                position = len(records)
            else:
                assert ShardIteratorType == "AFTER_SEQUENCE_NUMBER"
                seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
                position = seqs.index(SequenceNumber) + 1
            return {"ShardIterator": f"{ShardId}|{position}"}

    def get_records(self, ShardIterator: str, Limit: int) -> Any:
        shard_id, position = ShardIterator.split("|")
        with self.lock:
            pending = self.faults.get(shard_id)
            if pending:
                raise client_error(pending.pop(0))
            shard = self.shards[shard_id]
            records = shard["records"][int(position) : int(position) + Limit]
            end = int(position) + len(records)
            done = shard["closed"] and end == len(shard["records"])
            response: dict[str, Any] = {"Records": records}
            if not done:
                response["NextShardIterator"] = f"{shard_id}|{end}"
            return response


class FakeHost:
    region_name = "us-east-1"

    def __init__(self, streams: FakeStreams) -> None:
        self.streams = streams

    def client(self, service: str) -> Any:
        if service == "dynamodbstreams":
            return self.streams
        assert service == "dynamodb"
        return self

    def describe_table(self, TableName: str) -> Any:
        return {"Table": {"LatestStreamArn": ARN, "StreamSpecification": {"StreamEnabled": True}}}

    def aws_env(self) -> dict[str, str]:
        return {}


def runner(streams: FakeStreams, probe: Probe, **mapping: Any) -> StreamRunner:
    source = StreamEventSource(function="F", event="E", handler=HANDLER, table="T",
                               environment={"PROBE_ID": probe.id}, **mapping)
    return StreamRunner(FakeHost(streams), [source], tables={"T": "t"}, poll_interval=0.01)


def delivered(probe: Probe) -> list[str]:
    return [k for batch in probe.batches for k in batch]


def test_a_closed_parent_is_read_to_its_end_before_its_children() -> None:
    streams, probe = FakeStreams(), new_probe()
    streams.add("parent", seqs=[1, 2, 3])
    streams.close("parent")
    # Listed before its parent, as nothing promises the listing order.
    streams.add("child", parent="parent", seqs=[4, 5], first=True)
    streams.add("other", seqs=[10])
    with runner(streams, probe, batch_size=2) as r:
        r.drain(timeout=10)
        assert sorted(delivered(probe)) == sorted(["k1", "k2", "k3", "k4", "k5", "k10"])
        order = delivered(probe)
        assert order.index("k3") < order.index("k4")
        assert ["k1", "k2"] in probe.batches  # a batch never spans shards

        # The open child is closed, its own child appears: the same again.
        streams.write("child", 6)
        streams.close("child")
        streams.add("grandchild", parent="child", seqs=[7])
        r.drain(timeout=10)
        order = delivered(probe)
        assert order.index("k6") < order.index("k7")
        (status,) = r.status()
        assert status.shards == 4 and status.records_delivered == 8


def test_children_wait_while_their_parent_is_open() -> None:
    streams, probe = FakeStreams(), new_probe()
    streams.add("parent", seqs=[1])
    streams.add("child", parent="parent", seqs=[2])
    with runner(streams, probe) as r:
        probe.wait_for(lambda p: len(p.invocations) == 1)
        with pytest.raises(TimeoutError, match="not finished a poll cycle"):
            r.drain(timeout=0.3)
        assert delivered(probe) == ["k1"]
        streams.close("parent")
        r.drain(timeout=10)
        assert delivered(probe) == ["k1", "k2"]


def test_latest_skips_what_was_written_before_the_start() -> None:
    streams, probe = FakeStreams(), new_probe()
    streams.add("old", seqs=[1, 2])
    streams.close("old")
    streams.add("open", parent="old", seqs=[3])
    with runner(streams, probe, starting_position="LATEST") as r:
        streams.write("open", 4)
        r.drain(timeout=10)
        assert delivered(probe) == ["k4"]
    assert ("old", "LATEST", None) not in streams.iterator_requests


def test_expired_and_trimmed_iterators_are_taken_again_without_loss_or_repeats() -> None:
    streams, probe = FakeStreams(), new_probe()
    streams.add("s")
    # DynamoDB Local: an iterator taken on an empty shard reads as trimmed later.
    streams.faults["s"] = ["TrimmedDataAccessException"]
    with runner(streams, probe) as r:
        streams.write("s", 1, 2)
        r.drain(timeout=10)
        streams.faults["s"] = ["ExpiredIteratorException"]
        streams.write("s", 3)
        r.drain(timeout=10)
        assert delivered(probe) == ["k1", "k2", "k3"]
    assert ("s", "AFTER_SEQUENCE_NUMBER", f"{2:021d}") in streams.iterator_requests


def test_other_errors_are_reported_by_drain_and_polling_goes_on() -> None:
    streams, probe = FakeStreams(), new_probe()
    streams.add("s", seqs=[1])
    streams.faults["s"] = ["InternalServerError"] * 1000
    with runner(streams, probe) as r:
        with pytest.raises(TimeoutError, match="last error: ClientError.*InternalServerError"):
            r.drain(timeout=0.5)
        streams.faults["s"] = []
        r.drain(timeout=10)
        assert delivered(probe) == ["k1"]
