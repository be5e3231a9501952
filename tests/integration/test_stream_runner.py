"""The local stream runner against real HTTP endpoints, on both backends.

Each test gives a StreamRunner a hand-written event source mapping on a table of its own
(created in the session's deployment, so the template's own consumers never see these
records), with the probe handler of ``stream_probe``. Nothing here sleeps and hopes:
tests wait on ``drain()`` or on a condition, and time is moved with an injected clock.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from checkpoint_journal.local import LocalDeployment, StreamEventSource, StreamRunner
from checkpoint_journal.local._runner import ConsumerStatus
from tests import events
from tests.stream_probe import HANDLER, Probe, new_probe

FUNCTION = "ProbeFunction"
TABLE = "ProbeTable"
QUEUE = "ProbeQueue"
ISO_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ISO_MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Clock:
    """Wall-clock time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.005)


@pytest.fixture()
def ddb(deployment: LocalDeployment) -> Any:
    return deployment.client("dynamodb")


@pytest.fixture()
def stream_table(deployment: LocalDeployment, ddb: Any) -> Iterator[str]:
    name = f"{deployment.table_name}-runner-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 400})
    yield name
    ddb.delete_table(TableName=name)


@pytest.fixture()
def failure_queue(deployment: LocalDeployment) -> Iterator[str]:
    sqs = deployment.client("sqs")
    url: str = sqs.create_queue(QueueName=f"runner-failures-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    yield url
    sqs.delete_queue(QueueUrl=url)


StartRunner = Callable[..., StreamRunner]


@pytest.fixture()
def start_runner(
    deployment: LocalDeployment, stream_table: str, failure_queue: str
) -> Iterator[StartRunner]:
    runners: list[StreamRunner] = []

    def start(
        probe: Probe,
        *,
        clock: Callable[[], float] = time.time,
        batching_window: float | None = None,
        **mapping: Any,
    ) -> StreamRunner:
        source = StreamEventSource(
            function=FUNCTION,
            event="Stream",
            handler=HANDLER,
            table=TABLE,
            environment={"PROBE_ID": probe.id, "TABLE_NAME": stream_table},
            on_failure=QUEUE,
            memory_size=256,
            timeout=30,
            **mapping,
        )
        runner = StreamRunner(
            deployment,
            [source],
            tables={TABLE: stream_table},
            queues={QUEUE: failure_queue},
            clock=clock,
            batching_window=batching_window,
            poll_interval=0.05,
        ).start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop()


def put(ddb: Any, table: str, key: str, **attributes: Any) -> None:
    ddb.put_item(TableName=table, Item={"PK": {"S": key}, **attributes})


def status(runner: StreamRunner) -> ConsumerStatus:
    (only,) = runner.status()
    return only


def stream_arn(ddb: Any, table: str) -> str:
    arn: str = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    return arn


# --- the event -----------------------------------------------------------------------


def test_events_are_shaped_as_lambda_delivers_them(
    deployment: LocalDeployment, ddb: Any, stream_table: str, start_runner: StartRunner
) -> None:
    probe = new_probe()
    put(
        ddb, stream_table, "k1",
        b={"B": b"\x00\xffbin"},
        bs={"BS": [b"\x01", b"\x02"]},
        n={"N": "1.5"},
        m={"M": {"inner": {"B": b"\x10"}, "l": {"L": [{"B": b"\x11"}, {"N": "7"}]}}},
        ss={"SS": ["a"]},
        flag={"BOOL": True},
        nothing={"NULL": True},
    )
    ddb.delete_item(TableName=stream_table, Key={"PK": {"S": "k1"}})
    runner = start_runner(probe, batch_size=10)
    runner.drain()
    runner.drain()  # nothing new: no second invocation, no second make_handler

    (invocation,) = probe.invocations
    event = invocation.event
    assert json.loads(json.dumps(event)) == event  # plain JSON, as Lambda delivers it
    insert, remove = event["Records"]
    arn = stream_arn(ddb, stream_table)
    for record in (insert, remove):
        assert list(record) == [
            "eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb",
            "eventSourceARN",
        ]
        assert record["eventVersion"] == "1.1"
        assert record["eventSource"] == "aws:dynamodb"
        assert record["awsRegion"] == deployment.region_name
        assert record["eventSourceARN"] == arn
        body = record["dynamodb"]
        assert body["Keys"] == {"PK": {"S": "k1"}}
        assert isinstance(body["SequenceNumber"], str) and body["SequenceNumber"].isdigit()
        assert isinstance(body["SizeBytes"], int) and body["SizeBytes"] > 0
        assert body["StreamViewType"] == "NEW_IMAGE"
        created = body["ApproximateCreationDateTime"]
        assert isinstance(created, float) and created.is_integer()
        # DynamoDB Local rounds it down to the minute.
        assert time.time() - 120 < created <= time.time()
    assert (insert["eventName"], remove["eventName"]) == ("INSERT", "REMOVE")
    assert "NewImage" not in remove["dynamodb"]
    # Shaped as the canonical events of tests/events, whatever the item.
    assert events.envelope(insert) == events.envelope(events.record("checkpoint_insert"))
    assert events.envelope(remove) == events.envelope(events.record("delete_remove"))
    assert events.attribute_type_errors(insert["dynamodb"]["NewImage"]) == []
    image = insert["dynamodb"]["NewImage"]
    b64 = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
    assert image["b"] == {"B": b64(b"\x00\xffbin")}
    assert sorted(image["bs"]["BS"]) == sorted([b64(b"\x01"), b64(b"\x02")])
    assert image["n"] == {"N": "1.5"}
    assert image["m"] == {
        "M": {"inner": {"B": b64(b"\x10")}, "l": {"L": [{"B": b64(b"\x11")}, {"N": "7"}]}}
    }
    assert image["ss"] == {"SS": ["a"]}
    assert image["flag"] == {"BOOL": True}
    assert image["nothing"] == {"NULL": True}

    context = invocation.context
    assert context.function_name == FUNCTION
    assert context.memory_limit_in_mb == 256
    assert context.invoked_function_arn.endswith(f":function:{FUNCTION}")
    assert 0 < context.get_remaining_time_in_millis() <= 30_000
    assert uuid.UUID(context.aws_request_id)

    (env,) = probe.envs  # make_handler ran once, with the function's environment
    assert env["PROBE_ID"] == probe.id
    assert env["TABLE_NAME"] == stream_table
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == deployment.endpoint_url
    assert env["AWS_ENDPOINT_URL_S3"] == deployment.s3_endpoint_url
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == deployment.region_name
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    assert "PROBE_ID" not in os.environ  # two deployments may share a process


# --- batching ------------------------------------------------------------------------


def test_batch_size_is_honoured(ddb: Any, stream_table: str, start_runner: StartRunner) -> None:
    probe = new_probe()
    keys = [f"k{i}" for i in range(7)]
    for key in keys:
        put(ddb, stream_table, key)
    start_runner(probe, batch_size=3).drain()
    assert probe.batches == [keys[0:3], keys[3:6], keys[6:7]]


def test_batching_window_gathers_until_the_batch_is_full_or_the_window_ends(
    ddb: Any, stream_table: str, start_runner: StartRunner
) -> None:
    probe, clock = new_probe(), Clock()
    runner = start_runner(probe, batch_size=3, maximum_batching_window_in_seconds=30, clock=clock)

    put(ddb, stream_table, "a")
    put(ddb, stream_table, "b")
    wait_until(lambda: status(runner).records_buffered == 2)
    assert probe.started == 0  # the window is open and the batch is not full

    put(ddb, stream_table, "c")  # a full batch goes at once
    probe.wait_for(lambda p: len(p.invocations) == 1)
    assert probe.batches == [["a", "b", "c"]]

    put(ddb, stream_table, "d")
    wait_until(lambda: status(runner).records_buffered == 1)
    assert probe.started == 1
    clock.advance(31)  # the window ends
    probe.wait_for(lambda p: len(p.invocations) == 2)
    assert probe.batches == [["a", "b", "c"], ["d"]]


def test_batching_window_can_be_overridden(
    ddb: Any, stream_table: str, start_runner: StartRunner
) -> None:
    probe = new_probe()
    start_runner(probe, maximum_batching_window_in_seconds=300, batching_window=0, clock=Clock())
    put(ddb, stream_table, "a")
    probe.wait_for(lambda p: len(p.invocations) == 1)  # no drain, the clock never moves
    assert probe.batches == [["a"]]


# --- filter criteria -----------------------------------------------------------------


def test_records_matching_no_filter_pattern_are_never_delivered(
    ddb: Any, stream_table: str, start_runner: StartRunner
) -> None:
    probe = new_probe()
    keep, drop = {"kind": {"S": "keep"}}, {"kind": {"S": "drop"}}
    put(ddb, stream_table, "keep1", **keep)
    put(ddb, stream_table, "drop1", **drop)
    put(ddb, stream_table, "keep2", **keep)
    put(ddb, stream_table, "keep1", **keep, v={"N": "2"})  # MODIFY: not in the pattern
    ddb.delete_item(TableName=stream_table, Key={"PK": {"S": "drop1"}})  # REMOVE, no prefix
    put(ddb, stream_table, "gone1", **drop)
    ddb.delete_item(TableName=stream_table, Key={"PK": {"S": "gone1"}})  # REMOVE gone*
    runner = start_runner(
        probe,
        filter_patterns=(
            '{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"kind": {"S": ["keep"]}}}}',
            '{"eventName": ["REMOVE"], "dynamodb": {"Keys": {"PK": {"S": [{"prefix": "gone"}]}}}}',
        ),
    )
    runner.drain()
    delivered = [(r["eventName"], r["dynamodb"]["Keys"]["PK"]["S"])
                 for i in probe.invocations for r in i.event["Records"]]
    assert delivered == [("INSERT", "keep1"), ("INSERT", "keep2"), ("REMOVE", "gone1")]
    assert (status(runner).records_read, status(runner).records_filtered) == (7, 4)

    # Filtered records were checkpointed: later records come alone.
    put(ddb, stream_table, "keep3", **keep)
    put(ddb, stream_table, "drop3", **drop)
    runner.drain()
    assert probe.acknowledged == ["keep1", "keep2", "gone1", "keep3"]


# --- partial batch responses -----------------------------------------------------------


@pytest.mark.parametrize("bisect", [False, True])
def test_partial_batch_failure_retries_from_the_lowest_failed_record(
    ddb: Any, stream_table: str, start_runner: StartRunner, bisect: bool
) -> None:
    probe = new_probe()
    keys = [f"k{i}" for i in range(5)]
    for key in keys:
        put(ddb, stream_table, key)

    def fail_k2_and_k4_once(event: dict[str, Any], context: Any) -> Any:
        if len(probe.invocations) == 0:
            seqs = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
            return {"batchItemFailures": [{"itemIdentifier": seqs[4]}, {"itemIdentifier": seqs[2]}]}
        return {"batchItemFailures": []}

    probe.behaviour = fail_k2_and_k4_once
    start_runner(
        probe,
        batch_size=10,
        function_response_types=("ReportBatchItemFailures",),
        bisect_batch_on_function_error=bisect,
        maximum_retry_attempts=3,
    ).drain()
    # k0 and k1 were checkpointed and are not delivered again.
    assert probe.batches == [keys, ["k2", "k3", "k4"]]
    assert probe.acknowledged == keys


def test_an_invalid_item_identifier_fails_the_whole_batch(
    ddb: Any, stream_table: str, start_runner: StartRunner
) -> None:
    probe, clock = new_probe(), Clock()
    bad_answers: list[Any] = [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"sequenceNumber": "1"}]},
        {"batchItemFailures": [{"itemIdentifier": "999999"}]},
        {"batchItemFailures": "all"},
    ]
    answers: list[Any] = []
    probe.behaviour = lambda event, context: answers.pop(0) if answers else None
    # Batches of exactly two: the window never ends (the clock stays), the size does.
    start_runner(
        probe,
        batch_size=2,
        maximum_batching_window_in_seconds=300,
        function_response_types=("ReportBatchItemFailures",),
        maximum_retry_attempts=1,
        clock=clock,
    )
    for n, answer in enumerate(bad_answers):
        answers.append(answer)
        keys = [f"x{n}a", f"x{n}b"]
        for key in keys:
            put(ddb, stream_table, key)
        probe.wait_for(lambda p: len(p.invocations) == 2 * (n + 1))
        assert probe.batches[-2:] == [keys, keys], answer


def test_batch_item_failures_are_ignored_unless_reported_failures_are_enabled(
    ddb: Any, stream_table: str, start_runner: StartRunner
) -> None:
    probe = new_probe()
    put(ddb, stream_table, "k0")
    put(ddb, stream_table, "k1")
    probe.behaviour = lambda event, context: {
        "batchItemFailures": [{"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}]
    }
    start_runner(probe, maximum_retry_attempts=3).drain()
    assert probe.batches == [["k0", "k1"]]


# --- bisection, retries and the failure destination ----------------------------------


def test_bisect_isolates_a_poison_record_that_ends_in_the_failure_queue(
    ddb: Any, stream_table: str, start_runner: StartRunner
) -> None:
    probe = new_probe()
    keys = [f"r{i}" for i in range(8)]
    for key in keys:
        put(ddb, stream_table, key, poison={"BOOL": key == "r5"})

    def raise_on_poison(event: dict[str, Any], context: Any) -> Any:
        if any(r["dynamodb"]["NewImage"]["poison"]["BOOL"] for r in event["Records"]):
            raise RuntimeError("poison")
        return None

    probe.behaviour = raise_on_poison
    runner = start_runner(
        probe, batch_size=8, bisect_batch_on_function_error=True, maximum_retry_attempts=2
    )
    runner.drain()

    # Every other record succeeded exactly once, in order; the poison was tried alone
    # 1 + MaximumRetryAttempts times.
    assert probe.acknowledged == [k for k in keys if k != "r5"]
    alone = [i for i in probe.invocations if i.keys == ["r5"]]
    assert len(alone) == 3
    poison_seq = alone[0].sequence_numbers[0]

    (message,) = runner.failure_messages(FUNCTION)
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["approximateInvokeCount"] == 3
    assert message["requestContext"]["functionArn"].endswith(f":function:{FUNCTION}")
    assert message["requestContext"]["requestId"] == alone[-1].context.aws_request_id
    assert message["responseContext"] == {
        "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"
    }
    assert message["version"] == "1.0"
    assert ISO_MILLIS.match(message["timestamp"])
    info = message["DDBStreamBatchInfo"]
    arn = stream_arn(ddb, stream_table)
    shards = deployment_shards(runner, arn)
    assert info["shardId"] in shards
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (poison_seq, poison_seq)
    assert info["batchSize"] == 1
    assert info["streamArn"] == arn
    assert ISO_SECONDS.match(info["approximateArrivalOfFirstRecord"])
    assert ISO_SECONDS.match(info["approximateArrivalOfLastRecord"])
    assert runner.failure_messages(FUNCTION) == []  # consumed

    # The shard moved on.
    put(ddb, stream_table, "r8", poison={"BOOL": False})
    runner.drain()
    assert probe.acknowledged[-1] == "r8"


def deployment_shards(runner: StreamRunner, arn: str) -> set[str]:
    streams = runner.host.client("dynamodbstreams")
    return {s["ShardId"] for s in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]}


def test_without_bisect_the_whole_batch_goes_to_the_failure_queue(
    ddb: Any, stream_table: str, start_runner: StartRunner
) -> None:
    probe = new_probe()
    for key in ("a", "b", "c"):
        put(ddb, stream_table, key)

    def fail(event: dict[str, Any], context: Any) -> Any:
        raise ValueError("always")

    probe.behaviour = fail
    runner = start_runner(probe, maximum_retry_attempts=1)
    runner.drain()
    assert probe.batches == [["a", "b", "c"]] * 2
    (message,) = runner.failure_messages(FUNCTION)
    assert message["DDBStreamBatchInfo"]["batchSize"] == 3
    assert message["requestContext"]["approximateInvokeCount"] == 2


# --- record age ------------------------------------------------------------------------


def test_records_older_than_the_maximum_age_go_to_the_destination_undelivered(
    ddb: Any, stream_table: str, start_runner: StartRunner
) -> None:
    probe, clock = new_probe(), Clock()
    for key in ("a", "b", "c"):
        put(ddb, stream_table, key)
    clock.advance(10_000)  # they are now ~3 hours old
    runner = start_runner(probe, maximum_record_age_in_seconds=600, clock=clock)
    runner.drain()
    assert probe.started == 0
    (message,) = runner.failure_messages(FUNCTION)
    assert message["requestContext"]["condition"] == "RecordAgeExceeded"
    assert message["requestContext"]["approximateInvokeCount"] == 0
    assert message["responseContext"]["statusCode"] == 0
    assert message["DDBStreamBatchInfo"]["batchSize"] == 3


def test_a_record_retried_forever_expires_at_the_maximum_age(
    ddb: Any, stream_table: str, start_runner: StartRunner
) -> None:
    probe, clock = new_probe(), Clock()

    def fail(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("still failing")

    probe.behaviour = fail
    put(ddb, stream_table, "a")
    runner = start_runner(
        probe, maximum_retry_attempts=-1, maximum_record_age_in_seconds=600, clock=clock
    )
    probe.wait_for(lambda p: len(p.invocations) >= 2)
    clock.advance(10_000)
    runner.drain()
    (message,) = runner.failure_messages(FUNCTION)
    assert message["requestContext"]["condition"] == "RecordAgeExceeded"
    assert message["requestContext"]["approximateInvokeCount"] >= 2
    assert message["responseContext"]["functionError"] == "Unhandled"

    probe.behaviour, clock.offset = None, 0.0
    put(ddb, stream_table, "b")
    runner.drain()
    assert probe.acknowledged == ["b"]


# --- drain -----------------------------------------------------------------------------


def test_drain_returns_once_every_record_is_processed(
    ddb: Any, stream_table: str, start_runner: StartRunner
) -> None:
    probe = new_probe()
    runner = start_runner(probe, batch_size=10, maximum_batching_window_in_seconds=300)
    keys = [f"k{i:02d}" for i in range(25)]
    for key in keys:
        put(ddb, stream_table, key)
    runner.drain()  # the batching window closes early for a drain
    assert probe.acknowledged == keys
    assert status(runner).caught_up


def test_drain_times_out_while_a_handler_is_stuck(
    ddb: Any, stream_table: str, start_runner: StartRunner
) -> None:
    probe, release = new_probe(), threading.Event()
    probe.behaviour = lambda event, context: release.wait(30) and None
    runner = start_runner(probe)
    put(ddb, stream_table, "a")
    probe.wait_for(lambda p: p.started == 1)
    with pytest.raises(TimeoutError, match=rf"{FUNCTION}/Stream: its handler has been running"):
        runner.drain(timeout=0.2)
    release.set()
    runner.drain(timeout=10)
    assert probe.acknowledged == ["a"]


# --- fault injection -------------------------------------------------------------------


def test_a_handler_wrapper_injects_faults_around_the_real_handler(
    ddb: Any, stream_table: str, start_runner: StartRunner
) -> None:
    probe = new_probe()
    runner = start_runner(probe, bisect_batch_on_function_error=True, maximum_retry_attempts=0)

    def fail_on_bad(real: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
        def handler(event: dict[str, Any], context: Any) -> Any:
            if any(r["dynamodb"]["Keys"]["PK"]["S"] == "bad" for r in event["Records"]):
                raise RuntimeError("injected")
            return real(event, context)

        return handler

    runner.set_handler_wrapper(FUNCTION, fail_on_bad)
    for key in ("ok1", "bad", "ok2"):
        put(ddb, stream_table, key)
    runner.drain()
    runner.set_handler_wrapper(FUNCTION, None)
    put(ddb, stream_table, "bad", v={"N": "2"})  # a put that changes nothing has no record
    runner.drain()
    assert probe.acknowledged == ["ok1", "ok2", "bad"]
    (message,) = runner.failure_messages(FUNCTION)
    assert message["DDBStreamBatchInfo"]["batchSize"] == 1
    assert len(probe.envs) == 1  # the real handler was built once


# --- the template's mappings in a LocalDeployment ---------------------------------------


def test_the_deployment_runs_the_template_mappings(deployment: LocalDeployment, ddb: Any) -> None:
    (projector,) = [s for s in deployment.stream_sources if s.name == "ProjectorFunction/Journal"]
    assert projector.environment["TABLE_NAME"] == deployment.table_name
    assert projector.environment["BUCKET_NAME"] == deployment.bucket
    assert projector.on_failure is not None and projector.on_failure in deployment.queues
    (consumer,) = [s for s in deployment.runner.status() if s.mapping == "ProjectorFunction/Journal"]
    assert consumer.stream_arn == stream_arn(ddb, deployment.table_name)


def test_fault_injection_on_a_template_function_reaches_its_failure_queue(
    deployment: LocalDeployment, ddb: Any
) -> None:
    prefix = f"fault-{uuid.uuid4().hex[:8]}"
    seen: list[str] = []

    def poison(real: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
        def handler(event: dict[str, Any], context: Any) -> Any:
            mine = [r for r in event["Records"] if r["dynamodb"]["Keys"]["PK"]["S"].startswith(prefix)]
            seen.extend(r["dynamodb"]["Keys"]["PK"]["S"] for r in mine)
            if any(r["dynamodb"]["Keys"]["PK"]["S"].endswith("poison") for r in mine):
                raise RuntimeError("injected")
            others = [r for r in event["Records"] if r not in mine]
            return real({**event, "Records": others}, context) if others else None

        return handler

    deployment.drain()
    deployment.failure_messages("ProjectorFunction")  # start from an empty queue
    deployment.runner.set_handler_wrapper("ProjectorFunction", poison)
    try:
        # kind C matches the template's filter; kind V (a view item) does not.
        for name, kind in (("ok", "C"), ("poison", "C"), ("view", "V")):
            ddb.put_item(
                TableName=deployment.table_name,
                Item={"PK": {"S": f"{prefix}-{name}"}, "SK": {"S": "0"}, "kind": {"S": kind}},
            )
        deployment.drain()
    finally:
        deployment.runner.set_handler_wrapper("ProjectorFunction", None)
    assert f"{prefix}-view" not in seen
    assert f"{prefix}-ok" in seen
    (message,) = deployment.failure_messages("ProjectorFunction")
    info = message["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1
    # The template: MaximumRetryAttempts 5.
    assert message["requestContext"]["approximateInvokeCount"] == 6
    assert info["streamArn"] == stream_arn(ddb, deployment.table_name)


def test_deployment_options_without_and_with_handlers() -> None:
    with LocalDeployment(handlers=False) as quiet:
        quiet.drain(timeout=0)  # nothing runs: returns at once
        with pytest.raises(RuntimeError, match="handlers=False"):
            quiet.runner  # noqa: B018
        assert quiet.failure_messages("ProjectorFunction") == []

    seen: list[str] = []

    def spy(real: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
        def handler(event: dict[str, Any], context: Any) -> Any:
            seen.extend(r["dynamodb"]["Keys"]["PK"]["S"] for r in event["Records"])
            return None

        return handler

    with LocalDeployment(batching_window=0, handler_wrappers={"ProjectorFunction": spy}) as dep:
        dep.client("dynamodb").put_item(
            TableName=dep.table_name,
            Item={"PK": {"S": "spied"}, "SK": {"S": "0"}, "kind": {"S": "C"}},
        )
        dep.drain()
        assert seen == ["spied"]
        assert "TABLE_NAME" not in os.environ
