"""Lambda's side of a DynamoDB-stream event source mapping, as data and pure functions.

No boto3 and no threads here (the runner in ``_runner.py`` does the I/O): the shape of
what a function receives (:func:`to_stream_record`), how its answer is read
(:func:`interpret_response`), the record Lambda sends to an on-failure destination
(:func:`failure_message`), and how one batch is delivered with retries, bisection and
record-age expiry (:func:`deliver`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypedDict

from checkpoint_journal.local._esm import StreamEventSource

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "RECORD_AGE_EXCEEDED",
    "RETRY_ATTEMPTS_EXHAUSTED",
    "FailureMessage",
    "LambdaContext",
    "Outcome",
    "StreamRecord",
    "batch_length",
    "deliver",
    "failure_message",
    "function_arn",
    "interpret_response",
    "to_stream_record",
]

#: Lambda's payload limit for a synchronous invocation: an event source mapping cuts a
#: batch there even below BatchSize (100 items near DynamoDB's 400 KB limit would not fit).
MAX_PAYLOAD_BYTES: Final = 6 * 1024 * 1024

#: The account in local ARNs: moto's default account id.
LOCAL_ACCOUNT_ID: Final = "123456789012"

RETRY_ATTEMPTS_EXHAUSTED: Final = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED: Final = "RecordAgeExceeded"
Condition = Literal["RetryAttemptsExhausted", "RecordAgeExceeded"]

_EVENT_NAMES: Final = frozenset({"INSERT", "MODIFY", "REMOVE"})
# What Lambda shows for a deletion by DynamoDB's TTL process.
_TTL_IDENTITY: Final[Mapping[str, str]] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


# ---------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class StreamRecord:
    """One stream record, already in the shape Lambda delivers it."""

    sequence_number: str
    shard_id: str
    arrival: float
    """ApproximateCreationDateTime in epoch seconds (whole seconds, as DynamoDB gives it)."""
    record: Mapping[str, Any]
    """The Lambda-shaped record (JSON types only). Handlers get fresh copies of it."""
    size: int
    """Bytes the record adds to an invocation payload (its JSON length)."""


def _encode_value(value: Any) -> Any:
    """A DynamoDB AttributeValue as JSON: B and BS base64, M and L recursively."""
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for kind, inner in value.items():
        if kind == "B":
            out[kind] = _b64(inner)
        elif kind == "BS":
            out[kind] = [_b64(b) for b in inner]
        elif kind == "M":
            out[kind] = {k: _encode_value(v) for k, v in inner.items()}
        elif kind == "L":
            out[kind] = [_encode_value(v) for v in inner]
        elif isinstance(inner, list):
            out[kind] = list(inner)
        else:
            out[kind] = inner
    return out


def _b64(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)  # already base64 text (a record that came in as JSON)


def _image(image: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _encode_value(v) for name, v in image.items()}


def _epoch_seconds(value: Any) -> float:
    if isinstance(value, dt.datetime):
        seconds = value.timestamp()
    elif isinstance(value, int | float | str):
        seconds = float(value)
    else:
        raise TypeError(f"ApproximateCreationDateTime of unexpected type {type(value).__name__}")
    # DynamoDB Streams rounds down to the second (moto keeps milliseconds).
    return float(math.floor(seconds))


def _lambda_identity(identity: Mapping[str, Any]) -> dict[str, Any]:
    """A record's ``userIdentity`` as Lambda spells it (``type``, ``principalId``): the
    DynamoDB Streams API, and so boto3, spells it ``Type`` and ``PrincipalId``."""
    return {
        "type": identity.get("type", identity.get("Type")),
        "principalId": identity.get("principalId", identity.get("PrincipalId")),
    }


def to_stream_record(
    raw: Mapping[str, Any], *, region: str, stream_arn: str, shard_id: str
) -> StreamRecord:
    """A record as boto3's ``get_records`` returns it -> the record a Lambda function gets.

    Binary values become base64 strings, numbers stay strings, the creation time becomes
    epoch seconds, ``eventVersion`` is ``1.1``, ``userIdentity`` is spelt as Lambda
    spells it and ``eventSourceARN`` is the stream. A TTL deletion that DynamoDB Local
    reports under an unknown event name (``UNKNOWN_TO_SDK_VERSION``) and without a new
    image becomes the ``REMOVE`` with the service identity that Lambda delivers for TTL
    deletions on AWS.
    """
    ddb = raw["dynamodb"]
    arrival = _epoch_seconds(ddb["ApproximateCreationDateTime"])
    name = raw.get("eventName")
    identity = raw.get("userIdentity")
    if name not in _EVENT_NAMES and "NewImage" not in ddb:
        name, identity = "REMOVE", identity or dict(_TTL_IDENTITY)

    body: dict[str, Any] = {"ApproximateCreationDateTime": arrival, "Keys": _image(ddb["Keys"])}
    for image in ("NewImage", "OldImage"):
        if image in ddb:
            body[image] = _image(ddb[image])
    body["SequenceNumber"] = ddb["SequenceNumber"]
    body["SizeBytes"] = ddb["SizeBytes"]
    body["StreamViewType"] = ddb["StreamViewType"]

    record: dict[str, Any] = {
        "eventID": raw["eventID"],
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": body,
    }
    if identity is not None:
        record["userIdentity"] = _lambda_identity(identity)
    record["eventSourceARN"] = stream_arn
    return StreamRecord(
        sequence_number=str(ddb["SequenceNumber"]),
        shard_id=shard_id,
        arrival=arrival,
        record=record,
        size=len(json.dumps(record, separators=(",", ":"))),
    )


def batch_length(buffered: Sequence[StreamRecord], batch_size: int) -> int:
    """How many of the buffered records (oldest first) the next batch takes: at most
    ``batch_size``, and no more than fit in :data:`MAX_PAYLOAD_BYTES` (always at least one)."""
    count = size = 0
    for record in buffered:
        if count >= batch_size or (count and size + record.size > MAX_PAYLOAD_BYTES):
            break
        count, size = count + 1, size + record.size
    return count


def fresh_event(records: Sequence[StreamRecord]) -> dict[str, Any]:
    """The invocation event: deep copies, so a handler that mutates it changes no retry."""
    return {"Records": [json.loads(json.dumps(r.record)) for r in records]}


# ---------------------------------------------------------------------------------------
# Responses


@dataclass(frozen=True)
class Outcome:
    """How one invocation ended, as Lambda judges it."""

    ok: bool
    request_id: str
    first_failed: int = 0
    """For a failure: index of the lowest reported failed record (0: the whole batch)."""
    function_error: str = ""
    """``Unhandled`` when the function raised; empty when it answered."""
    status_code: int = 200
    """The Invoke API status: 200 even for a function error, as Lambda reports it."""

    @classmethod
    def success(cls, request_id: str) -> Outcome:
        return cls(ok=True, request_id=request_id)

    @classmethod
    def error(cls, request_id: str) -> Outcome:
        return cls(ok=False, request_id=request_id, function_error="Unhandled")


def interpret_response(
    response: Any, sequence_numbers: Sequence[str], *, report_failures: bool, request_id: str
) -> Outcome:
    """Read a function's JSON answer as Lambda reads a stream batch response.

    Without ReportBatchItemFailures any answer is a success. With it, ``null``, ``{}``,
    and a null or empty ``batchItemFailures`` are a success; a ``batchItemFailures``
    list makes the lowest listed sequence number the point to retry from; an entry
    without ``itemIdentifier``, with a null or empty one, or one naming a record that is
    not in the batch fails the whole batch. (Lambda leaves other answers, e.g. a bare
    string, unspecified; they fail the whole batch here, so a broken handler shows.)
    """
    if not report_failures or response is None:
        return Outcome.success(request_id)
    whole = Outcome(ok=False, request_id=request_id)
    if not isinstance(response, Mapping):
        return whole
    failures = response.get("batchItemFailures")
    if failures is None or failures == []:
        return Outcome.success(request_id)
    if not isinstance(failures, list):
        return whole
    index = {seq: i for i, seq in enumerate(sequence_numbers)}
    lowest = len(sequence_numbers)
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or identifier not in index:
            return whole
        lowest = min(lowest, index[identifier])
    return Outcome(ok=False, request_id=request_id, first_failed=lowest)


# ---------------------------------------------------------------------------------------
# On-failure destination


class RequestContext(TypedDict):
    requestId: str
    functionArn: str
    condition: str
    approximateInvokeCount: int


class ResponseContext(TypedDict):
    statusCode: int
    executedVersion: str
    functionError: str


class DDBStreamBatchInfo(TypedDict):
    shardId: str
    startSequenceNumber: str
    endSequenceNumber: str
    approximateArrivalOfFirstRecord: str
    """ISO 8601, whole seconds, UTC (``2019-11-14T00:38:04Z``)."""
    approximateArrivalOfLastRecord: str
    batchSize: int
    streamArn: str


FailureMessage = TypedDict(
    "FailureMessage",
    {
        "requestContext": RequestContext,
        "responseContext": ResponseContext,
        "version": str,
        "timestamp": str,
        "DDBStreamBatchInfo": DDBStreamBatchInfo,
    },
)
"""The JSON body Lambda sends to a stream mapping's on-failure destination: where the
records are (shard and sequence-number range), never the records themselves."""


def _iso(epoch: float, *, millis: bool) -> str:
    moment = dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def function_arn(region: str, function_name: str) -> str:
    return f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT_ID}:function:{function_name}"


def failure_message(
    records: Sequence[StreamRecord],
    *,
    condition: Condition,
    invoke_count: int,
    last: Outcome | None,
    request_id: str,
    function_arn: str,
    stream_arn: str,
    now: float,
) -> FailureMessage:
    """The on-failure record for ``records`` (consecutive, one shard).

    ``last`` is the batch's last invocation (None if it never ran, e.g. records that
    were too old before their first attempt: then the status code is 0).
    """
    first, final = records[0], records[-1]
    return {
        "requestContext": {
            "requestId": last.request_id if last is not None else request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": {
            "statusCode": last.status_code if last is not None else 0,
            "executedVersion": "$LATEST" if last is not None else "",
            "functionError": last.function_error if last is not None else "",
        },
        "version": "1.0",
        "timestamp": _iso(now, millis=True),
        "DDBStreamBatchInfo": {
            "shardId": first.shard_id,
            "startSequenceNumber": first.sequence_number,
            "endSequenceNumber": final.sequence_number,
            "approximateArrivalOfFirstRecord": _iso(first.arrival, millis=False),
            "approximateArrivalOfLastRecord": _iso(final.arrival, millis=False),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


# ---------------------------------------------------------------------------------------
# The context object


class LambdaContext:
    """What a Python Lambda handler gets as ``context`` (the attributes Powertools reads)."""

    function_version = "$LATEST"
    identity = None
    client_context = None

    def __init__(
        self,
        *,
        function_name: str,
        invoked_function_arn: str,
        memory_limit_in_mb: int,
        aws_request_id: str,
        timeout_seconds: int,
    ) -> None:
        self.function_name = function_name
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = aws_request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/[$LATEST]{aws_request_id.replace('-', '')}"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the function's Timeout (reported, not enforced locally)."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# ---------------------------------------------------------------------------------------
# Delivering one batch

# Lambda backs off between retries of a stream batch. Locally the first retries are
# immediate (tests stay fast), later ones back off up to a second, so that a record
# retried forever (MaximumRetryAttempts -1) does not spin a CPU.
_IMMEDIATE_RETRIES: Final = 3
_BACKOFF_FIRST_S: Final = 0.05
_BACKOFF_MAX_S: Final = 1.0


def retry_delay(retries: int) -> float:
    """Seconds to wait before retry number ``retries + 1``."""
    if retries < _IMMEDIATE_RETRIES:
        return 0.0
    return min(_BACKOFF_FIRST_S * 2.0 ** (retries - _IMMEDIATE_RETRIES), _BACKOFF_MAX_S)


Invoke = Callable[[Sequence[StreamRecord]], Outcome]
DeadLetter = Callable[[Sequence[StreamRecord], Condition, int, "Outcome | None"], None]


def deliver(
    batch: Sequence[StreamRecord],
    *,
    source: StreamEventSource,
    invoke: Invoke,
    dead_letter: DeadLetter,
    clock: Callable[[], float],
    pause: Callable[[float], bool],
) -> bool:
    """Deliver one batch of one shard until every record succeeded or was given up on.

    Lambda's rules, in order, for each (sub-)batch:

    * records older than MaximumRecordAgeInSeconds (by ``clock``, epoch seconds) are not
      delivered: ``dead_letter(..., "RecordAgeExceeded", ...)``;
    * a success checkpoints the whole batch;
    * a partial failure (``Outcome.first_failed`` > 0) checkpoints the records before
      the lowest failed one and retries from it: with BisectBatchOnFunctionError that is
      the bisection "at the returned sequence number" and costs no retry attempt,
      without it it is a retry;
    * a whole-batch failure (the function raised, answered an invalid identifier, or
      reported the first record) with BisectBatchOnFunctionError and more than one record
      splits the batch in two halves, delivered in order; bisecting costs no retry
      attempt;
    * otherwise the batch is retried, up to MaximumRetryAttempts times (-1: without
      limit), then ``dead_letter(..., "RetryAttemptsExhausted", ...)`` and the shard
      moves on.

    ``pause(seconds)`` waits before a retry and returns True when the runner is stopping
    (then this returns False with the rest undelivered). Returns True when done.
    """
    # A stack of (records, retries so far, invocations of exactly these records).
    pending: list[tuple[Sequence[StreamRecord], int, int]] = [(batch, 0, 0)]
    max_age = source.maximum_record_age_in_seconds
    max_retries = source.maximum_retry_attempts
    last: Outcome | None = None
    while pending:
        records, retries, invokes = pending.pop()
        if max_age >= 0:
            now = clock()
            expired = 0
            # Records in a shard arrive in order: the too-old ones are a prefix.
            while expired < len(records) and now - records[expired].arrival > max_age:
                expired += 1
            if expired:
                dead_letter(records[:expired], RECORD_AGE_EXCEEDED, invokes, last if invokes else None)
                records = records[expired:]
                if not records:
                    continue
        outcome = invoke(records)
        invokes += 1
        if outcome.ok:
            continue
        last = outcome
        if outcome.first_failed > 0:
            rest = records[outcome.first_failed :]
            if source.bisect_batch_on_function_error:
                pending.append((rest, retries, 0))
                continue
            records = rest
        elif source.bisect_batch_on_function_error and len(records) > 1:
            middle = len(records) // 2
            pending.append((records[middle:], retries, 0))
            pending.append((records[:middle], retries, 0))
            continue
        if 0 <= max_retries <= retries:
            dead_letter(records, RETRY_ATTEMPTS_EXHAUSTED, invokes, outcome)
            continue
        if pause(retry_delay(retries)):
            return False
        pending.append((records, retries + 1, invokes))
    return True
