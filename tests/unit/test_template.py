"""local._cfn, local._template: template.yaml read as the local deployment's spec.

Pure translation tests, plus one in-process moto check that boto3 accepts what the
translation produces (the real local deployment runs moto as a server; see DESIGN §6).
"""

from __future__ import annotations

import copy
import pathlib
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
    assert rules[2]["Expiration"] == {"Days": 2}


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
        (_drop((*_RULES, 1, "ExpirationInDays")), "needs at least one action"),
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
    assert by_id["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1
    }
    assert by_id["archive-infrequent-access"]["Filter"] == {"Prefix": "archive/"}
    assert by_id["archive-infrequent-access"]["Transitions"] == [
        {"Days": 30, "StorageClass": "STANDARD_IA"}
    ]
    assert "Expiration" not in by_id["archive-infrequent-access"]
