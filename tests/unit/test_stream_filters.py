"""checkpoint_journal.local._filters: Lambda's FilterCriteria semantics, pure."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from checkpoint_journal.local._cfn import load_template
from checkpoint_journal.local._esm import stream_event_sources
from checkpoint_journal.local._filters import compile_criteria, compile_pattern
from tests import events

# A Lambda-shaped record, as the runner builds it (numbers are strings in images).
RECORD: dict[str, Any] = {
    "eventID": "e1",
    "eventName": "INSERT",
    "eventVersion": "1.1",
    "eventSource": "aws:dynamodb",
    "awsRegion": "us-east-1",
    "dynamodb": {
        "ApproximateCreationDateTime": 1700000000.0,
        "Keys": {"PK": {"S": "thread#t1"}, "SK": {"S": "C#0001"}},
        "NewImage": {
            "PK": {"S": "thread#t1"},
            "kind": {"S": "C"},
            "n": {"N": "5"},
            "tags": {"SS": ["red", "blue"]},
            "flag": {"BOOL": True},
            "nothing": {"NULL": True},
        },
        "SequenceNumber": "100",
        "SizeBytes": 120,
        "StreamViewType": "NEW_IMAGE",
    },
    "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
}


def matches(pattern: Any) -> bool:
    text = pattern if isinstance(pattern, str) else json.dumps(pattern)
    return compile_pattern(text).matches(RECORD)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # exact values: any of the list
        ({"eventName": ["INSERT", "MODIFY"]}, True),
        ({"eventName": ["REMOVE"]}, False),
        ({"eventName": ["insert"]}, False),  # case matters
        # every key must match (AND), nested objects descend
        ({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"kind": {"S": ["C", "W"]}}}}, True),
        ({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"kind": {"S": ["V"]}}}}, False),
        # a DynamoDB number is a string in the record
        ({"dynamodb": {"NewImage": {"n": {"N": ["5"]}}}}, True),
        ({"dynamodb": {"NewImage": {"n": {"N": [5]}}}}, False),
        ({"dynamodb": {"NewImage": {"n": {"N": [{"numeric": ["=", 5]}]}}}}, False),
        # numeric on JSON numbers
        ({"dynamodb": {"SizeBytes": [{"numeric": [">", 100, "<=", 120]}]}}, True),
        ({"dynamodb": {"SizeBytes": [{"numeric": [">", 120]}]}}, False),
        ({"dynamodb": {"SizeBytes": [{"numeric": ["=", 120]}]}}, True),
        ({"dynamodb": {"SizeBytes": [120]}}, True),
        ({"dynamodb": {"SizeBytes": [120.0]}}, True),
        ({"dynamodb": {"SizeBytes": ["120"]}}, False),
        # prefix / suffix / equals-ignore-case
        ({"dynamodb": {"Keys": {"PK": {"S": [{"prefix": "thread#"}]}}}}, True),
        ({"dynamodb": {"Keys": {"PK": {"S": [{"prefix": "view#"}]}}}}, False),
        ({"dynamodb": {"Keys": {"SK": {"S": [{"suffix": "0001"}]}}}}, True),
        ({"eventName": [{"equals-ignore-case": "insert"}]}, True),
        # anything-but
        ({"eventName": [{"anything-but": ["REMOVE", "MODIFY"]}]}, True),
        ({"eventName": [{"anything-but": "INSERT"}]}, False),
        ({"dynamodb": {"Keys": {"PK": {"S": [{"anything-but": {"prefix": "view#"}}]}}}}, True),
        ({"dynamodb": {"Keys": {"PK": {"S": [{"anything-but": {"prefix": "thread"}}]}}}}, False),
        ({"dynamodb": {"NewImage": {"absent": {"S": [{"anything-but": ["x"]}]}}}}, False),
        # exists
        ({"dynamodb": {"NewImage": {"kind": {"S": [{"exists": True}]}}}}, True),
        ({"dynamodb": {"NewImage": {"absent": [{"exists": False}]}}}, True),
        ({"dynamodb": {"NewImage": {"absent": {"S": [{"exists": False}]}}}}, True),
        ({"dynamodb": {"NewImage": {"kind": [{"exists": False}]}}}, True),  # an object, no leaf
        ({"dynamodb": {"NewImage": {"kind": {"S": [{"exists": False}]}}}}, False),
        ({"dynamodb": {"OldImage": {"kind": {"S": [{"exists": True}]}}}}, False),
        # lists in the record: any element
        ({"dynamodb": {"NewImage": {"tags": {"SS": ["blue"]}}}}, True),
        ({"dynamodb": {"NewImage": {"tags": {"SS": ["green"]}}}}, False),
        # booleans and null
        ({"dynamodb": {"NewImage": {"flag": {"BOOL": [True]}}}}, True),
        ({"dynamodb": {"NewImage": {"flag": {"BOOL": [1]}}}}, False),
        ({"dynamodb": {"NewImage": {"nothing": {"NULL": [True]}}}}, True),
        ({"awsRegion": [None]}, False),
    ],
)
def test_pattern_semantics(pattern: Any, expected: bool) -> None:
    assert matches(pattern) is expected


def test_null_matches_a_json_null_only() -> None:
    record = {"a": None, "b": ""}
    assert compile_pattern('{"a": [null]}').matches(record)
    assert not compile_pattern('{"b": [null]}').matches(record)
    assert compile_pattern('{"b": [""]}').matches(record)
    assert not compile_pattern('{"c": [null]}').matches(record)


def test_criteria_are_ored_and_empty_criteria_match_everything() -> None:
    criteria = compile_criteria(['{"eventName": ["REMOVE"]}', '{"eventName": ["INSERT"]}'])
    assert criteria(RECORD)
    assert not compile_criteria(['{"eventName": ["REMOVE"]}'])(RECORD)
    assert compile_criteria([])(RECORD)


def test_the_template_patterns() -> None:
    journal = compile_criteria(
        [
            '{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"kind": {"S": ["C", "W", "B", "X"]}}}}',
            '{"eventName": ["REMOVE"]}',
        ]
    )
    assert journal(RECORD)
    view = json.loads(json.dumps(RECORD))
    view["dynamodb"]["NewImage"]["kind"] = {"S": "V"}
    assert not journal(view)
    removal = {"eventName": "REMOVE", "dynamodb": {"Keys": RECORD["dynamodb"]["Keys"]}}
    assert journal(removal)


# --- template.yaml's criteria on the canonical events (tests/events) ---------------------

REPO_TEMPLATE = pathlib.Path(__file__).resolve().parents[2] / "template.yaml"
REFS = {"JournalTable": "tbl", "BlobBucket": "bkt", "ProjectorFailureQueue": "pq",
        "ArchiverFailureQueue": "aq"}

# What Lambda delivers to each function of the stream. The projector: the journal's
# events and every removal; not its own items (view, head, index), not chunks (the commit
# stands for them), not removal markers. The archiver: the journal's events, removal
# markers among them; no removals (a deletion is archived as its tombstone).
TO_PROJECTOR = {"checkpoint_insert", "writes_insert", "chunked_commit_insert", "blobs_insert",
                "tombstone_insert", "tombstone_modify", "delete_remove", "ttl_remove"}
TO_ARCHIVER = {"checkpoint_insert", "writes_insert", "chunked_commit_insert", "blobs_insert",
               "removal_insert", "tombstone_insert", "tombstone_modify"}
SINGLE = [n for n in events.names() if n != "mixed_batch"]


def template_criteria() -> dict[str, Callable[[Mapping[str, Any]], bool]]:
    sources = stream_event_sources(load_template(REPO_TEMPLATE), refs=REFS)
    return {s.function: compile_criteria(s.filter_patterns) for s in sources}


@pytest.mark.parametrize("name", SINGLE)
def test_the_template_criteria_select_the_events_lambda_delivers(name: str) -> None:
    criteria = template_criteria()
    record = events.record(name)
    assert criteria["ProjectorFunction"](record) is (name in TO_PROJECTOR)
    assert criteria["ArchiverFunction"](record) is (name in TO_ARCHIVER)


def test_the_template_criteria_on_a_mixed_batch() -> None:
    criteria = template_criteria()
    batch = events.load("mixed_batch")["Records"]
    for function, selected in (("ProjectorFunction", TO_PROJECTOR),
                               ("ArchiverFunction", TO_ARCHIVER)):
        expected = [r for r in batch if any(r == events.record(n) for n in selected)]
        assert [r for r in batch if criteria[function](r)] == expected, function


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1]", "non-empty JSON object"),
        ("{}", "non-empty JSON object"),
        ('{"eventName": "INSERT"}', "list of matchers"),
        ('{"eventName": []}', "empty list"),
        ('{"eventName": [{"wildcard": "IN*"}]}', "'wildcard' is not supported"),
        ('{"a": [{"cidr": "10.0.0.0/24"}]}', "'cidr' is not supported"),
        ('{"$or": [{"a": [1]}, {"b": [2]}]}', "'\\$or' operator is not supported"),
        ('{"a": [{"prefix": 1}]}', "prefix takes a string"),
        ('{"a": [{"exists": "yes"}]}', "exists takes true or false"),
        ('{"a": [{"numeric": [">", "1"]}]}', "not a number"),
        ('{"a": [{"numeric": ["~", 1]}]}', "numeric operator"),
        ('{"a": [{"numeric": [">", 1, ">", 2]}]}', "one lower and one upper"),
        ('{"a": [{"numeric": [">"]}]}', "numeric takes"),
        ('{"a": [{"anything-but": {"wildcard": "x"}}]}', "anything-but takes"),
        ('{"a": [{"anything-but": []}]}', "non-empty list"),
        ('{"a": [{"prefix": "x", "suffix": "y"}]}', "one-key operator"),
        # an object inside the matcher list (the nesting belongs outside it)
        ('{"n": [{"N": ["5"]}]}', "'N' is not supported"),
    ],
)
def test_unsupported_or_malformed_patterns_are_rejected(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compile_pattern(pattern)
