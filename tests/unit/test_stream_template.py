"""checkpoint_journal.local._esm: functions' stream events and SQS queues. Pure."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest

from checkpoint_journal.local._cfn import load_template
from checkpoint_journal.local._esm import (
    StreamEventSource,
    queue_attributes,
    resource_ids,
    stream_event_sources,
)

REPO_TEMPLATE = pathlib.Path(__file__).resolve().parents[2] / "template.yaml"
REFS = {"JournalTable": "tbl", "BlobBucket": "bkt", "ProjectorFailureQueue": "http://q/1"}


def minimal(**event: Any) -> dict[str, Any]:
    """A template with one function and one DynamoDB event of the given properties."""
    return {
        "Parameters": {"Limit": {"Type": "Number", "Default": 5}},
        "Resources": {
            "JournalTable": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            "OtherTable": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            "Dlq": {"Type": "AWS::SQS::Queue"},
            "Topic": {"Type": "AWS::SNS::Topic"},
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Handler": "pkg.mod.handler",
                    "Environment": {"Variables": {"TABLE": {"Ref": "JournalTable"}, "N": {"Ref": "Limit"}}},
                    "Events": {
                        "S": {
                            "Type": "DynamoDB",
                            "Properties": {
                                "Stream": {"Fn::GetAtt": ["JournalTable", "StreamArn"]},
                                "StartingPosition": "LATEST",
                                **event,
                            },
                        },
                        "Api": {"Type": "Api", "Properties": {"Path": "/", "Method": "get"}},
                    },
                },
            },
        },
    }


def test_the_repository_template_projector_mapping() -> None:
    # The archiver's mapping is pinned in test_template.py.
    (source,) = [s for s in stream_event_sources(load_template(REPO_TEMPLATE), refs=REFS)
                 if s.function == "ProjectorFunction"]
    assert source.name == "ProjectorFunction/Journal"
    assert source.handler == "checkpoint_journal.stream_handlers.projector.handler"
    assert source.table == "JournalTable"
    assert source.starting_position == "TRIM_HORIZON"
    assert source.batch_size == 100
    assert source.maximum_batching_window_in_seconds == 1
    assert source.bisect_batch_on_function_error is True
    assert source.maximum_retry_attempts == 5
    assert source.maximum_record_age_in_seconds == 3600
    assert source.reports_batch_item_failures
    assert source.on_failure == "ProjectorFailureQueue"
    assert len(source.filter_patterns) == 2
    assert source.environment["TABLE_NAME"] == "tbl"
    assert source.environment["BUCKET_NAME"] == "bkt"
    assert source.environment["INLINE_LIMIT_BYTES"] == "32768"  # a Number parameter, as text
    assert source.memory_size == 1024 and source.timeout == 120


def test_the_repository_template_queues() -> None:
    template = load_template(REPO_TEMPLATE)
    assert resource_ids(template, "AWS::SQS::Queue") == ["ProjectorFailureQueue",
                                                         "ArchiverFailureQueue"]
    # SqsManagedSseEnabled only matters on AWS.
    assert queue_attributes(template, "ProjectorFailureQueue") == {"MessageRetentionPeriod": "1209600"}


def test_lambda_defaults_apply() -> None:
    (source,) = stream_event_sources(minimal(), refs={"JournalTable": "tbl"})
    assert source == StreamEventSource(
        function="Fn", event="S", handler="pkg.mod.handler", table="JournalTable",
        starting_position="LATEST", environment={"TABLE": "tbl", "N": "5"},
    )
    assert (source.batch_size, source.maximum_batching_window_in_seconds) == (100, 0)
    assert (source.maximum_retry_attempts, source.maximum_record_age_in_seconds) == (-1, -1)
    assert not source.bisect_batch_on_function_error and not source.reports_batch_item_failures
    assert (source.memory_size, source.timeout, source.on_failure) == (128, 3, None)


def test_parameters_override_defaults_and_disabled_events_are_skipped() -> None:
    (source,) = stream_event_sources(minimal(BatchSize={"Ref": "Limit"}), refs={"JournalTable": "t"},
                                     parameters={"Limit": "7"})
    assert source.batch_size == 7 and source.environment["N"] == "7"
    assert stream_event_sources(minimal(Enabled=False), refs={"JournalTable": "t"}) == []


def test_globals_merge_like_sam() -> None:
    template = minimal()
    template["Globals"] = {
        "Function": {
            "MemorySize": 512,
            "Timeout": 30,
            "Environment": {"Variables": {"SHARED": "yes", "N": "global"}},
        }
    }
    (source,) = stream_event_sources(template, refs={"JournalTable": "t"})
    assert (source.memory_size, source.timeout) == (512, 30)
    assert source.environment == {"SHARED": "yes", "N": "5", "TABLE": "t"}


def test_destination_and_filters() -> None:
    template = minimal(
        DestinationConfig={"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": ["Dlq", "Arn"]}}},
        FilterCriteria={"Filters": [{"Pattern": '{"eventName": ["INSERT"]}'},
                                    {"Pattern": {"eventName": ["REMOVE"]}}]},
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    (source,) = stream_event_sources(template, refs={"JournalTable": "t"})
    assert source.on_failure == "Dlq"
    assert source.filter_patterns == ('{"eventName": ["INSERT"]}', '{"eventName": ["REMOVE"]}')


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"TumblingWindowInSeconds": 60}, r"\['TumblingWindowInSeconds'\] are not emulated"),
        ({"Stream": {"Fn::GetAtt": ["OtherTable", "StreamArn"]}}, "creates \\(and streams\\) only"),
        ({"Stream": "arn:aws:dynamodb:us-east-1:1:table/x/stream/y"}, "expected !GetAtt"),
        ({"StartingPosition": "AT_TIMESTAMP"}, "not TRIM_HORIZON or LATEST"),
        ({"BatchSize": 0}, "BatchSize is 0; Lambda accepts 1 to 10000"),
        ({"BatchSize": 10001}, "Lambda accepts 1 to 10000"),
        ({"MaximumBatchingWindowInSeconds": 301}, "accepts 0 to 300"),
        ({"MaximumRetryAttempts": -2}, "MaximumRetryAttempts is -2"),
        ({"MaximumRecordAgeInSeconds": 30}, "MaximumRecordAgeInSeconds \\(or -1\\) is 30"),
        ({"ParallelizationFactor": 11}, "ParallelizationFactor"),
        ({"FunctionResponseTypes": ["Nope"]}, "only ReportBatchItemFailures"),
        ({"FilterCriteria": {"Filters": [{"Pattern": '{"a": [{"wildcard": "x*"}]}'}]}},
         "Filters\\[0\\].*'wildcard' is not supported"),
        ({"DestinationConfig": {"OnFailure": {"Type": "SNS", "Destination": {"Fn::GetAtt": ["Topic", "TopicArn"]}}}},
         "SNS destination is not emulated"),
        ({"DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Topic", "Arn"]}}}},
         "'Topic' is 'AWS::SNS::Topic', expected AWS::SQS::Queue"),
    ],
)
def test_what_cannot_run_locally_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stream_event_sources(minimal(**change), refs={"JournalTable": "t"})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"Fn::Sub": "${JournalTable}-x"}, "Fn::Sub cannot be evaluated locally"),
        ({"Fn::GetAtt": ["JournalTable", "Arn"]}, "Fn::GetAtt cannot be evaluated locally"),
        ({"Ref": "Nowhere"}, "neither a template parameter nor a resource"),
        (["a", "list"], "expected a string or a number"),
    ],
)
def test_environment_values_must_resolve(value: Any, message: str) -> None:
    template = minimal()
    template["Resources"]["Fn"]["Properties"]["Environment"]["Variables"]["X"] = value
    with pytest.raises(ValueError, match=f"Fn.Properties.Environment.Variables.X.*{message}"):
        stream_event_sources(template, refs={"JournalTable": "t"})


def test_a_handler_is_required() -> None:
    template = minimal()
    del template["Resources"]["Fn"]["Properties"]["Handler"]
    with pytest.raises(ValueError, match="Fn.Properties has no Handler"):
        stream_event_sources(template, refs={"JournalTable": "t"})


def test_queue_attributes() -> None:
    template = minimal()
    template["Resources"]["Fifo"] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {"FifoQueue": True, "ContentBasedDeduplication": "true", "VisibilityTimeout": 45,
                       "KmsMasterKeyId": "alias/aws/sqs"},
    }
    assert queue_attributes(template, "Dlq") == {}
    assert queue_attributes(template, "Fifo") == {
        "FifoQueue": "true", "ContentBasedDeduplication": "true", "VisibilityTimeout": "45"
    }
    broken = copy.deepcopy(template)
    broken["Resources"]["Fifo"]["Properties"]["RedrivePolicy"] = {"maxReceiveCount": 3}
    with pytest.raises(ValueError, match="RedrivePolicy"):
        queue_attributes(broken, "Fifo")
    with pytest.raises(ValueError, match="expected AWS::SQS::Queue"):
        queue_attributes(template, "Topic")
