"""local._cfn, local._template: template.yaml read as the local deployment's spec.

Pure translation tests, plus in-process moto checks that boto3 accepts what the
translation produces (the real local deployment runs moto as a server; see DESIGN §6).
The last section evaluates the stack's IAM and bucket policies against sample requests
(least privilege, docs/security-iam.md).
"""

from __future__ import annotations

import copy
import pathlib
import re
import textwrap
from typing import Any

import boto3
import pytest
from moto import mock_aws

from checkpoint_journal.local import _cfn
from checkpoint_journal.local._cfn import TEMPLATE_ENV, load_template, template_path
from checkpoint_journal.local._template import (
    bucket_lifecycle_rules,
    table_create_kwargs,
    table_ttl_attribute,
)

REPO_TEMPLATE = pathlib.Path(__file__).resolve().parents[2] / "template.yaml"
REGION = "us-east-1"


@pytest.fixture()
def template() -> dict[str, Any]:
    return load_template(REPO_TEMPLATE)


def _write(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- loading -----------------------------------------------------------------------------


def test_loader_turns_every_short_form_tag_into_its_long_form(tmp_path: pathlib.Path) -> None:
    path = _write(
        tmp_path,
        """
        AWSTemplateFormatVersion: 2010-09-09
        Conditions:
          IsProd: !Equals [!Ref Stage, prod]
          NotProd: !Not [!Condition IsProd]
          Both: !And [!Condition IsProd, !Condition NotProd]
          Either: !Or [!Condition IsProd, !Condition NotProd]
        Resources:
          R:
            Type: Test::Thing
            Properties:
              Ref: !Ref Stage
              Sub: !Sub "${AWS::StackName}-x"
              SubList: !Sub ["${A}-y", {A: !Ref Stage}]
              GetAtt: !GetAtt Table.StreamArn
              GetAttNested: !GetAtt Stack.Outputs.Name
              GetAttList: !GetAtt [Table, Arn]
              If: !If [IsProd, 1, 2]
              Join: !Join ["", [a, !Ref Stage]]
              Select: !Select [0, !GetAZs ""]
              Split: !Split [",", "a,b"]
              FindInMap: !FindInMap [M, !Ref Stage, Key]
              Base64: !Base64 hello
              Cidr: !Cidr ["10.0.0.0/16", 4, 8]
              ImportValue: !ImportValue other-TableArn
              GetAZs: !GetAZs us-east-1
        """,
    )
    t = load_template(path)

    # An unquoted date stays the string CloudFormation sees, not a datetime.date.
    assert t["AWSTemplateFormatVersion"] == "2010-09-09"
    assert t["Conditions"] == {
        "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
        "Both": {"Fn::And": [{"Condition": "IsProd"}, {"Condition": "NotProd"}]},
        "Either": {"Fn::Or": [{"Condition": "IsProd"}, {"Condition": "NotProd"}]},
    }
    assert t["Resources"]["R"]["Properties"] == {
        "Ref": {"Ref": "Stage"},
        "Sub": {"Fn::Sub": "${AWS::StackName}-x"},
        "SubList": {"Fn::Sub": ["${A}-y", {"A": {"Ref": "Stage"}}]},
        "GetAtt": {"Fn::GetAtt": ["Table", "StreamArn"]},
        "GetAttNested": {"Fn::GetAtt": ["Stack", "Outputs.Name"]},
        "GetAttList": {"Fn::GetAtt": ["Table", "Arn"]},
        "If": {"Fn::If": ["IsProd", 1, 2]},
        "Join": {"Fn::Join": ["", ["a", {"Ref": "Stage"}]]},
        "Select": {"Fn::Select": [0, {"Fn::GetAZs": ""}]},
        "Split": {"Fn::Split": [",", "a,b"]},
        "FindInMap": {"Fn::FindInMap": ["M", {"Ref": "Stage"}, "Key"]},
        "Base64": {"Fn::Base64": "hello"},
        "Cidr": {"Fn::Cidr": ["10.0.0.0/16", 4, 8]},
        "ImportValue": {"Fn::ImportValue": "other-TableArn"},
        "GetAZs": {"Fn::GetAZs": "us-east-1"},
    }


def test_loader_leaves_plain_safe_load_untouched() -> None:
    import yaml

    # The timestamp resolver is removed from our loader class only.
    assert yaml.safe_load("d: 2010-09-09")["d"].year == 2010


def test_loader_matches_sams_own_parser_on_the_real_template() -> None:
    from samtranslator.yaml_helper import yaml_parse

    assert load_template(REPO_TEMPLATE) == yaml_parse(REPO_TEMPLATE.read_text())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Resources:\n  R: !Bogus x\n", "unknown CloudFormation short-form tag !Bogus"),
        ("Resources:\n  R: !GetAtt NoDot\n", "Resource.Attribute"),
        ("Resources: [\n", "not valid CloudFormation YAML"),
        ("just: a mapping\n", "no Resources mapping"),
        ("- a list\n", "no Resources mapping"),
    ],
)
def test_load_template_rejects_what_is_not_a_template(
    tmp_path: pathlib.Path, text: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_template(_write(tmp_path, text))


def test_loader_builds_no_python_objects(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError):
        load_template(_write(tmp_path, "Resources: !!python/object:os.system {}\n"))


# --- finding the template ------------------------------------------------------------------


def test_template_path_defaults_to_the_packaged_symlink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TEMPLATE_ENV, raising=False)
    path = template_path()
    assert path.name == "template.yaml"
    assert path.parent == pathlib.Path(_cfn.__file__).parent.parent
    # In a checkout it is the root template itself, so there is one source of truth.
    assert path.resolve() == REPO_TEMPLATE.resolve()
    assert load_template() == load_template(REPO_TEMPLATE)


def test_template_path_honours_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    other = _write(tmp_path, "Resources: {}\n")
    monkeypatch.setenv(TEMPLATE_ENV, str(other))
    assert template_path() == other
    assert load_template() == {"Resources": {}}


def test_template_path_names_a_missing_override(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv(TEMPLATE_ENV, str(tmp_path / "nope.yaml"))
    with pytest.raises(FileNotFoundError, match=TEMPLATE_ENV):
        template_path()


def test_template_path_explains_a_missing_packaged_template(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.delenv(TEMPLATE_ENV, raising=False)
    fake_module = tmp_path / "checkpoint_journal" / "local" / "_cfn.py"
    monkeypatch.setattr(_cfn, "__file__", str(fake_module))
    with pytest.raises(FileNotFoundError, match="ln -s ../template.yaml"):
        template_path()


# --- DynamoDB ------------------------------------------------------------------------------


def test_table_create_kwargs_from_the_real_template(template: dict[str, Any]) -> None:
    kwargs = table_create_kwargs(template, "journal-test")

    assert kwargs == {
        "TableName": "journal-test",
        "KeySchema": [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
            {"AttributeName": "run_id", "AttributeType": "S"},
            {"AttributeName": "mi", "AttributeType": "S"},
            {"AttributeName": "ms", "AttributeType": "S"},
            {"AttributeName": "ta", "AttributeType": "S"},
            {"AttributeName": "ts", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "RunIndex",
                "KeySchema": [
                    {"AttributeName": "run_id", "KeyType": "HASH"},
                    {"AttributeName": "SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "MetaIndex",
                "KeySchema": [
                    {"AttributeName": "mi", "KeyType": "HASH"},
                    {"AttributeName": "ms", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "ThreadIndex",
                "KeySchema": [
                    {"AttributeName": "ta", "KeyType": "HASH"},
                    {"AttributeName": "ts", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["latest", "step"]},
            },
        ],
    }


def test_table_ttl_attribute_is_expires_at(template: dict[str, Any]) -> None:
    assert table_ttl_attribute(template) == "expires_at"


def test_table_ttl_attribute_none_when_absent_or_disabled(template: dict[str, Any]) -> None:
    props = template["Resources"]["JournalTable"]["Properties"]
    props["TimeToLiveSpecification"]["Enabled"] = "false"
    assert table_ttl_attribute(template) is None
    del props["TimeToLiveSpecification"]
    assert table_ttl_attribute(template) is None


def test_table_create_kwargs_translates_provisioned_capacity(template: dict[str, Any]) -> None:
    template["Parameters"]["Rcu"] = {"Type": "Number", "Default": 5}
    props = template["Resources"]["JournalTable"]["Properties"]
    props["BillingMode"] = "PROVISIONED"
    props["ProvisionedThroughput"] = {"ReadCapacityUnits": {"Ref": "Rcu"}, "WriteCapacityUnits": 2}
    # Every GSI of a provisioned table needs its own throughput.
    for index in props["GlobalSecondaryIndexes"]:
        index["ProvisionedThroughput"] = {"ReadCapacityUnits": 1, "WriteCapacityUnits": "1"}

    kwargs = table_create_kwargs(template, "t", parameters={"Rcu": "7"})

    assert kwargs["ProvisionedThroughput"] == {"ReadCapacityUnits": 7, "WriteCapacityUnits": 2}
    assert [i["ProvisionedThroughput"] for i in kwargs["GlobalSecondaryIndexes"]] == [
        {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}
    ] * len(props["GlobalSecondaryIndexes"])


def _drop(path: tuple[Any, ...]) -> Any:
    def edit(t: dict[str, Any]) -> None:
        node = t
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return edit


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def edit(t: dict[str, Any]) -> None:
        node = t
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


_TABLE = ("Resources", "JournalTable")
_PROPS = (*_TABLE, "Properties")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_drop(_TABLE), "no resource 'JournalTable'"),
        (_set((*_TABLE, "Type"), "AWS::S3::Bucket"), "expected AWS::DynamoDB::Table"),
        (_drop(_PROPS), "has no Properties"),
        (_drop((*_PROPS, "KeySchema")), "has no KeySchema"),
        (_set((*_PROPS, "AttributeDefinitions"), []), "non-empty list"),
        (_set((*_PROPS, "BillingMode"), {"Fn::If": ["C", "A", "B"]}), "Fn::If cannot be"),
        (_set((*_PROPS, "BillingMode"), {"Ref": "AWS::Region"}), "not a template parameter"),
        (_set((*_PROPS, "BillingMode"), "PROVISIONED"), "has no ProvisionedThroughput"),
        (_drop((*_PROPS, "StreamSpecification", "StreamViewType")), "has no StreamViewType"),
    ],
)
def test_table_create_kwargs_errors_are_clear(
    template: dict[str, Any], edit: Any, message: str
) -> None:
    edit(template)
    with pytest.raises(ValueError, match=message):
        table_create_kwargs(template, "t")


def test_table_translation_does_not_mutate_the_template(template: dict[str, Any]) -> None:
    before = copy.deepcopy(template)
    table_create_kwargs(template, "t")
    table_ttl_attribute(template)
    bucket_lifecycle_rules(template)
    assert template == before


# --- S3 ------------------------------------------------------------------------------------


EXPECTED_RULES = [
    {
        "ID": "abort-incomplete-multipart-uploads",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    },
    {
        "ID": "expire-tmp",
        "Status": "Enabled",
        "Filter": {"Prefix": "tmp/"},
        "Expiration": {"Days": 1},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
    },
    {
        # The bucket is versioned (Object Lock needs it): a deleted blob's bytes, kept as
        # a noncurrent version, go a day later, and so do the delete markers (I6).
        "ID": "expire-deleted-blobs",
        "Status": "Enabled",
        "Filter": {"Prefix": "blobs/"},
        "Expiration": {"ExpiredObjectDeleteMarker": True},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
    },
    {
        "ID": "expire-orphan-blobs",
        "Status": "Enabled",
        "Filter": {"Tag": {"Key": "orphan", "Value": "true"}},
        "Expiration": {"Days": 7},  # the OrphanBlobRetentionDays default
    },
    {
        # The archiver's files: written once, read rarely; never expired by default.
        "ID": "archive-infrequent-access",
        "Status": "Enabled",
        "Filter": {"Prefix": "archive/"},
        "Transitions": [{"StorageClass": "STANDARD_IA", "Days": 30}],
    },
]


def test_bucket_lifecycle_rules_from_the_real_template(template: dict[str, Any]) -> None:
    assert bucket_lifecycle_rules(template) == EXPECTED_RULES


def test_bucket_lifecycle_rules_take_parameter_overrides(template: dict[str, Any]) -> None:
    rules = bucket_lifecycle_rules(template, parameters={"OrphanBlobRetentionDays": "2"})
    (orphans,) = [r for r in rules if r["ID"] == "expire-orphan-blobs"]
    assert orphans["Expiration"] == {"Days": 2}


def test_bucket_lifecycle_filters_combine_under_and(template: dict[str, Any]) -> None:
    template["Resources"]["BlobBucket"]["Properties"]["LifecycleConfiguration"]["Rules"] = [
        {"Status": "Enabled", "Prefix": "a/", "ObjectSizeGreaterThan": 10, "ExpirationInDays": 3},
        {
            "Status": "Disabled",
            "TagFilters": [{"Key": "k", "Value": "v"}, {"Key": "k2", "Value": "v2"}],
            "NoncurrentVersionExpiration": {"NoncurrentDays": 4},
            "Transitions": [{"StorageClass": "GLACIER", "TransitionInDays": 30}],
        },
    ]
    assert bucket_lifecycle_rules(template) == [
        {
            "Status": "Enabled",
            "Filter": {"And": {"Prefix": "a/", "ObjectSizeGreaterThan": 10}},
            "Expiration": {"Days": 3},
        },
        {
            "Status": "Disabled",
            "Filter": {"And": {"Tags": [{"Key": "k", "Value": "v"}, {"Key": "k2", "Value": "v2"}]}},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 4},
            "Transitions": [{"StorageClass": "GLACIER", "Days": 30}],
        },
    ]


def test_bucket_without_lifecycle_has_no_rules(template: dict[str, Any]) -> None:
    del template["Resources"]["BlobBucket"]["Properties"]["LifecycleConfiguration"]
    assert bucket_lifecycle_rules(template) == []


_RULES = ("Resources", "BlobBucket", "Properties", "LifecycleConfiguration", "Rules")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_drop(("Resources", "BlobBucket")), "no resource 'BlobBucket'"),
        (_set((*_RULES[:-1],), {}), "has no Rules"),
        (_drop((*_RULES, 0, "Status")), "has no Status"),
        (_set((*_RULES, 1, "ExpirationInDays"), "soon"), "expected a number"),
        (_set((*_RULES, 1, "ExpirationInDays"), 1.5), "whole number"),
        (_set((*_RULES, 1, "Unknown"), 1), r"\['Unknown'\] are not translated"),
        (_drop((*_RULES, 3, "ExpirationInDays")), "needs at least one action"),
        (_drop(("Parameters", "OrphanBlobRetentionDays", "Default")), "has no Default"),
    ],
)
def test_bucket_lifecycle_errors_are_clear(
    template: dict[str, Any], edit: Any, message: str
) -> None:
    edit(template)
    with pytest.raises(ValueError, match=message):
        bucket_lifecycle_rules(template)


# --- the stream functions ------------------------------------------------------------------


def test_the_local_runner_reads_both_stream_functions_from_the_template(
    template: dict[str, Any],
) -> None:
    from checkpoint_journal.local._esm import (
        queue_attributes,
        resource_ids,
        stream_event_sources,
    )

    refs = {"JournalTable": "tbl", "BlobBucket": "bkt", "ProjectorFailureQueue": "pq",
            "ArchiverFailureQueue": "aq"}
    sources = {s.name: s for s in stream_event_sources(template, refs=refs)}
    # The stream's two readers (DESIGN §1.2), each with its own failure queue.
    assert set(sources) == {"ProjectorFunction/Journal", "ArchiverFunction/Journal"}
    archiver = sources["ArchiverFunction/Journal"]
    assert archiver.handler == "checkpoint_journal.stream_handlers.archiver.handler"
    assert archiver.table == "JournalTable" and archiver.starting_position == "TRIM_HORIZON"
    assert archiver.batch_size == 1000
    assert archiver.maximum_batching_window_in_seconds == 60
    assert archiver.bisect_batch_on_function_error is True
    assert archiver.maximum_retry_attempts == 20
    assert archiver.maximum_record_age_in_seconds == 21600
    # Whole-batch semantics: no partial batch response.
    assert not archiver.reports_batch_item_failures
    assert archiver.on_failure == "ArchiverFailureQueue"
    assert len(archiver.filter_patterns) == 1
    # Run locally as on Lambda: removal markers (R) reach the archiver, not the projector;
    # the archive keys (K# items, no kind) reach neither.
    from checkpoint_journal.local._filters import compile_criteria

    def record(kind: str | None) -> dict[str, Any]:
        image = {"PK": {"S": "K#ab"}, "SK": {"S": "K"}, **({"kind": {"S": kind}} if kind else {})}
        return {"eventName": "INSERT", "dynamodb": {"NewImage": image}}

    to_archiver = compile_criteria(archiver.filter_patterns)
    to_projector = compile_criteria(sources["ProjectorFunction/Journal"].filter_patterns)
    assert [to_archiver(record(k)) for k in ("C", "R", None)] == [True, True, False]
    assert [to_projector(record(k)) for k in ("C", "R", None)] == [True, False, False]
    assert archiver.environment == {
        "BUCKET_NAME": "bkt",
        "TABLE_NAME": "tbl",
        "ARCHIVE_INLINE_LIMIT_BYTES": "65536",
        # The Object Lock its puts must carry (the template's defaults).
        "ARCHIVE_OBJECT_LOCK_MODE": "GOVERNANCE",
        "ARCHIVE_RETENTION_DAYS": "365",
        "POWERTOOLS_SERVICE_NAME": "checkpoint-journal-archiver",
        "POWERTOOLS_METRICS_NAMESPACE": "CheckpointJournal",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    assert archiver.memory_size == 512 and archiver.timeout == 60
    assert resource_ids(template, "AWS::SQS::Queue") == [
        "ProjectorFailureQueue", "ArchiverFailureQueue"]
    assert queue_attributes(template, "ArchiverFailureQueue") == {
        "MessageRetentionPeriod": "1209600"}


# --- boto3 accepts the translation -----------------------------------------------------------


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(var, value)
    with mock_aws():
        yield


@pytest.mark.usefixtures("aws")
def test_moto_creates_the_table_from_the_translation(template: dict[str, Any]) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(**table_create_kwargs(template, "journal-unit"))
    ttl = table_ttl_attribute(template)
    assert ttl is not None
    ddb.update_time_to_live(
        TableName="journal-unit",
        TimeToLiveSpecification={"AttributeName": ttl, "Enabled": True},
    )

    table = ddb.describe_table(TableName="journal-unit")["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    gsis = {gsi["IndexName"]: gsi for gsi in table["GlobalSecondaryIndexes"]}
    assert set(gsis) == {"RunIndex", "MetaIndex", "ThreadIndex"}
    assert gsis["RunIndex"]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert gsis["MetaIndex"]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert gsis["ThreadIndex"]["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["latest", "step"],
    }
    described_ttl = ddb.describe_time_to_live(TableName="journal-unit")
    assert described_ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"


@pytest.mark.usefixtures("aws")
def test_moto_accepts_the_lifecycle_rules(template: dict[str, Any]) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="journal-blobs-unit")
    s3.put_bucket_lifecycle_configuration(
        Bucket="journal-blobs-unit",
        LifecycleConfiguration={"Rules": bucket_lifecycle_rules(template)},
    )
    rules = s3.get_bucket_lifecycle_configuration(Bucket="journal-blobs-unit")["Rules"]
    by_id = {rule["ID"]: rule for rule in rules}
    assert set(by_id) == {r["ID"] for r in EXPECTED_RULES}
    assert by_id["expire-orphan-blobs"]["Filter"] == {"Tag": {"Key": "orphan", "Value": "true"}}
    assert by_id["expire-orphan-blobs"]["Expiration"]["Days"] == 7
    assert by_id["expire-tmp"]["Filter"] == {"Prefix": "tmp/"}
    assert by_id["expire-deleted-blobs"]["Filter"] == {"Prefix": "blobs/"}
    assert by_id["expire-deleted-blobs"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 1
    assert by_id["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1
    }
    assert by_id["archive-infrequent-access"]["Filter"] == {"Prefix": "archive/"}
    assert by_id["archive-infrequent-access"]["Transitions"] == [
        {"Days": 30, "StorageClass": "STANDARD_IA"}
    ]
    assert "Expiration" not in by_id["archive-infrequent-access"]


@pytest.mark.usefixtures("aws")
def test_moto_keeps_the_archive_write_once_and_the_blobs_deletable(
    template: dict[str, Any],
) -> None:
    """The S3 behaviour the template relies on, on moto: a lock-enabled, versioned bucket
    with no default retention takes the lifecycle rules, refuses a second
    ``If-None-Match: *`` put of an archive key, and still lets a blob be deleted."""
    import datetime as dt

    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", region_name=REGION)
    bucket = "journal-lock-unit"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": bucket_lifecycle_rules(template)})

    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=366)
    put: dict[str, Any] = {
        "Bucket": bucket, "Key": "archive/date=2026-01-01/a.avro", "Body": b"avro",
        "IfNoneMatch": "*", "ObjectLockMode": "GOVERNANCE",
        "ObjectLockRetainUntilDate": until, "ChecksumAlgorithm": "SHA256",
    }
    s3.put_object(**put)
    with pytest.raises(ClientError) as refused:
        s3.put_object(**{**put, "Body": b"forged"})
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    head = s3.head_object(Bucket=bucket, Key=put["Key"])
    assert head["ObjectLockMode"] == "GOVERNANCE"

    # No default retention: a blob is put unlocked and its delete goes through.
    s3.put_object(Bucket=bucket, Key="blobs/t/n/0/d", Body=b"value")
    assert "ObjectLockMode" not in s3.head_object(Bucket=bucket, Key="blobs/t/n/0/d")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "blobs/t/n/0/d"}]})
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="blobs/")
    assert listed.get("KeyCount") == 0


# --- least privilege: the policies, evaluated ------------------------------------------------
#
# A small model of IAM's evaluation, enough for the condition operators this template
# uses: an explicit Deny wins, else any Allow whose action, resource and every condition
# match, else denied. Keys absent from a request follow IAM's rules: positive operators
# fail, negated ones (StringNotEquals) hold, ...IfExists holds, ForAllValues holds
# (vacuously: hence the Null guards), ForAnyValue fails. Policy variables
# (${aws:PrincipalTag/x}) come from the request; a missing one matches nothing.
# ``negated_absent=False`` evaluates a negated operator on an absent key as false
# instead: the bucket policy's Null statements must keep it safe even so.

ACCOUNT = "123456789012"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/journal"
BUCKET_ARN = "arn:aws:s3:::journal-blobs"
_NO_VALUE = object()


def resolve(
    template: dict[str, Any], parameters: dict[str, Any] | None = None,
    *, only_conditions: bool = False,
) -> dict[str, Any]:
    """The template as a stack with these parameters sees it: Conditions, Fn::If and
    AWS::NoValue evaluated; unless ``only_conditions``, also Ref, Fn::Sub and
    Fn::GetAtt (the stack's resources get made-up names and ARNs)."""
    params = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    params.update({k: str(v) for k, v in (parameters or {}).items()})
    attributes = {"JournalTable.Arn": TABLE_ARN, "BlobBucket.Arn": BUCKET_ARN}

    def ref(name: str) -> str:
        if name in params:
            return params[name]
        return {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                "AWS::Partition": "aws"}.get(name, f"ref:{name}")

    def get_att(name: str) -> str:
        return attributes.get(name, f"arn:test:{name}")

    def condition(name: str) -> bool:
        # A condition is evaluated whole, whatever only_conditions says.
        return bool(value(template["Conditions"][name], True))

    def sub(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            inner = m.group(1)
            if inner.startswith("!"):  # ${!Literal} is the literal ${Literal}
                return "${" + inner[1:] + "}"
            return get_att(inner) if "." in inner else ref(inner)
        # One pass: a substituted value is not scanned again (as CloudFormation does).
        return re.sub(r"\$\{([^}]+)\}", one, text)

    def value(node: Any, full: bool = not only_conditions) -> Any:
        if isinstance(node, list):
            return [v for v in (value(n, full) for n in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref" and arg == "AWS::NoValue":
                return _NO_VALUE
            if key == "Fn::If":
                name, yes, no = arg
                return value(yes if condition(name) else no, full)
            if key == "Condition" and isinstance(arg, str):
                return condition(arg)
            if key == "Fn::Equals":
                a, b = (value(x, True) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not value(arg[0], True)
            if key == "Fn::And":
                return all(value(x, True) for x in arg)
            if key == "Fn::Or":
                return any(value(x, True) for x in arg)
            if full:
                if key == "Ref":
                    return ref(arg)
                if key == "Fn::Sub" and isinstance(arg, str):
                    return sub(arg)
                if key == "Fn::GetAtt":
                    return get_att(".".join(arg))
        return {k: v for k, v in ((k, value(v, full)) for k, v in node.items())
                if v is not _NO_VALUE}

    return value(template)  # type: ignore[no-any-return]


def _wild(pattern: str, text: str) -> bool:
    """IAM's StringLike / ARN matching: * any run, ? one character, nothing else special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def _expand(pattern: str, context: dict[str, Any]) -> str | None:
    """``pattern`` with its policy variables from the request; None if one is missing."""
    missing = False

    def one(m: re.Match[str]) -> str:
        nonlocal missing
        got = context.get(m.group(1))
        if not isinstance(got, str):
            missing = True
            return ""
        return got

    out = _VARIABLE.sub(one, pattern)
    return None if missing else out


def _holds(operator: str, key: str, expected: Any, context: dict[str, Any],
           negated_absent: bool = True) -> bool:
    present = key in context
    if operator == "Null":
        return (not present) == (str(expected).lower() == "true")
    quantifier = ""
    if ":" in operator:
        quantifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    negated = "Not" in operator
    if not present:
        if quantifier == "ForAllValues":
            return True
        if quantifier == "ForAnyValue":
            return False
        return if_exists or (negated and negated_absent)
    patterns = [p for p in (_expand(str(e), context) for e in _as_list(expected))
                if p is not None]

    def matches(v: Any) -> bool:
        if operator in ("StringEquals", "StringNotEquals"):
            hit = any(str(v) == p for p in patterns)
        elif operator in ("StringLike", "StringNotLike"):
            hit = any(_wild(p, str(v)) for p in patterns)
        elif operator == "Bool":
            hit = any(str(v).lower() == p.lower() for p in patterns)
        elif operator == "NumericLessThan":
            hit = any(float(v) < float(p) for p in patterns)
        else:
            raise AssertionError(f"operator {operator} is not modelled here")
        return not hit if negated else hit

    values = _as_list(context[key])
    if quantifier == "ForAllValues":
        return all(matches(v) for v in values)
    if quantifier == "ForAnyValue":
        return any(matches(v) for v in values)
    assert len(values) == 1, f"{key} is multi-valued: use ForAllValues/ForAnyValue"
    return matches(values[0])


def _applies(statement: dict[str, Any], action: str, resource: str,
             context: dict[str, Any], negated_absent: bool = True) -> bool:
    if not any(_wild(a.lower(), action.lower()) for a in _as_list(statement["Action"])):
        return False
    resources = [_expand(r, context) for r in _as_list(statement["Resource"])]
    if not any(r is not None and _wild(r, resource) for r in resources):
        return False
    return all(
        _holds(operator, key, expected, context, negated_absent)
        for operator, keys in statement.get("Condition", {}).items()
        for key, expected in keys.items()
    )


def allowed(statements: list[dict[str, Any]], action: str, resource: str,
            context: dict[str, Any] | None = None, *, negated_absent: bool = True) -> bool:
    context = {"aws:SecureTransport": "true", **(context or {})}
    applying = [s for s in statements if _applies(s, action, resource, context, negated_absent)]
    if any(s["Effect"] == "Deny" for s in applying):
        return False
    return any(s["Effect"] == "Allow" for s in applying)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(template: dict[str, Any], *logical_ids: str) -> list[dict[str, Any]]:
    """Every statement of these resources' policies (a role's inline ones included)."""
    out: list[dict[str, Any]] = []
    for logical_id in logical_ids:
        props = template["Resources"][logical_id]["Properties"]
        documents = ([p["PolicyDocument"] for p in props["Policies"]] if "Policies" in props
                     else [props["PolicyDocument"]])
        for document in documents:
            out += _as_list(document["Statement"])
    return out


def policies(parameters: dict[str, Any] | None = None,
             source: dict[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Who may do what, per principal: its own grants plus the bucket policy."""
    t = resolve(source if source is not None else load_template(REPO_TEMPLATE), parameters)
    return {who: _statements(t, *ids) for who, ids in {
        "agent": ("AgentPolicy", "BlobBucketPolicy"),
        "projector": ("ProjectorRole", "BlobBucketPolicy"),
        "archiver": ("ArchiverRole", "BlobBucketPolicy"),
        "auditor": ("AuditorPolicy", "BlobBucketPolicy"),
    }.items()}


KEY_PK = "K#" + "ab" * 32  # an archive key's partition: K#{sha256(thread id)}


def _table(*pks: str, index: str | None = None, **context: Any) -> tuple[str, dict[str, Any]]:
    """A DynamoDB request's resource and context: the partition keys it names."""
    resource = TABLE_ARN + (f"/index/{index}" if index else "")
    return resource, ({"dynamodb:LeadingKeys": list(pks)} if pks else {}) | context


def _object(key: str, **context: Any) -> tuple[str, dict[str, Any]]:
    return f"{BUCKET_ARN}/{key}", context


def _plus(request: tuple[str, dict[str, Any]], extra: dict[str, Any]
          ) -> tuple[str, dict[str, Any]]:
    """``request`` with more request context (keys that are not Python names)."""
    return request[0], request[1] | extra


BUCKET_ITSELF: tuple[str, dict[str, Any]] = (BUCKET_ARN, {})

# (action, (resource, request context), allowed?) for an agent's role, no TenantPrefix.
AGENT_CASES: list[tuple[str, tuple[str, dict[str, Any]], bool]] = [
    # Its own threads: read, append, delete (delete_thread, prune), transactions' checks.
    ("dynamodb:GetItem", _table("T#chat-1"), True),
    ("dynamodb:BatchGetItem", _table("T#chat-1", "T#chat-2"), True),
    ("dynamodb:Query", _table("T#chat-1"), True),
    ("dynamodb:PutItem", _table("T#chat-1"), True),
    ("dynamodb:BatchWriteItem", _table("T#chat-1", "T#chat-2"), True),
    ("dynamodb:DeleteItem", _table("T#chat-1"), True),
    ("dynamodb:ConditionCheckItem", _table("T#chat-1"), True),
    # A deleted thread's archive key: destroy, nothing else.
    ("dynamodb:DeleteItem", _table(KEY_PK), True),
    ("dynamodb:GetItem", _table(KEY_PK), False),
    ("dynamodb:PutItem", _table(KEY_PK), False),
    ("dynamodb:BatchWriteItem", _table(KEY_PK), False),
    ("dynamodb:BatchWriteItem", _table("T#chat-1", KEY_PK), False),
    ("dynamodb:Query", _table(KEY_PK), False),
    # No other partition, and no request that names none (ForAllValues would hold).
    ("dynamodb:PutItem", _table("X#chat-1"), False),
    ("dynamodb:PutItem", _table(), False),
    ("dynamodb:BatchWriteItem", _table(), False),
    ("dynamodb:DeleteItem", _table(), False),
    # Nothing modified in place (I1), no Scan (I7).
    ("dynamodb:UpdateItem", _table("T#chat-1"), False),
    ("dynamodb:Scan", _table(), False),
    ("dynamodb:DescribeTable", _table(), True),
    ("dynamodb:Query", _table("ignored", index="RunIndex"), True),
    ("dynamodb:Query", _table("ignored", index="ThreadIndex"), True),
    ("dynamodb:Query", _table("ignored", index="MetaIndex"), True),
    ("dynamodb:Query", _table("ignored", index="SomeNewIndex"), False),
    # S3: read blobs (and tell a missing one from a refused one); never write or delete.
    ("s3:GetObject", _object("blobs/t/n/0/d"), True),
    ("s3:ListBucket", BUCKET_ITSELF, True),
    ("s3:GetObject", _object("archive/date=2026-01-01/x.avro"), False),
    ("s3:PutObject", _object("blobs/t/n/0/d"), False),
    ("s3:DeleteObject", _object("blobs/t/n/0/d"), False),
    ("s3:PutObjectTagging", _object("blobs/t/n/0/d"), False),
    ("s3:PutObject", _object("archive/date=2026-01-01/x.avro"), False),
    # TLS only.
    ("s3:GetObject", _object("blobs/t/n/0/d", **{"aws:SecureTransport": "false"}), False),
]

# The same agent with TenantPrefix "acme:".
TENANT_CASES: list[tuple[str, tuple[str, dict[str, Any]], bool]] = [
    ("dynamodb:PutItem", _table("T#acme:chat-1"), True),
    ("dynamodb:Query", _table("T#acme:chat-1"), True),
    ("dynamodb:BatchWriteItem", _table("T#acme:1", "T#acme:2"), True),
    ("dynamodb:PutItem", _table("T#beta:chat-1"), False),
    ("dynamodb:GetItem", _table("T#beta:chat-1"), False),
    ("dynamodb:Query", _table("T#beta:chat-1"), False),
    ("dynamodb:ConditionCheckItem", _table("T#beta:chat-1"), False),
    ("dynamodb:DeleteItem", _table("T#beta:chat-1"), False),
    # The separator the prefix must end with: another tenant's longer id is not a match.
    ("dynamodb:PutItem", _table("T#acme2:chat-1"), False),
    ("dynamodb:BatchWriteItem", _table("T#acme:1", "T#beta:1"), False),
    ("dynamodb:PutItem", _table("T#chat-1"), False),
    # What IAM cannot scope by tenant (docs/security-iam.md): the hashed archive keys...
    ("dynamodb:DeleteItem", _table(KEY_PK), True),
    # ... so cross-thread listings and bucket listings are not granted at all.
    ("dynamodb:Query", _table("x", index="ThreadIndex"), False),
    ("dynamodb:Query", _table("x", index="MetaIndex"), False),
    ("dynamodb:Query", _table("x", index="RunIndex"), True),
    ("s3:ListBucket", BUCKET_ITSELF, False),
    ("s3:GetObject", _object("blobs/t/n/0/d"), True),
]

TAG_PREFIX = "${aws:PrincipalTag/tenant}:"
ACME = {"aws:PrincipalTag/tenant": "acme"}
# TenantPrefix "${aws:PrincipalTag/tenant}:": one policy, each role its tenant's threads.
TAG_CASES: list[tuple[str, tuple[str, dict[str, Any]], bool]] = [
    ("dynamodb:PutItem", _table("T#acme:chat-1", **ACME), True),
    ("dynamodb:PutItem", _table("T#beta:chat-1", **ACME), False),
    ("dynamodb:PutItem", _table("T#beta:chat-1", **{"aws:PrincipalTag/tenant": "beta"}), True),
    # An untagged role reaches no thread.
    ("dynamodb:PutItem", _table("T#acme:chat-1"), False),
    ("dynamodb:Query", _table("T#:chat-1"), False),
]


def _wrong(cases: list[tuple[str, tuple[str, dict[str, Any]], bool]],
           statements: list[dict[str, Any]]) -> list[str]:
    """The cases ``statements`` decide otherwise, under either reading of absent keys."""
    return [f"{action} {resource} {context}: {'allowed' if expected is False else 'denied'}"
            f"{'' if negated_absent else ' (negated operators false on absent keys)'}"
            for negated_absent in (True, False)
            for action, (resource, context), expected in cases
            if allowed(statements, action, resource, context,
                       negated_absent=negated_absent) is not expected]


def agent_problems(source: dict[str, Any] | None = None) -> list[str]:
    """Every agent case the template gets wrong, in its three tenant settings."""
    return (
        _wrong(AGENT_CASES, policies(source=source)["agent"])
        + _wrong(TENANT_CASES, policies({"TenantPrefix": "acme:"}, source)["agent"])
        + _wrong(TAG_CASES, policies({"TenantPrefix": TAG_PREFIX}, source)["agent"])
    )


def test_agent_policy_evaluates_as_intended() -> None:
    assert agent_problems() == []


ARCHIVE_KEY = "archive/date=2026-01-01/shard-1-00000000000000000001.avro"
GOOD_PUT = {"s3:if-none-match": "*", "s3:object-lock-mode": "GOVERNANCE",
            "s3:object-lock-remaining-retention-days": "366"}


def _without(context: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in context.items() if k != key}


ARCHIVER_CASES: list[tuple[str, tuple[str, dict[str, Any]], bool]] = [
    # A new file, locked as the parameters say.
    ("s3:PutObject", _object(ARCHIVE_KEY, **GOOD_PUT), True),
    ("s3:PutObjectRetention", _object(ARCHIVE_KEY), True),
    # Never over an existing key: S3 checks If-None-Match: *, the bucket policy demands it.
    ("s3:PutObject", _object(ARCHIVE_KEY, **_without(GOOD_PUT, "s3:if-none-match")), False),
    ("s3:PutObject", _object(ARCHIVE_KEY, **{**GOOD_PUT, "s3:if-none-match": '"etag"'}), False),
    # Never unlocked, in another mode, or for less than ArchiveRetentionDays.
    ("s3:PutObject", _object(ARCHIVE_KEY, **_without(GOOD_PUT, "s3:object-lock-mode")), False),
    ("s3:PutObject", _object(ARCHIVE_KEY, **{**GOOD_PUT, "s3:object-lock-mode": "COMPLIANCE"}),
     False),
    ("s3:PutObject", _object(ARCHIVE_KEY, **{
        **GOOD_PUT, "s3:object-lock-remaining-retention-days": "364"}), False),
    ("s3:PutObject", _object(ARCHIVE_KEY, **{**GOOD_PUT, "aws:SecureTransport": "false"}), False),
    # No reads, deletes, lock bypass, or writes outside archive/.
    ("s3:GetObject", _object(ARCHIVE_KEY), False),
    ("s3:DeleteObject", _object(ARCHIVE_KEY), False),
    ("s3:DeleteObjectVersion", _object(ARCHIVE_KEY), False),
    ("s3:BypassGovernanceRetention", _object(ARCHIVE_KEY), False),
    ("s3:PutObject", _object("blobs/t/n/0/d", **GOOD_PUT), False),
    ("s3:ListBucket", BUCKET_ITSELF, False),
    # Its keys (K#) and the existence of journal events (keys only).
    ("dynamodb:PutItem", _table(KEY_PK), True),
    ("dynamodb:DeleteItem", _table(KEY_PK), True),
    ("dynamodb:PutItem", _table("T#chat-1"), False),
    ("dynamodb:PutItem", _table(), False),
    ("dynamodb:BatchGetItem", _plus(_table("T#chat-1"), {
        "dynamodb:Attributes": ["PK", "SK"], "dynamodb:Select": "SPECIFIC_ATTRIBUTES"}), True),
    # A tombstone's time: is a late event hidden by a delete_thread?
    ("dynamodb:BatchGetItem", _plus(_table("T#chat-1"), {
        "dynamodb:Attributes": ["PK", "SK", "written_at"],
        "dynamodb:Select": "SPECIFIC_ATTRIBUTES"}), True),
    ("dynamodb:BatchGetItem", _table("T#chat-1"), False),
    ("dynamodb:GetItem", _plus(_table("T#chat-1"), {"dynamodb:Attributes": ["PK", "SK", "body"]}),
     False),
]

PROJECTOR_CASES: list[tuple[str, tuple[str, dict[str, Any]], bool]] = [
    ("dynamodb:PutItem", _table("T#chat-1"), True),
    ("dynamodb:BatchWriteItem", _table("T#chat-1"), True),
    ("dynamodb:DeleteItem", _table("T#chat-1"), True),
    ("dynamodb:DeleteItem", _table(KEY_PK), False),
    ("dynamodb:BatchWriteItem", _table("T#chat-1", KEY_PK), False),
    ("dynamodb:PutItem", _table(), False),
    ("dynamodb:Scan", _table(), False),
    # Blob deletes keep working: no default retention locks blobs/.
    ("s3:PutObject", _object("blobs/t/n/0/d"), True),
    ("s3:DeleteObject", _object("blobs/t/n/0/d"), True),
    ("s3:PutObject", _object(ARCHIVE_KEY, **GOOD_PUT), False),
]


def role_problems(source: dict[str, Any] | None = None) -> list[str]:
    p = policies(source=source)
    compliance = policies({"ArchiveObjectLockMode": "COMPLIANCE", "ArchiveRetentionDays": 10},
                          source)
    return (
        _wrong(ARCHIVER_CASES, p["archiver"])
        + _wrong(PROJECTOR_CASES, p["projector"])
        # The parameters choose the lock the policy demands.
        + _wrong([
            ("s3:PutObject", _object(ARCHIVE_KEY, **{
                **GOOD_PUT, "s3:object-lock-mode": "COMPLIANCE",
                "s3:object-lock-remaining-retention-days": "11"}), True),
            ("s3:PutObject", _object(ARCHIVE_KEY, **GOOD_PUT), False),
        ], compliance["archiver"])
        # Nobody overwrites an archive file, not even an auditor with an extra grant.
        + _wrong([("s3:PutObject", _object(ARCHIVE_KEY, **_without(GOOD_PUT, "s3:if-none-match")),
                   False)],
                 p["auditor"] + [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}])
    )


def test_roles_and_bucket_policy_evaluate_as_intended() -> None:
    assert role_problems() == []


_ITEM_ACTIONS = {"dynamodb:getitem", "dynamodb:batchgetitem", "dynamodb:query",
                 "dynamodb:putitem", "dynamodb:batchwriteitem", "dynamodb:deleteitem",
                 "dynamodb:updateitem", "dynamodb:conditioncheckitem"}


@pytest.mark.parametrize("tenant", ["", "acme:", TAG_PREFIX])
@pytest.mark.parametrize("principal", ["AgentPolicy", "ProjectorRole", "ArchiverRole"])
def test_every_table_item_grant_is_scoped_by_leading_keys(principal: str, tenant: str) -> None:
    """Structurally: an item action on the table comes with a ForAllValues:StringLike on
    dynamodb:LeadingKeys (T# or K# prefixes) and a Null guard requiring the keys."""
    t = resolve(load_template(REPO_TEMPLATE), {"TenantPrefix": tenant})
    for statement in _statements(t, principal):
        actions = {a.lower() for a in _as_list(statement["Action"])}
        if not actions & _ITEM_ACTIONS or _as_list(statement["Resource"]) != [TABLE_ARN]:
            continue
        condition = statement.get("Condition", {})
        leading = condition.get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
        assert leading, f"{principal} {statement.get('Sid')}: no LeadingKeys condition"
        assert all(p.startswith(("T#", "K#")) and p.endswith("*") and p.count("*") == 1
                   for p in leading), leading
        assert condition.get("Null", {}).get("dynamodb:LeadingKeys") == "false", statement
        if principal == "AgentPolicy" and "dynamodb:putitem" in actions:
            assert leading == [f"T#{tenant}*"]


def test_agent_never_writes_or_deletes_in_s3() -> None:
    for tenant in ("", "acme:"):
        for statement in _statements(resolve(load_template(REPO_TEMPLATE),
                                             {"TenantPrefix": tenant}), "AgentPolicy"):
            s3 = [a for a in _as_list(statement["Action"]) if a.startswith("s3:")]
            assert set(s3) <= {"s3:GetObject", "s3:ListBucket"}, statement


def test_bucket_is_versioned_and_lockable_without_default_retention(
    template: dict[str, Any],
) -> None:
    props = template["Resources"]["BlobBucket"]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["ObjectLockEnabled"] is True
    # No Rule: a default retention would lock blobs/, which delete_thread must remove.
    assert props["ObjectLockConfiguration"] == {"ObjectLockEnabled": "Enabled"}
    params = template["Parameters"]
    assert params["ArchiveObjectLockMode"]["AllowedValues"] == ["GOVERNANCE", "COMPLIANCE"]
    assert params["ArchiveObjectLockMode"]["Default"] == "GOVERNANCE"
    assert params["ArchiveRetentionDays"]["Type"] == "Number"
    assert params["ArchiveRetentionDays"]["MinValue"] >= 1
    env = template["Resources"]["ArchiverFunction"]["Properties"]["Environment"]["Variables"]
    assert env["ARCHIVE_OBJECT_LOCK_MODE"] == {"Ref": "ArchiveObjectLockMode"}
    assert env["ARCHIVE_RETENTION_DAYS"] == {"Ref": "ArchiveRetentionDays"}


@pytest.mark.parametrize(
    ("prefix", "accepted"),
    [
        ("", True),
        ("acme:", True),
        ("tenant-42/", True),
        ("a.b_c@d+e=f-g:", True),
        ("${aws:PrincipalTag/tenant}:", True),
        ("${aws:PrincipalTag/org/tenant}/", True),
        ("acme", False),  # no separator: "acme" would also match "acme2:..."
        ("ac*me:", False),
        ("ac?me:", False),
        ("a#b:", False),
        ("a%23b:", False),
        ("${aws:username}:", False),
        ("${aws:PrincipalTag/tenant}", False),
        ("T#acme:", False),
    ],
)
def test_tenant_prefix_pattern(template: dict[str, Any], prefix: str, accepted: bool) -> None:
    pattern = template["Parameters"]["TenantPrefix"]["AllowedPattern"]
    assert (re.fullmatch(pattern, prefix) is not None) is accepted
    assert template["Parameters"]["TenantPrefix"]["Default"] == ""


def _del_condition(resource: str, sid: str, *path: str) -> Any:
    def edit(t: dict[str, Any]) -> None:
        (statement,) = [s for s in _statements(t, resource) if s.get("Sid") == sid]
        node = statement["Condition"]
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return edit


def _add_action(resource: str, sid: str, action: str) -> Any:
    def edit(t: dict[str, Any]) -> None:
        (statement,) = [s for s in _statements(t, resource) if s.get("Sid") == sid]
        statement["Action"] = [*_as_list(statement["Action"]), action]
    return edit


def _drop_statement(resource: str, sid: str) -> Any:
    def edit(t: dict[str, Any]) -> None:
        props = t["Resources"][resource]["Properties"]
        docs = ([p["PolicyDocument"] for p in props["Policies"]] if "Policies" in props
                else [props["PolicyDocument"]])
        for d in docs:
            d["Statement"] = [s for s in d["Statement"] if s.get("Sid") != sid]
    return edit


def _unconditional_listing(t: dict[str, Any]) -> None:
    statements = t["Resources"]["AgentPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    for i, s in enumerate(statements):
        if "Fn::If" in s and s["Fn::If"][2].get("Sid") == "ListBlobBucket":
            statements[i] = s["Fn::If"][2]


def _bucket_default_retention(t: dict[str, Any]) -> None:
    t["Resources"]["BlobBucket"]["Properties"]["ObjectLockConfiguration"]["Rule"] = {
        "DefaultRetention": {"Mode": "COMPLIANCE", "Days": 365}}


@pytest.mark.parametrize(
    ("loosen", "check"),
    [
        (_del_condition("AgentPolicy", "ThreadItems", "Null"), agent_problems),
        (_del_condition("AgentPolicy", "ThreadItems", "ForAllValues:StringLike"),
         agent_problems),
        (_del_condition("AgentPolicy", "DestroyArchiveKeys", "Null"), agent_problems),
        (_del_condition("AgentPolicy", "DestroyArchiveKeys", "ForAllValues:StringLike"),
         agent_problems),
        (_add_action("AgentPolicy", "DestroyArchiveKeys", "dynamodb:PutItem"), agent_problems),
        (_add_action("AgentPolicy", "DescribeTable", "dynamodb:Scan"), agent_problems),
        (_add_action("AgentPolicy", "ReadBlobs", "s3:PutObject"), agent_problems),
        (_unconditional_listing, agent_problems),
        (_del_condition("ProjectorRole", "JournalTableItems", "Null"), role_problems),
        (_del_condition("ProjectorRole", "JournalTableItems", "ForAllValues:StringLike"),
         role_problems),
        (_del_condition("ArchiverRole", "ArchiveKeys", "Null"), role_problems),
        (_del_condition("ArchiverRole", "JournalEventExists", "Null", "dynamodb:Attributes"),
         role_problems),
        (_drop_statement("BlobBucketPolicy", "DenyArchivePutWithoutIfNoneMatch"), role_problems),
        (_drop_statement("BlobBucketPolicy", "DenyArchiveOverwrite"), role_problems),
        (_drop_statement("BlobBucketPolicy", "DenyArchivePutWithoutLock"), role_problems),
        (_drop_statement("BlobBucketPolicy", "DenyArchivePutInAnotherLockMode"), role_problems),
        (_drop_statement("BlobBucketPolicy", "DenyArchivePutWithShortLock"), role_problems),
        (_drop_statement("BlobBucketPolicy", "DenyInsecureTransport"), agent_problems),
        (_add_action("ArchiverRole", "WriteArchive", "s3:DeleteObject"), role_problems),
        (_add_action("ArchiverRole", "WriteArchive", "s3:BypassGovernanceRetention"),
         role_problems),
    ],
    ids=lambda f: getattr(f, "__qualname__", "").split(".")[0].strip("_"),
)
def test_loosened_template_is_caught(loosen: Any, check: Any) -> None:
    """A control: the evaluations above fail once a condition or a deny is removed."""
    source = load_template(REPO_TEMPLATE)
    loosen(source)
    assert check(source) != []


def test_bucket_default_retention_is_caught(template: dict[str, Any]) -> None:
    _bucket_default_retention(template)
    with pytest.raises(AssertionError):
        test_bucket_is_versioned_and_lockable_without_default_retention(template)
