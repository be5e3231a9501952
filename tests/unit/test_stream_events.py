"""checkpoint_journal.local._events: Lambda's wire shapes and delivery rules, pure."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import pytest

from checkpoint_journal.local._esm import StreamEventSource
from checkpoint_journal.local._events import (
    MAX_PAYLOAD_BYTES,
    Condition,
    LambdaContext,
    Outcome,
    StreamRecord,
    batch_length,
    deliver,
    failure_message,
    fresh_event,
    interpret_response,
    retry_delay,
    to_stream_record,
)
from tests import events
from tests.events.make_events import REGION, STREAM_ARN

ARN = "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/2024-01-01T00:00:00.000"
SHARD = "shardId-00000001-abc"


def raw(seq: int, *, name: str = "INSERT", created: Any = None, **image: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": created
        or dt.datetime(2024, 1, 1, 0, 0, 30, 750000, tzinfo=dt.UTC),
        "Keys": {"PK": {"S": f"k{seq}"}},
        "SequenceNumber": f"{seq:021d}",
        "SizeBytes": 42,
        "StreamViewType": "NEW_IMAGE",
    }
    if image:
        body["NewImage"] = {"PK": {"S": f"k{seq}"}, **image}
    return {"eventID": f"e{seq}", "eventName": name, "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "ddblocal", "dynamodb": body}


def record(seq: int, arrival: float = 1_700_000_000.0) -> StreamRecord:
    built = to_stream_record(raw(seq, v={"N": "1"}), region="us-east-1", stream_arn=ARN, shard_id=SHARD)
    return StreamRecord(built.sequence_number, SHARD, arrival, built.record, built.size)


# --- records -----------------------------------------------------------------------------


def test_a_boto3_record_becomes_the_record_lambda_delivers() -> None:
    built = to_stream_record(
        raw(7, b={"B": b"\x00\x01"}, bs={"BS": [b"x"]}, n={"N": "1.50"},
            m={"M": {"l": {"L": [{"B": b"\xff"}]}}}),
        region="eu-west-1", stream_arn=ARN, shard_id=SHARD,
    )
    r = built.record
    assert r["eventVersion"] == "1.1" and r["awsRegion"] == "eu-west-1"
    assert r["eventSourceARN"] == ARN
    assert r["dynamodb"]["ApproximateCreationDateTime"] == 1704067230.0  # rounded down
    image = r["dynamodb"]["NewImage"]
    assert image["b"] == {"B": base64.b64encode(b"\x00\x01").decode()}
    assert image["bs"] == {"BS": [base64.b64encode(b"x").decode()]}
    assert image["n"] == {"N": "1.50"}
    assert image["m"] == {"M": {"l": {"L": [{"B": base64.b64encode(b"\xff").decode()}]}}}
    assert built.sequence_number == "000000000000000000007"
    assert built.arrival == 1704067230.0
    assert built.size == len(json.dumps(r, separators=(",", ":")))
    json.dumps(r)  # JSON-safe


def test_dynamodb_local_ttl_deletions_become_service_removes() -> None:
    ttl = raw(3, name="UNKNOWN_TO_SDK_VERSION")
    built = to_stream_record(ttl, region="us-east-1", stream_arn=ARN, shard_id=SHARD).record
    assert built["eventName"] == "REMOVE"
    assert built["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert list(built)[-2:] == ["userIdentity", "eventSourceARN"]
    # An ordinary delete has no identity.
    delete = to_stream_record(raw(4, name="REMOVE"), region="us-east-1", stream_arn=ARN, shard_id=SHARD)
    assert "userIdentity" not in delete.record


# --- the canonical events (tests/events) ------------------------------------------------


def as_boto3(record: dict[str, Any]) -> dict[str, Any]:
    """The record as boto3's ``get_records`` returns it: what the runner starts from.

    A datetime with milliseconds for the creation time (moto keeps them), binary as bytes,
    no stream ARN, the region of the emulator, and a TTL deletion's identity spelt as the
    DynamoDB Streams API spells it.
    """
    body = record["dynamodb"]
    raw_body = {
        "ApproximateCreationDateTime": dt.datetime.fromtimestamp(
            body["ApproximateCreationDateTime"] + 0.75, tz=dt.UTC),
        **{k: events.wire(v) if k in ("Keys", "NewImage") else v
           for k, v in body.items() if k != "ApproximateCreationDateTime"},
    }
    raw = {k: v for k, v in record.items() if k not in ("dynamodb", "eventSourceARN")}
    raw["awsRegion"] = "ddblocal"
    raw["dynamodb"] = raw_body
    if "userIdentity" in record:
        identity = record["userIdentity"]
        raw["userIdentity"] = {"PrincipalId": identity["principalId"], "Type": identity["type"]}
    return raw


def test_the_runner_builds_the_records_lambda_delivers() -> None:
    for expected in events.load("mixed_batch")["Records"]:
        built = to_stream_record(as_boto3(expected), region=REGION, stream_arn=STREAM_ARN,
                                 shard_id=SHARD)
        # Field by field: the same keys, in the same order, with values of the same types.
        assert events.shape(built.record) == events.shape(expected)
        assert built.record == expected
        assert built.sequence_number == expected["dynamodb"]["SequenceNumber"]
        assert built.arrival == expected["dynamodb"]["ApproximateCreationDateTime"]


def test_a_dynamodb_local_ttl_deletion_becomes_lambdas_ttl_remove() -> None:
    expected = events.record("ttl_remove")
    raw = as_boto3(expected)
    raw["eventName"] = "UNKNOWN_TO_SDK_VERSION"
    del raw["userIdentity"]
    built = to_stream_record(raw, region=REGION, stream_arn=STREAM_ARN, shard_id=SHARD)
    assert built.record == expected


def test_the_invocation_event_is_the_batch_lambda_delivers() -> None:
    expected = events.load("mixed_batch")
    records = [to_stream_record(as_boto3(r), region=REGION, stream_arn=STREAM_ARN,
                                shard_id=SHARD) for r in expected["Records"]]
    event = fresh_event(records)
    assert events.shape(event) == events.shape(expected)
    assert event == expected
    # Fresh copies: a handler that changes its event changes no retry.
    event["Records"][0]["dynamodb"]["Keys"].clear()
    assert fresh_event(records) == expected


# --- responses ---------------------------------------------------------------------------

SEQS = ["10", "11", "12"]


@pytest.mark.parametrize(
    "response",
    [None, {}, {"batchItemFailures": None}, {"batchItemFailures": []}, {"other": 1}],
)
def test_complete_success(response: Any) -> None:
    assert interpret_response(response, SEQS, report_failures=True, request_id="r").ok


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"itemidentifier": "11"}]},
        {"batchItemFailures": [{"itemIdentifier": "99"}]},
        {"batchItemFailures": [{"itemIdentifier": "11"}, {"itemIdentifier": "nope"}]},
        {"batchItemFailures": ["11"]},
        {"batchItemFailures": "11"},
        "a string",
    ],
)
def test_complete_failure(response: Any) -> None:
    outcome = interpret_response(response, SEQS, report_failures=True, request_id="r")
    assert not outcome.ok and outcome.first_failed == 0 and outcome.function_error == ""


def test_partial_failure_is_the_lowest_reported_record() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": "12"}, {"itemIdentifier": "11"}]}
    outcome = interpret_response(response, SEQS, report_failures=True, request_id="r")
    assert (outcome.ok, outcome.first_failed) == (False, 1)


def test_answers_are_ignored_without_report_batch_item_failures() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": ""}]}
    assert interpret_response(response, SEQS, report_failures=False, request_id="r").ok


# --- the on-failure record -----------------------------------------------------------------


def test_failure_message_shape() -> None:
    records = [record(5, 1_700_000_000.4), record(6, 1_700_000_001.0)]
    last = Outcome.error("req-1")
    message = failure_message(
        records, condition="RetryAttemptsExhausted", invoke_count=3, last=last,
        request_id="unused", function_arn="arn:aws:lambda:us-east-1:123456789012:function:F",
        stream_arn=ARN, now=1_700_000_002.5,
    )
    assert message == {
        "requestContext": {
            "requestId": "req-1",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:F",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 3,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2023-11-14T22:13:22.500Z",
        "DDBStreamBatchInfo": {
            "shardId": SHARD,
            "startSequenceNumber": "000000000000000000005",
            "endSequenceNumber": "000000000000000000006",
            "approximateArrivalOfFirstRecord": "2023-11-14T22:13:20Z",
            "approximateArrivalOfLastRecord": "2023-11-14T22:13:21Z",
            "batchSize": 2,
            "streamArn": ARN,
        },
    }
    never = failure_message(
        records[:1], condition="RecordAgeExceeded", invoke_count=0, last=None,
        request_id="req-2", function_arn="f", stream_arn=ARN, now=1_700_000_002.0,
    )
    assert never["requestContext"]["requestId"] == "req-2"
    assert never["responseContext"] == {"statusCode": 0, "executedVersion": "", "functionError": ""}


def test_context() -> None:
    context = LambdaContext(function_name="F", invoked_function_arn="arn", memory_limit_in_mb=512,
                            aws_request_id="id", timeout_seconds=3)
    assert 2_900 < context.get_remaining_time_in_millis() <= 3_000
    assert (context.function_name, context.memory_limit_in_mb, context.function_version) == ("F", 512, "$LATEST")
    assert context.log_group_name == "/aws/lambda/F"


# --- delivery ------------------------------------------------------------------------------


def source(**kw: Any) -> StreamEventSource:
    return StreamEventSource(function="F", event="E", handler="m.h", table="T", **kw)


class Harness:
    """A fake function: fails on poisoned sequence numbers, as told."""

    def __init__(self, poison: set[str] | None = None, *, partial: bool = False) -> None:
        self.poison = poison or set()
        self.partial = partial
        self.calls: list[list[str]] = []
        self.acked: list[str] = []
        self.dead: list[tuple[list[str], Condition, int]] = []

    def invoke(self, records: Sequence[StreamRecord]) -> Outcome:
        seqs = [r.sequence_number for r in records]
        self.calls.append(seqs)
        bad = [i for i, s in enumerate(seqs) if s in self.poison]
        if not bad:
            self.acked += seqs
            return Outcome.success("r")
        if self.partial:
            self.acked += seqs[: bad[0]]
            return Outcome(ok=False, request_id="r", first_failed=bad[0])
        return Outcome.error("r")

    def dead_letter(self, records: Sequence[StreamRecord], condition: Condition, count: int,
                    last: Outcome | None) -> None:
        self.dead.append(([r.sequence_number for r in records], condition, count))

    def run(self, batch: list[StreamRecord], src: StreamEventSource, now: float = 1_700_000_000.0) -> bool:
        return deliver(batch, source=src, invoke=self.invoke, dead_letter=self.dead_letter,
                       clock=lambda: now, pause=lambda s: False)


def seq(n: int) -> str:
    return f"{n:021d}"


def test_bisect_isolates_the_poison_and_delivers_everything_else_once() -> None:
    batch = [record(i) for i in range(8)]
    h = Harness({seq(5)})
    assert h.run(batch, source(bisect_batch_on_function_error=True, maximum_retry_attempts=2))
    assert h.acked == [seq(i) for i in range(8) if i != 5]
    assert h.dead == [([seq(5)], "RetryAttemptsExhausted", 3)]
    assert h.calls.count([seq(5)]) == 3


def test_without_bisect_the_batch_is_retried_then_given_up_on_whole() -> None:
    batch = [record(i) for i in range(3)]
    h = Harness({seq(1)})
    h.run(batch, source(maximum_retry_attempts=2))
    assert h.calls == [[seq(0), seq(1), seq(2)]] * 3
    assert h.dead == [([seq(0), seq(1), seq(2)], "RetryAttemptsExhausted", 3)]
    assert h.acked == []


def test_zero_retries_gives_up_after_the_first_attempt() -> None:
    h = Harness({seq(0)})
    h.run([record(0)], source(maximum_retry_attempts=0))
    assert h.dead == [([seq(0)], "RetryAttemptsExhausted", 1)]


@pytest.mark.parametrize("bisect", [False, True])
def test_partial_failures_retry_from_the_failed_record(bisect: bool) -> None:
    batch = [record(i) for i in range(5)]
    h = Harness({seq(2)}, partial=True)
    h.run(batch, source(bisect_batch_on_function_error=bisect, maximum_retry_attempts=1,
                        function_response_types=("ReportBatchItemFailures",)))
    assert h.calls[0] == [seq(i) for i in range(5)]
    assert h.calls[1] == [seq(2), seq(3), seq(4)]
    if bisect:
        # Then the failed record is first: halves, and the poison alone is retried.
        assert h.acked == [seq(0), seq(1), seq(3), seq(4)]
        assert h.dead == [([seq(2)], "RetryAttemptsExhausted", 2)]
    else:
        assert h.acked == [seq(0), seq(1)]
        assert h.dead == [([seq(2), seq(3), seq(4)], "RetryAttemptsExhausted", 2)]


def test_old_records_are_not_delivered() -> None:
    batch = [record(0, arrival=1000.0), record(1, arrival=1000.0), record(2, arrival=5000.0)]
    h = Harness()
    h.run(batch, source(maximum_record_age_in_seconds=600), now=5100.0)
    assert h.dead == [([seq(0), seq(1)], "RecordAgeExceeded", 0)]
    assert h.calls == [[seq(2)]] and h.acked == [seq(2)]


def test_records_retried_forever_expire() -> None:
    now = [1000.0]
    h = Harness({seq(0)})

    def pause(seconds: float) -> bool:
        now[0] += 100.0  # time passes between retries
        return False

    deliver([record(0, arrival=1000.0)], source=source(maximum_record_age_in_seconds=600),
            invoke=h.invoke, dead_letter=h.dead_letter, clock=lambda: now[0], pause=pause)
    (dead,) = h.dead
    assert dead[:2] == ([seq(0)], "RecordAgeExceeded")
    # Invoked at ages 0, 100, ..., 600 (not older than 600 s), expired at 700.
    assert dead[2] == len(h.calls) == 7


def test_stopping_abandons_the_batch() -> None:
    h = Harness({seq(0)})
    done = deliver([record(0)], source=source(), invoke=h.invoke, dead_letter=h.dead_letter,
                   clock=lambda: 0.0, pause=lambda s: True)
    assert not done and h.dead == [] and len(h.calls) == 1


def test_retry_backoff_is_immediate_first_and_bounded() -> None:
    assert [retry_delay(n) for n in range(3)] == [0.0, 0.0, 0.0]
    assert retry_delay(3) == 0.05
    assert retry_delay(100) == 1.0


def test_batches_are_cut_at_the_batch_size_and_at_lambdas_6_mb_payload_limit() -> None:
    assert MAX_PAYLOAD_BYTES == 6 * 1024 * 1024
    small = [record(i) for i in range(5)]
    assert batch_length(small, 3) == 3
    assert batch_length(small, 10) == 5
    assert batch_length([], 10) == 0
    # Records near DynamoDB's 400 KB item limit (base64 makes them ~533 KB of JSON):
    # 100 of them would be 53 MB, so a batch stops at 11.
    big = [StreamRecord(f"{i}", SHARD, 0.0, {}, 533 * 1024) for i in range(100)]
    assert batch_length(big, 100) == 11
    assert sum(r.size for r in big[:11]) <= MAX_PAYLOAD_BYTES < sum(r.size for r in big[:12])
    # A single record larger than the limit still goes (alone).
    assert batch_length([StreamRecord("1", SHARD, 0.0, {}, MAX_PAYLOAD_BYTES + 1)] * 2, 100) == 1
