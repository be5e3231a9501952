"""template.yaml as the one source of truth for the local deployment. Pure: no boto3 here.

The embedded deployment (moto server, DynamoDB Local) must build the *same* table and
bucket that AWS SAM deploys (DESIGN §1.4), so instead of a second description of them in
Python, this module reads ``template.yaml`` and translates the CloudFormation properties
into the keyword arguments of the boto3 calls that create them locally:

* :func:`table_create_kwargs` for ``dynamodb.create_table`` (keys, billing, stream,
  indexes); :func:`table_ttl_attribute` for ``update_time_to_live``, which
  ``create_table`` cannot take;
* :func:`bucket_lifecycle_rules` for ``s3.put_bucket_lifecycle_configuration``;
* :func:`queue_attributes` for ``sqs.create_queue`` (the failure destinations);
* :func:`stream_event_sources` for the stream runner: every DynamoDB-stream event of
  every ``AWS::Serverless::Function``, as a typed :class:`StreamEventSource`.

Settings that only matter on AWS (point-in-time recovery, KMS encryption, deletion
protection, public access blocks, bucket policy) are left out on purpose.

Values may be written as ``!Ref SomeParameter``: they resolve to the parameter's
``Default`` or to an override passed in ``parameters``. A function's environment may also
``!Ref`` a resource the local deployment created (its local name or URL), and its stream
and failure destination are ``!GetAtt`` of template resources. Any other intrinsic
function in a value this module needs is an error, because it cannot be evaluated
without AWS.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import yaml

__all__ = [
    "REPORT_BATCH_ITEM_FAILURES",
    "TEMPLATE_ENV",
    "StreamEventSource",
    "bucket_lifecycle_rules",
    "load_template",
    "queue_attributes",
    "resource_ids",
    "stream_event_sources",
    "table_create_kwargs",
    "table_ttl_attribute",
    "template_path",
]

#: Environment variable naming a template file to use instead of the packaged one.
TEMPLATE_ENV: Final = "CHECKPOINT_JOURNAL_TEMPLATE"

_TABLE_TYPE: Final = "AWS::DynamoDB::Table"
_BUCKET_TYPE: Final = "AWS::S3::Bucket"

# CloudFormation's short-form tags and the long-form key each one stands for.
_SHORT_FORMS: Final[Mapping[str, str]] = {
    "!Ref": "Ref",
    "!Condition": "Condition",
    "!Sub": "Fn::Sub",
    "!GetAtt": "Fn::GetAtt",
    "!If": "Fn::If",
    "!Equals": "Fn::Equals",
    "!Not": "Fn::Not",
    "!And": "Fn::And",
    "!Or": "Fn::Or",
    "!Join": "Fn::Join",
    "!Select": "Fn::Select",
    "!Split": "Fn::Split",
    "!FindInMap": "Fn::FindInMap",
    "!Base64": "Fn::Base64",
    "!Cidr": "Fn::Cidr",
    "!ImportValue": "Fn::ImportValue",
    "!GetAZs": "Fn::GetAZs",
}

_TIMESTAMP_TAG: Final = "tag:yaml.org,2002:timestamp"


# ---------------------------------------------------------------------------------------
# Loading


def template_path() -> pathlib.Path:
    """Where the template is: ``$CHECKPOINT_JOURNAL_TEMPLATE`` if set, else the package's.

    The package's ``checkpoint_journal/template.yaml`` is, in the repository, a symlink to
    the root ``template.yaml`` that SAM deploys, and a copy of it in an installed wheel.

    Raises:
        FileNotFoundError: the chosen file does not exist.
    """
    override = os.environ.get(TEMPLATE_ENV)
    if override:
        path = pathlib.Path(override).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{TEMPLATE_ENV}={override!r} does not name an existing file: point it at "
                "the SAM template.yaml, or unset it to use the packaged template"
            )
        return path
    path = pathlib.Path(__file__).parent.parent / "template.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"no SAM template at {path}: in a source checkout it is the symlink "
            "checkpoint_journal/template.yaml -> ../template.yaml (recreate it with "
            "`ln -s ../template.yaml checkpoint_journal/template.yaml`); or set "
            f"{TEMPLATE_ENV} to the template's path"
        )
    return path


def _construct_plain(loader: Any, node: Any) -> Any:
    """The value under a tag, built as if the tag were absent."""
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _construct_short_form(loader: Any, tag_suffix: str, node: Any) -> dict[str, Any]:
    """``!Fn value`` -> ``{"Fn::Fn": value}`` (``!Ref`` and ``!Condition`` lose no prefix)."""
    key = _SHORT_FORMS.get("!" + tag_suffix)
    if key is None:
        raise yaml.constructor.ConstructorError(
            None, None, f"unknown CloudFormation short-form tag !{tag_suffix}", node.start_mark
        )
    value = _construct_plain(loader, node)
    if key == "Fn::GetAtt" and isinstance(value, str):
        # "Resource.Attribute": the logical id has no dot, the attribute may
        # (e.g. Outputs.Name of a nested stack), so split on the first dot only.
        resource, dot, attribute = value.partition(".")
        if not dot or not resource or not attribute:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"!GetAtt {value!r} is not of the form Resource.Attribute",
                node.start_mark,
            )
        value = [resource, attribute]
    return {key: value}


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc, unused-ignore]
    """A SafeLoader that reads CloudFormation YAML as CloudFormation does.

    Short-form tags become their long-form dicts, and timestamps stay strings (an
    unquoted ``AWSTemplateFormatVersion: 2010-09-09`` is a string to CloudFormation,
    a ``datetime.date`` to plain YAML).
    """


# A per-class copy, so SafeLoader itself keeps resolving timestamps.
_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CfnLoader.add_multi_constructor("!", _construct_short_form)


def load_template(path: pathlib.Path | None = None) -> dict[str, Any]:
    """Parse the template (by default :func:`template_path`) into plain long-form data.

    Raises:
        FileNotFoundError: no template file.
        ValueError: the file is not a CloudFormation template (no ``Resources`` mapping),
            or uses a ``!`` tag that CloudFormation does not define.
    """
    if path is None:
        path = template_path()
    text = path.read_text(encoding="utf-8")
    try:
        # The loader is a SafeLoader: no arbitrary Python objects can be built.
        data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid CloudFormation YAML: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise ValueError(f"{path}: not a CloudFormation template (no Resources mapping)")
    return data


# ---------------------------------------------------------------------------------------
# Resolving values


def _resource_properties(
    template: Mapping[str, Any], logical_id: str, expected_type: str
) -> dict[str, Any]:
    resources = template.get("Resources")
    if not isinstance(resources, Mapping) or logical_id not in resources:
        raise ValueError(f"template has no resource {logical_id!r} (a {expected_type})")
    resource = resources[logical_id]
    if not isinstance(resource, Mapping) or resource.get("Type") != expected_type:
        found = resource.get("Type") if isinstance(resource, Mapping) else resource
        raise ValueError(
            f"template resource {logical_id!r} is {found!r}, expected {expected_type}"
        )
    properties = resource.get("Properties")
    if not isinstance(properties, dict):
        raise ValueError(f"template resource {logical_id!r} has no Properties")
    return properties


class _Resolver:
    """Evaluates the values this module reads: literals, and ``Ref`` to a parameter.

    ``resources`` maps logical ids (or pseudo parameters) to what ``Ref`` gives for them
    locally (a table's or bucket's local name, a queue's local URL); without it, a
    ``Ref`` must name a template parameter.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        overrides: Mapping[str, Any] | None,
        resources: Mapping[str, str] | None = None,
    ):
        params = template.get("Parameters") or {}
        self._params: Mapping[str, Any] = params if isinstance(params, Mapping) else {}
        self._overrides: Mapping[str, Any] = overrides or {}
        self._resources: Mapping[str, str] = resources or {}

    def value(self, value: Any, where: str) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                if isinstance(arg, str) and arg in self._resources:
                    return self._resources[arg]
                return self._parameter(arg, where)
            if key.startswith("Fn::") or key == "Condition":
                refs = " or a resource created locally" if self._resources else ""
                raise ValueError(
                    f"{where}: {key} cannot be evaluated locally; only a literal or "
                    f"a Ref to a template parameter{refs} is supported here"
                )
        if isinstance(value, dict):
            return {k: self.value(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    def _parameter(self, name: Any, where: str) -> Any:
        if not isinstance(name, str) or name not in self._params:
            if self._resources:
                raise ValueError(
                    f"{where}: Ref {name!r} is neither a template parameter nor a resource "
                    f"the local deployment creates ({', '.join(sorted(self._resources))}), "
                    "so it cannot be evaluated locally"
                )
            raise ValueError(
                f"{where}: Ref {name!r} is not a template parameter, so it cannot be "
                "evaluated locally"
            )
        definition = self._params[name]
        if name in self._overrides:
            raw = self._overrides[name]
        elif isinstance(definition, Mapping) and "Default" in definition:
            raw = definition["Default"]
        else:
            raise ValueError(
                f"{where}: parameter {name!r} has no Default; pass a value for it "
                "in parameters="
            )
        ptype = definition.get("Type") if isinstance(definition, Mapping) else None
        if ptype == "Number":
            return _number(raw, f"{where} (parameter {name})")
        return raw

    def string(self, value: Any, where: str) -> str:
        resolved = self.value(value, where)
        if not isinstance(resolved, str):
            raise ValueError(f"{where}: expected a string, got {resolved!r}")
        return resolved

    def integer(self, value: Any, where: str) -> int:
        resolved = _number(self.value(value, where), where)
        if not isinstance(resolved, int):
            raise ValueError(f"{where}: expected a whole number, got {resolved!r}")
        return resolved

    def boolean(self, value: Any, where: str) -> bool:
        resolved = self.value(value, where)
        # CloudFormation accepts booleans and their string spellings alike.
        if isinstance(resolved, bool):
            return resolved
        if isinstance(resolved, str) and resolved.lower() in ("true", "false"):
            return resolved.lower() == "true"
        raise ValueError(f"{where}: expected true or false, got {resolved!r}")


def _number(raw: Any, where: str) -> int | float:
    if isinstance(raw, bool):
        raise ValueError(f"{where}: expected a number, got {raw!r}")
    if isinstance(raw, int | float):
        return int(raw) if float(raw).is_integer() else raw
    if isinstance(raw, str):
        try:
            parsed = float(raw)
        except ValueError:
            pass
        else:
            return int(parsed) if parsed.is_integer() else parsed
    raise ValueError(f"{where}: expected a number, got {raw!r}")


def _required(props: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in props or props[key] is None:
        raise ValueError(f"{where} has no {key}")
    return props[key]


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: expected a non-empty list, got {value!r}")
    return value


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------
# DynamoDB


def _key_schema(r: _Resolver, value: Any, where: str) -> list[dict[str, str]]:
    out = []
    for i, element in enumerate(_list(value, where)):
        at = f"{where}[{i}]"
        element = _mapping(element, at)
        out.append(
            {
                "AttributeName": r.string(_required(element, "AttributeName", at), at),
                "KeyType": r.string(_required(element, "KeyType", at), at),
            }
        )
    return out


def _projection(r: _Resolver, value: Any, where: str) -> dict[str, Any]:
    projection = _mapping(value, where)
    out: dict[str, Any] = {}
    if "ProjectionType" in projection:
        out["ProjectionType"] = r.string(projection["ProjectionType"], where)
    if "NonKeyAttributes" in projection:
        out["NonKeyAttributes"] = [
            r.string(a, where) for a in _list(projection["NonKeyAttributes"], where)
        ]
    return out


def _throughput(r: _Resolver, value: Any, where: str) -> dict[str, int]:
    throughput = _mapping(value, where)
    return {
        key: r.integer(_required(throughput, key, where), f"{where}.{key}")
        for key in ("ReadCapacityUnits", "WriteCapacityUnits")
    }


def table_create_kwargs(
    template: dict[str, Any],
    table_name: str,
    *,
    logical_id: str = "JournalTable",
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for boto3 ``dynamodb.create_table`` that build the template's table.

    Translated: KeySchema, AttributeDefinitions, BillingMode (with ProvisionedThroughput
    when provisioned), StreamSpecification, GlobalSecondaryIndexes and
    LocalSecondaryIndexes. Left out, as ``create_table`` cannot take them or they only
    matter on AWS: TTL (see :func:`table_ttl_attribute`), point-in-time recovery, SSE,
    deletion protection, tags, and the template's TableName (``table_name`` wins).

    ``parameters`` overrides template parameter defaults for values written as ``!Ref``.

    Raises:
        ValueError: the resource is missing, is not a table, or lacks a needed property.
    """
    props = _resource_properties(template, logical_id, _TABLE_TYPE)
    r = _Resolver(template, parameters)
    where = f"{logical_id}.Properties"

    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": _key_schema(r, _required(props, "KeySchema", where), f"{where}.KeySchema"),
    }
    definitions = []
    defs_where = f"{where}.AttributeDefinitions"
    for i, d in enumerate(_list(_required(props, "AttributeDefinitions", where), defs_where)):
        at = f"{defs_where}[{i}]"
        d = _mapping(d, at)
        definitions.append(
            {
                "AttributeName": r.string(_required(d, "AttributeName", at), at),
                "AttributeType": r.string(_required(d, "AttributeType", at), at),
            }
        )
    kwargs["AttributeDefinitions"] = definitions

    # CloudFormation's default billing mode is PROVISIONED, as is DynamoDB's.
    billing = r.string(props.get("BillingMode", "PROVISIONED"), f"{where}.BillingMode")
    kwargs["BillingMode"] = billing
    provisioned = billing == "PROVISIONED"
    if provisioned:
        kwargs["ProvisionedThroughput"] = _throughput(
            r,
            _required(props, "ProvisionedThroughput", where),
            f"{where}.ProvisionedThroughput",
        )

    if props.get("StreamSpecification") is not None:
        stream_where = f"{where}.StreamSpecification"
        stream = _mapping(props["StreamSpecification"], stream_where)
        kwargs["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": r.string(
                _required(stream, "StreamViewType", stream_where), stream_where
            ),
        }

    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if props.get(kind) is None:
            continue
        indexes = []
        for i, index in enumerate(_list(props[kind], f"{where}.{kind}")):
            at = f"{where}.{kind}[{i}]"
            index = _mapping(index, at)
            translated: dict[str, Any] = {
                "IndexName": r.string(_required(index, "IndexName", at), f"{at}.IndexName"),
                "KeySchema": _key_schema(
                    r, _required(index, "KeySchema", at), f"{at}.KeySchema"
                ),
                "Projection": _projection(
                    r, _required(index, "Projection", at), f"{at}.Projection"
                ),
            }
            if provisioned and kind == "GlobalSecondaryIndexes":
                translated["ProvisionedThroughput"] = _throughput(
                    r,
                    _required(index, "ProvisionedThroughput", at),
                    f"{at}.ProvisionedThroughput",
                )
            indexes.append(translated)
        kwargs[kind] = indexes
    return kwargs


def table_ttl_attribute(
    template: dict[str, Any],
    *,
    logical_id: str = "JournalTable",
    parameters: Mapping[str, Any] | None = None,
) -> str | None:
    """The table's TTL attribute name, or None when TTL is absent or not enabled.

    Raises:
        ValueError: the resource is missing or is not a table, or its
            TimeToLiveSpecification is malformed.
    """
    props = _resource_properties(template, logical_id, _TABLE_TYPE)
    spec = props.get("TimeToLiveSpecification")
    if spec is None:
        return None
    r = _Resolver(template, parameters)
    where = f"{logical_id}.Properties.TimeToLiveSpecification"
    spec = _mapping(spec, where)
    if not r.boolean(spec.get("Enabled", False), f"{where}.Enabled"):
        return None
    return r.string(_required(spec, "AttributeName", where), f"{where}.AttributeName")


# ---------------------------------------------------------------------------------------
# S3


def _lifecycle_filter(r: _Resolver, rule: Mapping[str, Any], where: str) -> dict[str, Any]:
    """CloudFormation's flat Prefix / TagFilters / ObjectSize* -> boto3's Filter."""
    conditions: dict[str, Any] = {}
    if rule.get("Prefix") is not None:
        conditions["Prefix"] = r.string(rule["Prefix"], f"{where}.Prefix")
    tags = []
    if rule.get("TagFilters") is not None:
        for i, tag in enumerate(_list(rule["TagFilters"], f"{where}.TagFilters")):
            at = f"{where}.TagFilters[{i}]"
            tag = _mapping(tag, at)
            tags.append(
                {
                    "Key": r.string(_required(tag, "Key", at), f"{at}.Key"),
                    "Value": r.string(_required(tag, "Value", at), f"{at}.Value"),
                }
            )
    for size in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
        if rule.get(size) is not None:
            conditions[size] = r.integer(rule[size], f"{where}.{size}")

    # S3 takes a single condition bare, and several under "And" (tags as a list there).
    if not tags and len(conditions) <= 1:
        return conditions or {"Prefix": ""}  # no condition: the rule applies to all
    if len(tags) == 1 and not conditions:
        return {"Tag": tags[0]}
    if tags:
        conditions["Tags"] = tags
    return {"And": conditions}


_RULE_KEYS: Final = frozenset(
    {
        "Id",
        "Status",
        "Prefix",
        "TagFilters",
        "ObjectSizeGreaterThan",
        "ObjectSizeLessThan",
        "ExpirationInDays",
        "ExpirationDate",
        "ExpiredObjectDeleteMarker",
        "AbortIncompleteMultipartUpload",
        "NoncurrentVersionExpiration",
        "NoncurrentVersionExpirationInDays",
        "Transitions",
    }
)


def bucket_lifecycle_rules(
    template: dict[str, Any],
    *,
    logical_id: str = "BlobBucket",
    parameters: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The bucket's lifecycle rules, shaped for boto3 ``put_bucket_lifecycle_configuration``.

    Use as ``LifecycleConfiguration={"Rules": bucket_lifecycle_rules(t)}``. Returns [] when
    the bucket has no LifecycleConfiguration. ``parameters`` overrides template parameter
    defaults (e.g. ``{"OrphanBlobRetentionDays": 1}``).

    Raises:
        ValueError: the resource is missing or is not a bucket, a rule lacks Status, or a
            rule uses a setting not translated here (so local and AWS would differ).
    """
    props = _resource_properties(template, logical_id, _BUCKET_TYPE)
    config = props.get("LifecycleConfiguration")
    if config is None:
        return []
    r = _Resolver(template, parameters)
    where = f"{logical_id}.Properties.LifecycleConfiguration"
    rules_in = _list(_required(_mapping(config, where), "Rules", where), f"{where}.Rules")

    rules: list[dict[str, Any]] = []
    for i, rule in enumerate(rules_in):
        at = f"{where}.Rules[{i}]"
        rule = _mapping(rule, at)
        unknown = sorted(set(rule) - _RULE_KEYS)
        if unknown:
            raise ValueError(f"{at}: lifecycle settings {unknown} are not translated locally")
        out: dict[str, Any] = {}
        if rule.get("Id") is not None:
            out["ID"] = r.string(rule["Id"], f"{at}.Id")
        out["Status"] = r.string(_required(rule, "Status", at), f"{at}.Status")
        out["Filter"] = _lifecycle_filter(r, rule, at)

        expiration: dict[str, Any] = {}
        if rule.get("ExpirationInDays") is not None:
            expiration["Days"] = r.integer(rule["ExpirationInDays"], f"{at}.ExpirationInDays")
        if rule.get("ExpirationDate") is not None:
            expiration["Date"] = r.string(rule["ExpirationDate"], f"{at}.ExpirationDate")
        if rule.get("ExpiredObjectDeleteMarker") is not None:
            expiration["ExpiredObjectDeleteMarker"] = r.boolean(
                rule["ExpiredObjectDeleteMarker"], f"{at}.ExpiredObjectDeleteMarker"
            )
        if expiration:
            out["Expiration"] = expiration

        if rule.get("AbortIncompleteMultipartUpload") is not None:
            abort_at = f"{at}.AbortIncompleteMultipartUpload"
            abort = _mapping(rule["AbortIncompleteMultipartUpload"], abort_at)
            out["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": r.integer(
                    _required(abort, "DaysAfterInitiation", abort_at),
                    f"{abort_at}.DaysAfterInitiation",
                )
            }

        noncurrent: dict[str, Any] = {}
        if rule.get("NoncurrentVersionExpirationInDays") is not None:
            noncurrent["NoncurrentDays"] = r.integer(
                rule["NoncurrentVersionExpirationInDays"],
                f"{at}.NoncurrentVersionExpirationInDays",
            )
        if rule.get("NoncurrentVersionExpiration") is not None:
            nve_at = f"{at}.NoncurrentVersionExpiration"
            nve = _mapping(rule["NoncurrentVersionExpiration"], nve_at)
            noncurrent["NoncurrentDays"] = r.integer(
                _required(nve, "NoncurrentDays", nve_at), f"{nve_at}.NoncurrentDays"
            )
            if nve.get("NewerNoncurrentVersions") is not None:
                noncurrent["NewerNoncurrentVersions"] = r.integer(
                    nve["NewerNoncurrentVersions"], f"{nve_at}.NewerNoncurrentVersions"
                )
        if noncurrent:
            out["NoncurrentVersionExpiration"] = noncurrent

        if rule.get("Transitions") is not None:
            transitions = []
            for j, transition in enumerate(_list(rule["Transitions"], f"{at}.Transitions")):
                t_at = f"{at}.Transitions[{j}]"
                transition = _mapping(transition, t_at)
                t_out: dict[str, Any] = {
                    "StorageClass": r.string(
                        _required(transition, "StorageClass", t_at), f"{t_at}.StorageClass"
                    )
                }
                if transition.get("TransitionInDays") is not None:
                    t_out["Days"] = r.integer(
                        transition["TransitionInDays"], f"{t_at}.TransitionInDays"
                    )
                elif transition.get("TransitionDate") is not None:
                    t_out["Date"] = r.string(
                        transition["TransitionDate"], f"{t_at}.TransitionDate"
                    )
                else:
                    raise ValueError(f"{t_at} has neither TransitionInDays nor TransitionDate")
                transitions.append(t_out)
            out["Transitions"] = transitions

        if not (set(out) - {"ID", "Status", "Filter"}):
            raise ValueError(f"{at}: a lifecycle rule needs at least one action")
        rules.append(out)
    return rules


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


def _environment(r: _Resolver, value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    variables = _mapping(value, where).get("Variables")
    if variables is None:
        return {}
    out: dict[str, str] = {}
    for name, raw in _mapping(variables, f"{where}.Variables").items():
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
    r: _Resolver,
    template: Mapping[str, Any],
    function: str,
    event: str,
    definition: Any,
    table_logical_id: str,
    common: dict[str, Any],
) -> StreamEventSource | None:
    at = f"{function}.Properties.Events.{event}"
    props = _mapping(_required(_mapping(definition, at), "Properties", at), f"{at}.Properties")
    where = f"{at}.Properties"
    unknown = sorted(set(props) - _EMULATED_EVENT_KEYS - _AWS_ONLY_EVENT_KEYS)
    if unknown:
        raise ValueError(
            f"{where}: {unknown} are not emulated by the local stream runner "
            f"(it honours {sorted(_EMULATED_EVENT_KEYS)})"
        )
    if not r.boolean(props.get("Enabled", True), f"{where}.Enabled"):
        return None
    table = _get_att(_required(props, "Stream", where), "StreamArn", f"{where}.Stream")
    if table != table_logical_id:
        raise ValueError(
            f"{where}.Stream: reads the stream of {table!r}, but the local deployment "
            f"creates (and streams) only {table_logical_id!r}"
        )

    on_failure = None
    if props.get("DestinationConfig") is not None:
        dest_at = f"{where}.DestinationConfig"
        failure = _mapping(props["DestinationConfig"], dest_at).get("OnFailure")
        if failure is not None:
            failure = _mapping(failure, f"{dest_at}.OnFailure")
            kind = r.string(failure.get("Type", "SQS"), f"{dest_at}.OnFailure.Type")
            if kind != "SQS":
                raise ValueError(
                    f"{dest_at}.OnFailure: a {kind} destination is not emulated locally "
                    "(only SQS)"
                )
            on_failure = _get_att(
                _required(failure, "Destination", f"{dest_at}.OnFailure"),
                "Arn",
                f"{dest_at}.OnFailure.Destination",
            )
            _require_type(template, on_failure, _QUEUE_TYPE)

    patterns: list[str] = []
    if props.get("FilterCriteria") is not None:
        fc_at = f"{where}.FilterCriteria"
        filters = _list(_required(_mapping(props["FilterCriteria"], fc_at), "Filters", fc_at), fc_at)
        for i, item in enumerate(filters):
            p_at = f"{fc_at}.Filters[{i}]"
            pattern = r.value(_required(_mapping(item, p_at), "Pattern", p_at), f"{p_at}.Pattern")
            patterns.append(pattern if isinstance(pattern, str) else json.dumps(pattern))

    types: tuple[str, ...] = ()
    if props.get("FunctionResponseTypes") is not None:
        types_at = f"{where}.FunctionResponseTypes"
        types = tuple(
            r.string(t, types_at) for t in _list(props["FunctionResponseTypes"], types_at)
        )

    window = r.value(props.get("MaximumBatchingWindowInSeconds", 0), f"{where}.MaximumBatchingWindowInSeconds")
    return StreamEventSource(
        function=function,
        event=event,
        table=table,
        starting_position=r.string(  # type: ignore[arg-type]  # checked in __post_init__
            _required(props, "StartingPosition", where), f"{where}.StartingPosition"
        ),
        batch_size=r.integer(props.get("BatchSize", 100), f"{where}.BatchSize"),
        maximum_batching_window_in_seconds=_number(window, f"{where}.MaximumBatchingWindowInSeconds"),
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
    r = _Resolver(template, parameters, resources=refs)
    global_section = template.get("Globals") or {}
    global_props = global_section.get("Function") or {} if isinstance(global_section, Mapping) else {}
    sources: list[StreamEventSource] = []
    for function in resource_ids(template, _FUNCTION_TYPE):
        own = template["Resources"][function].get("Properties") or {}
        props = _merge_globals(_mapping(global_props, "Globals.Function"), _mapping(own, function))
        events = props.get("Events") or {}
        streams = [
            (name, ev)
            for name, ev in _mapping(events, f"{function}.Properties.Events").items()
            if isinstance(ev, Mapping) and ev.get("Type") == "DynamoDB"
        ]
        if not streams:
            continue
        where = f"{function}.Properties"
        name = props.get("FunctionName")
        common: dict[str, Any] = {
            "handler": r.string(_required(props, "Handler", where), f"{where}.Handler"),
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
    props = _mapping(_require_type(template, logical_id, _QUEUE_TYPE).get("Properties") or {}, logical_id)
    r = _Resolver(template, parameters)
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
