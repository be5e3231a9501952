"""The projector fed by the local stream runner, as Lambda would feed it, under faults:
handler exceptions on random records, S3 errors during offload, throttling, and a poison
record. After retries nothing is lost; the poison record's batch ends in the failure
queue while the rest of the shard proceeds (I5).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.config import Config

from checkpoint_journal._core import keys as _keys
from checkpoint_journal.local import LocalDeployment
from checkpoint_journal.stream_handlers._projector import Projector
from checkpoint_journal.stream_handlers.projector import make_handler, make_projector
from tests.integration.graphs import build_chat
from tests.integration.test_projector import calls, kb_text, observe, projector_items
from tests.integration.test_saver_behaviour import _throttle

BACKENDS = ["moto", "dynamodb-local"]
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class Faults:
    """A handler wrapper whose behaviour a test sets; counts what it injected."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.injected = 0
        self.fail: Callable[[dict[str, Any]], bool] = lambda event: False
        self.replace: Handler | None = None

    def wrap(self, real: Handler) -> Handler:
        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            with self.lock:
                if self.fail(event):
                    self.injected += 1
                    raise RuntimeError("injected handler failure")
            return (self.replace or real)(event, context)

        return handler


@pytest.fixture(scope="module", params=BACKENDS)
def streamed(request: pytest.FixtureRequest) -> Iterator[tuple[LocalDeployment, Faults]]:
    faults = Faults()
    with LocalDeployment(backend=request.param, batching_window=0,
                         handler_wrappers={"ProjectorFunction": faults.wrap}) as dep:
        yield dep, faults


@pytest.fixture()
def faults(streamed: tuple[LocalDeployment, Faults]) -> Iterator[Faults]:
    dep, f = streamed
    dep.drain(timeout=60)
    dep.failure_messages()
    yield f
    f.fail, f.replace, f.injected = (lambda event: False), None, 0
    dep.drain(timeout=60)
    dep.failure_messages()


def write_threads(dep: LocalDeployment, prefix: str, n: int, big: bool = False) -> dict[str, Any]:
    """n threads of two turns each; what a user sees of each, read from the journal."""
    seen = {}
    with dep.saver() as saver:
        graph = build_chat(saver)
        for i in range(n):
            cfg = {"configurable": {"thread_id": f"{prefix}-{i}"}}
            graph.invoke({"messages": ["hi"], "notes": [kb_text(90_000) if big else "n"]}, cfg)
            graph.invoke({"messages": ["again"]}, cfg)
            seen[cfg["configurable"]["thread_id"]] = observe(graph, cfg)
    return seen


def assert_caught_up(dep: LocalDeployment, expected: dict[str, Any]) -> None:
    """Every thread reads the same as before, and from its view in one Query."""
    with dep.saver() as saver:
        graph = build_chat(saver)
        for thread, before in expected.items():
            cfg = {"configurable": {"thread_id": thread}}
            with calls(saver) as seen:
                graph.get_state(cfg)
            assert seen[0] == "Query" and seen.count("Query") == 1, (thread, seen)
            assert observe(graph, cfg) == before


def test_handler_exceptions_on_random_records_lose_nothing(
    streamed: tuple[LocalDeployment, Faults], faults: Faults
) -> None:
    dep, _ = streamed
    rng = random.Random(7)
    attempts: dict[str, int] = {}

    def fail(event: dict[str, Any]) -> bool:
        # A third of the records make their batch fail, twice each, then pass.
        for r in event["Records"]:
            seq = r["dynamodb"]["SequenceNumber"]
            if seq not in attempts:
                attempts[seq] = 0 if rng.random() < 0.33 else 99
            if attempts[seq] < 2:
                attempts[seq] += 1
                return True
        return False

    faults.fail = fail
    expected = write_threads(dep, f"flaky-{uuid.uuid4().hex[:6]}", 4)
    dep.drain(timeout=120)
    assert faults.injected > 0
    assert dep.failure_messages() == []
    assert_caught_up(dep, expected)


def test_s3_errors_during_offload_are_retried(
    streamed: tuple[LocalDeployment, Faults], faults: Faults
) -> None:
    dep, _ = streamed
    projector = make_projector({**dep.aws_env(), "TABLE_NAME": dep.table_name,
                                "BUCKET_NAME": dep.bucket})
    failures = {"left": 3}

    def broken_put(model: Any, **_: Any) -> None:
        if model.name == "PutObject" and failures["left"] > 0:
            failures["left"] -= 1
            raise ConnectionError("injected: S3 unreachable")

    assert projector.s3 is not None
    projector.s3.meta.events.register("before-call.s3.PutObject", broken_put)
    faults.replace = make_handler({}, projector=projector)
    expected = write_threads(dep, f"s3err-{uuid.uuid4().hex[:6]}", 2, big=True)
    dep.drain(timeout=120)
    assert failures["left"] == 0
    assert dep.failure_messages() == []
    assert_caught_up(dep, expected)


def test_throttling_is_absorbed(
    streamed: tuple[LocalDeployment, Faults], faults: Faults
) -> None:
    dep, _ = streamed
    # A projector whose requests get 3 attempts each (botocore's standard retries, as
    # make_projector configures with 8), so that the test stays quick.
    retries = Config(retries={"mode": "standard", "total_max_attempts": 3})
    session = dep.session()
    projector = Projector(
        ddb=session.client("dynamodb", endpoint_url=dep.endpoint_url, config=retries),
        s3=session.client("s3", endpoint_url=dep.s3_endpoint_url, config=retries),
        table_name=dep.table_name, bucket=dep.bucket,
    )
    failed_before = dep.runner.status()[0].failed_invocations
    counter: list[int] = []
    # Seven throttled answers in a row: more than one request's budget, so an invocation
    # fails and the runner's retry (Lambda's) takes over; then the rest pass.
    projector.ddb.meta.events.register("before-send.dynamodb.*", _throttle(7, counter))
    faults.replace = make_handler({}, projector=projector)
    expected = write_threads(dep, f"thr-{uuid.uuid4().hex[:6]}", 2)
    dep.drain(timeout=120)
    assert len(counter) > 7
    assert dep.runner.status()[0].failed_invocations > failed_before
    assert dep.failure_messages() == []
    assert_caught_up(dep, expected)


def test_a_poison_record_goes_to_the_failure_queue_and_the_shard_goes_on(
    streamed: tuple[LocalDeployment, Faults], faults: Faults
) -> None:
    dep, _ = streamed
    tag = uuid.uuid4().hex[:6]
    poison_pk = _keys.thread_pk(f"poison-{tag}-0")
    poisoned: list[str] = []

    def fail(event: dict[str, Any]) -> bool:
        for r in event["Records"]:
            keys = r["dynamodb"]["Keys"]
            if keys["PK"]["S"] == poison_pk and r["eventName"] == "INSERT" and (
                not poisoned or poisoned[0] == r["dynamodb"]["SequenceNumber"]
            ):
                poisoned[:1] = [r["dynamodb"]["SequenceNumber"]]
                return True
        return False

    faults.fail = fail
    expected = write_threads(dep, f"poison-{tag}", 3)
    dep.drain(timeout=120)
    failed = dep.failure_messages()
    assert len(failed) == 1
    info = failed[0]["DDBStreamBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == poisoned[0]
    assert info["batchSize"] == 1
    assert failed[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    # The rest of the shard went on: every other record was folded, and the poisoned
    # thread's view came from its later records (a record is only a doorbell).
    assert_caught_up(dep, expected)
    for thread in expected:
        assert projector_items(dep, thread)
