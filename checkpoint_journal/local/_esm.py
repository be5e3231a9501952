"""The functions' DynamoDB-stream event source mappings and SQS queues in template.yaml.

The local stream runner must run the *same* event source mappings that AWS SAM deploys
(DESIGN §1.4), so this module reads them from ``template.yaml``, using the loader and
the value resolver of :mod:`checkpoint_journal.local._cfn`. Pure: no boto3 here.

* :func:`stream_event_sources` for the stream runner: every DynamoDB-stream event of
  every ``AWS::Serverless::Function``, as a typed :class:`StreamEventSource`;
* :func:`queue_attributes` for ``sqs.create_queue`` (the failure destinations);
* :func:`resource_ids` to list the template's resources of one type.

A property the local runner does not emulate, or a value out of Lambda's bounds, is an
error rather than silently ignored. Values may be literals or ``!Ref`` a template
parameter; a function's environment may also ``!Ref`` a resource the local deployment
created (its local name or URL), and its stream and failure destination are
``!GetAtt`` of template resources. Any other intrinsic function is an error, because it
cannot be evaluated without AWS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from checkpoint_journal.local._cfn import (
    Resolver,
    mapping,
    non_empty_list,
    number,
    required,
)

__all__ = [
    "REPORT_BATCH_ITEM_FAILURES",
    "StreamEventSource",
    "queue_attributes",
    "resource_ids",
    "stream_event_sources",
]


# ---------------------------------------------------------------------------------------
# Lambda: the functions' DynamoDB-stream event source mappings

_FUNCTION_TYPE: Final = "AWS::Serverless::Function"
_QUEUE_TYPE: Final = "AWS::SQS::Queue"

StartingPosition = Literal["TRIM_HORIZON", "LATEST"]

#: The one FunctionResponseTypes value Lambda defines for stream sources.
REPORT_BATCH_ITEM_FAILURES: Final = "ReportBatchItemFailures"

# Lambda's bounds for a DynamoDB event source mapping (the Lambda Developer Guide,
# "Lambda parameters for Amazon DynamoDB event source mappings"): checked here so that a
# template AWS would reject cannot run locally.
_BATCH_SIZE_MAX: Final = 10_000
_BATCHING_WINDOW_MAX_S: Final = 300
_RETRY_ATTEMPTS_MAX: Final = 10_000
# -1 means infinite; otherwise at least a minute and at most a week.
_RECORD_AGE_MIN_S: Final = 60
_RECORD_AGE_MAX_S: Final = 604_800
_PARALLELIZATION_MAX: Final = 10

# Event properties the local runner honours, and those that only matter on AWS.
_EMULATED_EVENT_KEYS: Final = frozenset(
    {
        "Stream",
        "StartingPosition",
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "ParallelizationFactor",
        "BisectBatchOnFunctionError",
        "MaximumRetryAttempts",
        "MaximumRecordAgeInSeconds",
        "FunctionResponseTypes",
        "DestinationConfig",
        "FilterCriteria",
        "Enabled",
    }
)
_AWS_ONLY_EVENT_KEYS: Final = frozenset({"KmsKeyArn", "MetricsConfig"})


@dataclass(frozen=True)
class StreamEventSource:
    """One Lambda event source mapping on a DynamoDB stream, as the local runner runs it.

    :func:`stream_event_sources` builds these from ``template.yaml``; tests may write
    them by hand. Field names follow the CloudFormation properties; defaults are
    Lambda's. Out-of-range values raise ValueError, as CreateEventSourceMapping would.
    """

    function: str
    """Logical id of the AWS::Serverless::Function."""
    event: str
    """Name of the event under the function's ``Events``."""
    handler: str
    """The dotted ``Handler`` path, ``package.module.function``."""
    table: str
    """Logical id of the table whose stream is read (resolved by the runner's ``tables``)."""
    starting_position: StartingPosition = "TRIM_HORIZON"
    environment: Mapping[str, str] = field(default_factory=dict)
    """The function's resolved ``Environment.Variables``."""
    batch_size: int = 100
    maximum_batching_window_in_seconds: float = 0
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: int = -1
    """Retries after the first attempt; -1 retries until the records expire."""
    maximum_record_age_in_seconds: int = -1
    """Records older than this are not delivered but sent to ``on_failure``; -1: no limit."""
    function_response_types: tuple[str, ...] = ()
    filter_patterns: tuple[str, ...] = ()
    """``FilterCriteria.Filters[].Pattern``: JSON texts, ORed."""
    on_failure: str | None = None
    """Logical id of the AWS::SQS::Queue that ``DestinationConfig.OnFailure`` names."""
    parallelization_factor: int = 1
    memory_size: int = 128
    """``MemorySize`` in MB (the context's ``memory_limit_in_mb``)."""
    timeout: int = 3
    """``Timeout`` in seconds (the context's remaining time; not enforced locally)."""
    function_name: str = ""
    """The function's name; empty means its logical id."""

    def __post_init__(self) -> None:
        where = f"{self.function}.Events.{self.event}"
        if self.starting_position not in ("TRIM_HORIZON", "LATEST"):
            raise ValueError(
                f"{where}: StartingPosition {self.starting_position!r} is not TRIM_HORIZON "
                "or LATEST (the only positions a DynamoDB stream has)"
            )
        _bounded(self.batch_size, 1, _BATCH_SIZE_MAX, f"{where}.BatchSize")
        _bounded(
            self.maximum_batching_window_in_seconds,
            0,
            _BATCHING_WINDOW_MAX_S,
            f"{where}.MaximumBatchingWindowInSeconds",
        )
        _bounded(self.maximum_retry_attempts, -1, _RETRY_ATTEMPTS_MAX, f"{where}.MaximumRetryAttempts")
        if self.maximum_record_age_in_seconds != -1:
            _bounded(
                self.maximum_record_age_in_seconds,
                _RECORD_AGE_MIN_S,
                _RECORD_AGE_MAX_S,
                f"{where}.MaximumRecordAgeInSeconds (or -1)",
            )
        _bounded(self.parallelization_factor, 1, _PARALLELIZATION_MAX, f"{where}.ParallelizationFactor")
        unknown = sorted(set(self.function_response_types) - {REPORT_BATCH_ITEM_FAILURES})
        if unknown:
            raise ValueError(
                f"{where}.FunctionResponseTypes: {unknown} (only {REPORT_BATCH_ITEM_FAILURES})"
            )
        if "." not in self.handler:
            raise ValueError(f"{where}: Handler {self.handler!r} is not module.function")
        from checkpoint_journal.local._filters import compile_pattern

        for i, pattern in enumerate(self.filter_patterns):
            try:
                compile_pattern(pattern)
            except ValueError as e:
                raise ValueError(f"{where}.FilterCriteria.Filters[{i}]: {e}") from e

    @property
    def name(self) -> str:
        """``Function/Event``, how logs and errors name this mapping."""
        return f"{self.function}/{self.event}"

    @property
    def reports_batch_item_failures(self) -> bool:
        return REPORT_BATCH_ITEM_FAILURES in self.function_response_types


def _bounded(value: float, low: float, high: float, where: str) -> None:
    if isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{where} is {value!r}; Lambda accepts {low} to {high}")


def resource_ids(template: Mapping[str, Any], resource_type: str) -> list[str]:
    """Logical ids of the template's resources of one type, in template order."""
    resources = template.get("Resources") or {}
    return [
        logical_id
        for logical_id, resource in resources.items()
        if isinstance(resource, Mapping) and resource.get("Type") == resource_type
    ]


def _require_type(template: Mapping[str, Any], logical_id: str, expected_type: str) -> Mapping[str, Any]:
    """The resource definition (Properties are optional for some types, e.g. queues)."""
    resource = (template.get("Resources") or {}).get(logical_id)
    if not isinstance(resource, Mapping) or resource.get("Type") != expected_type:
        found = resource.get("Type") if isinstance(resource, Mapping) else resource
        raise ValueError(
            f"template resource {logical_id!r} is {found!r}, expected {expected_type}"
        )
    return resource


def _merge_globals(global_props: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals.Function merge, for the keys read here: the function's own value
    wins, except that Environment.Variables maps merge key by key."""
    merged = {**global_props, **props}
    genv, fenv = global_props.get("Environment"), props.get("Environment")
    if isinstance(genv, Mapping) and isinstance(fenv, Mapping):
        variables = {**(genv.get("Variables") or {}), **(fenv.get("Variables") or {})}
        merged["Environment"] = {**genv, **fenv, "Variables": variables}
    return merged


def _environment(r: Resolver, value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    variables = mapping(value, where).get("Variables")
    if variables is None:
        return {}
    out: dict[str, str] = {}
    for name, raw in mapping(variables, f"{where}.Variables").items():
        at = f"{where}.Variables.{name}"
        resolved = r.value(raw, at)
        # Lambda environment values are strings; CloudFormation stringifies scalars.
        if isinstance(resolved, bool):
            out[name] = "true" if resolved else "false"
        elif isinstance(resolved, str | int | float):
            out[name] = str(resolved)
        else:
            raise ValueError(f"{at}: expected a string or a number, got {resolved!r}")
    return out


def _get_att(value: Any, attribute: str, where: str) -> str:
    """The logical id in ``{"Fn::GetAtt": [id, attribute]}``."""
    if isinstance(value, Mapping) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        if isinstance(target, str):
            target = target.split(".", 1)
        if (
            isinstance(target, list)
            and len(target) == 2
            and isinstance(target[0], str)
            and target[1] == attribute
        ):
            return target[0]
    raise ValueError(
        f"{where}: expected !GetAtt <LogicalId>.{attribute} naming a resource of this "
        f"template, got {value!r}; the local deployment cannot emulate other resources"
    )


def _stream_event(
    r: Resolver,
    template: Mapping[str, Any],
    function: str,
    event: str,
    definition: Any,
    table_logical_id: str,
    common: dict[str, Any],
) -> StreamEventSource | None:
    at = f"{function}.Properties.Events.{event}"
    props = mapping(required(mapping(definition, at), "Properties", at), f"{at}.Properties")
    where = f"{at}.Properties"
    unknown = sorted(set(props) - _EMULATED_EVENT_KEYS - _AWS_ONLY_EVENT_KEYS)
    if unknown:
        raise ValueError(
            f"{where}: {unknown} are not emulated by the local stream runner "
            f"(it honours {sorted(_EMULATED_EVENT_KEYS)})"
        )
    if not r.boolean(props.get("Enabled", True), f"{where}.Enabled"):
        return None
    table = _get_att(required(props, "Stream", where), "StreamArn", f"{where}.Stream")
    if table != table_logical_id:
        raise ValueError(
            f"{where}.Stream: reads the stream of {table!r}, but the local deployment "
            f"creates (and streams) only {table_logical_id!r}"
        )

    on_failure = None
    if props.get("DestinationConfig") is not None:
        dest_at = f"{where}.DestinationConfig"
        failure = mapping(props["DestinationConfig"], dest_at).get("OnFailure")
        if failure is not None:
            failure = mapping(failure, f"{dest_at}.OnFailure")
            kind = r.string(failure.get("Type", "SQS"), f"{dest_at}.OnFailure.Type")
            if kind != "SQS":
                raise ValueError(
                    f"{dest_at}.OnFailure: a {kind} destination is not emulated locally "
                    "(only SQS)"
                )
            on_failure = _get_att(
                required(failure, "Destination", f"{dest_at}.OnFailure"),
                "Arn",
                f"{dest_at}.OnFailure.Destination",
            )
            _require_type(template, on_failure, _QUEUE_TYPE)

    patterns: list[str] = []
    if props.get("FilterCriteria") is not None:
        fc_at = f"{where}.FilterCriteria"
        filters = non_empty_list(required(mapping(props["FilterCriteria"], fc_at), "Filters", fc_at), fc_at)
        for i, item in enumerate(filters):
            p_at = f"{fc_at}.Filters[{i}]"
            pattern = r.value(required(mapping(item, p_at), "Pattern", p_at), f"{p_at}.Pattern")
            patterns.append(pattern if isinstance(pattern, str) else json.dumps(pattern))

    types: tuple[str, ...] = ()
    if props.get("FunctionResponseTypes") is not None:
        types_at = f"{where}.FunctionResponseTypes"
        types = tuple(
            r.string(t, types_at) for t in non_empty_list(props["FunctionResponseTypes"], types_at)
        )

    window = r.value(props.get("MaximumBatchingWindowInSeconds", 0), f"{where}.MaximumBatchingWindowInSeconds")
    return StreamEventSource(
        function=function,
        event=event,
        table=table,
        starting_position=r.string(  # type: ignore[arg-type]  # checked in __post_init__
            required(props, "StartingPosition", where), f"{where}.StartingPosition"
        ),
        batch_size=r.integer(props.get("BatchSize", 100), f"{where}.BatchSize"),
        maximum_batching_window_in_seconds=number(window, f"{where}.MaximumBatchingWindowInSeconds"),
        bisect_batch_on_function_error=r.boolean(
            props.get("BisectBatchOnFunctionError", False), f"{where}.BisectBatchOnFunctionError"
        ),
        maximum_retry_attempts=r.integer(
            props.get("MaximumRetryAttempts", -1), f"{where}.MaximumRetryAttempts"
        ),
        maximum_record_age_in_seconds=r.integer(
            props.get("MaximumRecordAgeInSeconds", -1), f"{where}.MaximumRecordAgeInSeconds"
        ),
        parallelization_factor=r.integer(
            props.get("ParallelizationFactor", 1), f"{where}.ParallelizationFactor"
        ),
        function_response_types=types,
        filter_patterns=tuple(patterns),
        on_failure=on_failure,
        **common,
    )


def stream_event_sources(
    template: Mapping[str, Any],
    *,
    refs: Mapping[str, str],
    table_logical_id: str = "JournalTable",
    parameters: Mapping[str, Any] | None = None,
) -> list[StreamEventSource]:
    """Every enabled ``Type: DynamoDB`` event of every AWS::Serverless::Function.

    ``refs`` says what ``!Ref`` gives for the resources the local deployment created
    (e.g. ``{"JournalTable": <local table name>, "BlobBucket": <local bucket>,
    "ProjectorFailureQueue": <local queue URL>}``); environment variables may be
    literals, such a Ref, or a Ref to a template parameter (its Default or the override
    in ``parameters``). ``Globals.Function`` applies as SAM merges it.

    Raises:
        ValueError: a function lacks Handler; a value uses another intrinsic function;
            an event reads another table's stream, has an on-failure destination that is
            not one of the template's SQS queues, uses a property the local runner does
            not emulate (e.g. TumblingWindowInSeconds), or is out of Lambda's bounds.
    """
    r = Resolver(template, parameters, resources=refs)
    global_section = template.get("Globals") or {}
    global_props = global_section.get("Function") or {} if isinstance(global_section, Mapping) else {}
    sources: list[StreamEventSource] = []
    for function in resource_ids(template, _FUNCTION_TYPE):
        own = template["Resources"][function].get("Properties") or {}
        props = _merge_globals(mapping(global_props, "Globals.Function"), mapping(own, function))
        events = props.get("Events") or {}
        streams = [
            (name, ev)
            for name, ev in mapping(events, f"{function}.Properties.Events").items()
            if isinstance(ev, Mapping) and ev.get("Type") == "DynamoDB"
        ]
        if not streams:
            continue
        where = f"{function}.Properties"
        name = props.get("FunctionName")
        common: dict[str, Any] = {
            "handler": r.string(required(props, "Handler", where), f"{where}.Handler"),
            "environment": _environment(r, props.get("Environment"), f"{where}.Environment"),
            "memory_size": r.integer(props.get("MemorySize", 128), f"{where}.MemorySize"),
            "timeout": r.integer(props.get("Timeout", 3), f"{where}.Timeout"),
            "function_name": r.string(name, f"{where}.FunctionName") if name is not None else "",
        }
        for event, definition in streams:
            source = _stream_event(r, template, function, event, definition, table_logical_id, common)
            if source is not None:
                sources.append(source)
    return sources


# ---------------------------------------------------------------------------------------
# SQS

# CloudFormation property -> SQS queue attribute, for what behaves the same locally.
_QUEUE_ATTRIBUTES: Final[Mapping[str, str]] = {
    "ContentBasedDeduplication": "ContentBasedDeduplication",
    "DeduplicationScope": "DeduplicationScope",
    "DelaySeconds": "DelaySeconds",
    "FifoQueue": "FifoQueue",
    "FifoThroughputLimit": "FifoThroughputLimit",
    "MaximumMessageSize": "MaximumMessageSize",
    "MessageRetentionPeriod": "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout": "VisibilityTimeout",
}
# Encryption and tags only matter on AWS; the local name is ours (names must be unique
# per moto process).
_QUEUE_AWS_ONLY: Final = frozenset(
    {"SqsManagedSseEnabled", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "Tags", "QueueName"}
)


def queue_attributes(
    template: Mapping[str, Any],
    logical_id: str,
    *,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The ``Attributes`` for boto3 ``sqs.create_queue`` that build the template's queue.

    A FIFO queue (``"FifoQueue": "true"``) needs a name ending in ``.fifo``.

    Raises:
        ValueError: the resource is missing or not a queue, or uses a setting not
            translated here (e.g. RedrivePolicy), so local and AWS would differ.
    """
    props = mapping(_require_type(template, logical_id, _QUEUE_TYPE).get("Properties") or {}, logical_id)
    r = Resolver(template, parameters)
    where = f"{logical_id}.Properties"
    unknown = sorted(set(props) - set(_QUEUE_ATTRIBUTES) - _QUEUE_AWS_ONLY)
    if unknown:
        raise ValueError(f"{where}: queue settings {unknown} are not translated locally")
    out: dict[str, str] = {}
    for key, attribute in _QUEUE_ATTRIBUTES.items():
        if props.get(key) is None:
            continue
        at = f"{where}.{key}"
        if key in ("ContentBasedDeduplication", "FifoQueue"):
            out[attribute] = "true" if r.boolean(props[key], at) else "false"
        elif key in ("DeduplicationScope", "FifoThroughputLimit"):
            out[attribute] = r.string(props[key], at)
        else:
            out[attribute] = str(r.integer(props[key], at))
    return out
