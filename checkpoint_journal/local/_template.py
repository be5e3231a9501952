"""template.yaml as the one source of truth for the local deployment. Pure: no boto3 here.

The embedded deployment (moto server, DynamoDB Local) must build the *same* table and
bucket that AWS SAM deploys (DESIGN §1.4), so instead of a second description of them in
Python, this module reads ``template.yaml`` and translates the CloudFormation properties
into the keyword arguments of the boto3 calls that create them locally:

* :func:`table_create_kwargs` for ``dynamodb.create_table`` (keys, billing, stream,
  indexes); :func:`table_ttl_attribute` for ``update_time_to_live``, which
  ``create_table`` cannot take;
* :func:`bucket_lifecycle_rules` for ``s3.put_bucket_lifecycle_configuration``.

The functions' stream event sources and their SQS failure queues are read in
:mod:`checkpoint_journal.local._esm`, with the loader and resolver defined here.

Settings that only matter on AWS (point-in-time recovery, KMS encryption, deletion
protection, public access blocks, bucket policy) are left out on purpose.

Values may be written as ``!Ref SomeParameter``: they resolve to the parameter's
``Default`` or to an override passed in ``parameters``. Any other intrinsic function in
a value this module needs is an error, because it cannot be evaluated without AWS.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from typing import Any, Final

import yaml

__all__ = [
    "TEMPLATE_ENV",
    "bucket_lifecycle_rules",
    "load_template",
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
