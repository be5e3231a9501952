"""template.yaml's table and bucket as boto3 keyword arguments. Pure: no boto3 here.

The embedded deployment (moto server, DynamoDB Local) must build the *same* table and
bucket that AWS SAM deploys (DESIGN §1.4), so instead of a second description of them in
Python, this module translates the CloudFormation properties of ``template.yaml`` (read
by :mod:`checkpoint_journal.local._cfn`) into the keyword arguments of the boto3 calls
that create them locally:

* :func:`table_create_kwargs` for ``dynamodb.create_table`` (keys, billing, stream,
  indexes); :func:`table_ttl_attribute` for ``update_time_to_live``, which
  ``create_table`` cannot take;
* :func:`bucket_lifecycle_rules` for ``s3.put_bucket_lifecycle_configuration``.

The functions' stream event sources and their SQS failure queues are read in
:mod:`checkpoint_journal.local._esm`.

Settings that only matter on AWS (point-in-time recovery, KMS encryption, deletion
protection, public access blocks, bucket policy) are left out on purpose.

Values may be written as ``!Ref SomeParameter``: they resolve to the parameter's
``Default`` or to an override passed in ``parameters``. Any other intrinsic function in
a value this module needs is an error, because it cannot be evaluated without AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from checkpoint_journal.local._cfn import (
    TEMPLATE_ENV,
    Resolver,
    load_template,
    mapping,
    non_empty_list,
    required,
    resource_properties,
    template_path,
)

__all__ = [
    "TEMPLATE_ENV",
    "bucket_lifecycle_rules",
    "load_template",
    "table_create_kwargs",
    "table_ttl_attribute",
    "template_path",
]

_TABLE_TYPE: Final = "AWS::DynamoDB::Table"
_BUCKET_TYPE: Final = "AWS::S3::Bucket"


# ---------------------------------------------------------------------------------------
# DynamoDB


def _key_schema(r: Resolver, value: Any, where: str) -> list[dict[str, str]]:
    out = []
    for i, element in enumerate(non_empty_list(value, where)):
        at = f"{where}[{i}]"
        element = mapping(element, at)
        out.append(
            {
                "AttributeName": r.string(required(element, "AttributeName", at), at),
                "KeyType": r.string(required(element, "KeyType", at), at),
            }
        )
    return out


def _projection(r: Resolver, value: Any, where: str) -> dict[str, Any]:
    projection = mapping(value, where)
    out: dict[str, Any] = {}
    if "ProjectionType" in projection:
        out["ProjectionType"] = r.string(projection["ProjectionType"], where)
    if "NonKeyAttributes" in projection:
        out["NonKeyAttributes"] = [
            r.string(a, where) for a in non_empty_list(projection["NonKeyAttributes"], where)
        ]
    return out


def _throughput(r: Resolver, value: Any, where: str) -> dict[str, int]:
    throughput = mapping(value, where)
    return {
        key: r.integer(required(throughput, key, where), f"{where}.{key}")
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
    props = resource_properties(template, logical_id, _TABLE_TYPE)
    r = Resolver(template, parameters)
    where = f"{logical_id}.Properties"

    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": _key_schema(r, required(props, "KeySchema", where), f"{where}.KeySchema"),
    }
    definitions = []
    defs_where = f"{where}.AttributeDefinitions"
    for i, d in enumerate(non_empty_list(required(props, "AttributeDefinitions", where), defs_where)):
        at = f"{defs_where}[{i}]"
        d = mapping(d, at)
        definitions.append(
            {
                "AttributeName": r.string(required(d, "AttributeName", at), at),
                "AttributeType": r.string(required(d, "AttributeType", at), at),
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
            required(props, "ProvisionedThroughput", where),
            f"{where}.ProvisionedThroughput",
        )

    if props.get("StreamSpecification") is not None:
        stream_where = f"{where}.StreamSpecification"
        stream = mapping(props["StreamSpecification"], stream_where)
        kwargs["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": r.string(
                required(stream, "StreamViewType", stream_where), stream_where
            ),
        }

    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if props.get(kind) is None:
            continue
        indexes = []
        for i, index in enumerate(non_empty_list(props[kind], f"{where}.{kind}")):
            at = f"{where}.{kind}[{i}]"
            index = mapping(index, at)
            translated: dict[str, Any] = {
                "IndexName": r.string(required(index, "IndexName", at), f"{at}.IndexName"),
                "KeySchema": _key_schema(
                    r, required(index, "KeySchema", at), f"{at}.KeySchema"
                ),
                "Projection": _projection(
                    r, required(index, "Projection", at), f"{at}.Projection"
                ),
            }
            if provisioned and kind == "GlobalSecondaryIndexes":
                translated["ProvisionedThroughput"] = _throughput(
                    r,
                    required(index, "ProvisionedThroughput", at),
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
    props = resource_properties(template, logical_id, _TABLE_TYPE)
    spec = props.get("TimeToLiveSpecification")
    if spec is None:
        return None
    r = Resolver(template, parameters)
    where = f"{logical_id}.Properties.TimeToLiveSpecification"
    spec = mapping(spec, where)
    if not r.boolean(spec.get("Enabled", False), f"{where}.Enabled"):
        return None
    return r.string(required(spec, "AttributeName", where), f"{where}.AttributeName")


# ---------------------------------------------------------------------------------------
# S3


def _lifecycle_filter(r: Resolver, rule: Mapping[str, Any], where: str) -> dict[str, Any]:
    """CloudFormation's flat Prefix / TagFilters / ObjectSize* -> boto3's Filter."""
    conditions: dict[str, Any] = {}
    if rule.get("Prefix") is not None:
        conditions["Prefix"] = r.string(rule["Prefix"], f"{where}.Prefix")
    tags = []
    if rule.get("TagFilters") is not None:
        for i, tag in enumerate(non_empty_list(rule["TagFilters"], f"{where}.TagFilters")):
            at = f"{where}.TagFilters[{i}]"
            tag = mapping(tag, at)
            tags.append(
                {
                    "Key": r.string(required(tag, "Key", at), f"{at}.Key"),
                    "Value": r.string(required(tag, "Value", at), f"{at}.Value"),
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
    props = resource_properties(template, logical_id, _BUCKET_TYPE)
    config = props.get("LifecycleConfiguration")
    if config is None:
        return []
    r = Resolver(template, parameters)
    where = f"{logical_id}.Properties.LifecycleConfiguration"
    rules_in = non_empty_list(required(mapping(config, where), "Rules", where), f"{where}.Rules")

    rules: list[dict[str, Any]] = []
    for i, rule in enumerate(rules_in):
        at = f"{where}.Rules[{i}]"
        rule = mapping(rule, at)
        unknown = sorted(set(rule) - _RULE_KEYS)
        if unknown:
            raise ValueError(f"{at}: lifecycle settings {unknown} are not translated locally")
        out: dict[str, Any] = {}
        if rule.get("Id") is not None:
            out["ID"] = r.string(rule["Id"], f"{at}.Id")
        out["Status"] = r.string(required(rule, "Status", at), f"{at}.Status")
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
            abort = mapping(rule["AbortIncompleteMultipartUpload"], abort_at)
            out["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": r.integer(
                    required(abort, "DaysAfterInitiation", abort_at),
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
            nve = mapping(rule["NoncurrentVersionExpiration"], nve_at)
            noncurrent["NoncurrentDays"] = r.integer(
                required(nve, "NoncurrentDays", nve_at), f"{nve_at}.NoncurrentDays"
            )
            if nve.get("NewerNoncurrentVersions") is not None:
                noncurrent["NewerNoncurrentVersions"] = r.integer(
                    nve["NewerNoncurrentVersions"], f"{nve_at}.NewerNoncurrentVersions"
                )
        if noncurrent:
            out["NoncurrentVersionExpiration"] = noncurrent

        if rule.get("Transitions") is not None:
            transitions = []
            for j, transition in enumerate(non_empty_list(rule["Transitions"], f"{at}.Transitions")):
                t_at = f"{at}.Transitions[{j}]"
                transition = mapping(transition, t_at)
                t_out: dict[str, Any] = {
                    "StorageClass": r.string(
                        required(transition, "StorageClass", t_at), f"{t_at}.StorageClass"
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
