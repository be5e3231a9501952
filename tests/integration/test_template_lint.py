"""template.yaml lints clean, transforms with SAM, and keeps its security promises.

Everything here runs offline: cfn-lint uses the resource specs bundled in its wheel (it
only fetches with --update-specs, which we never pass), aws-sam-translator runs with a
stub managed-policy loader instead of IAM, and a socket guard fails the test if any of
them still tries to reach a non-loopback address.

cfn-lint on the SAM source already transforms it internally, but it reports problems of
the generated resources poorly (or not at all) for SAM event sources; linting the output
of our own offline transform as well catches those.
"""

from __future__ import annotations

import json
import pathlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint, lint_file
from cfnlint.rules import Match
from samtranslator.translator.transform import transform

from checkpoint_journal.local._template import load_template

TEMPLATE = pathlib.Path(__file__).resolve().parents[2] / "template.yaml"
REGION = "us-east-1"
# Informational checks run too, and are shown, but only errors and warnings fail.
LINT_CONFIG = ManualArgs(regions=[REGION], include_checks=["I"])


# --- no network ----------------------------------------------------------------------------

_LOOPBACK = {None, "localhost", "127.0.0.1", "::1", b"localhost", b"127.0.0.1", b"::1"}
_network_attempts: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _offline() -> Iterator[None]:
    """Refuse (and record) any connection or DNS lookup beyond loopback.

    Loopback stays open because other tests' session fixtures may run a local moto
    server with background threads in this same process.
    """
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in _LOOPBACK:
            _network_attempts.append(f"getaddrinfo({host!r})")
            raise OSError(f"test is offline: DNS lookup of {host!r} refused")
        return real_getaddrinfo(host, *args, **kwargs)

    def _check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
            _network_attempts.append(f"connect({address!r})")
            raise OSError(f"test is offline: connection to {address!r} refused")

    def connect(self: socket.socket, address: Any) -> None:
        _check(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(self, address)
        return real_connect_ex(self, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket.socket, "connect_ex", connect_ex)
        # samtranslator asks a boto3 Session for the region (no request is made); never
        # let anything fall back to the EC2 metadata service either.
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.setenv("AWS_REGION", REGION)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


@pytest.fixture(autouse=True)
def _no_network_attempted() -> Iterator[None]:
    # Libraries may swallow the OSError and carry on; the record still fails the test.
    _network_attempts.clear()
    yield
    assert _network_attempts == [], f"network access attempted: {_network_attempts}"


def test_the_offline_guard_refuses_outside_addresses() -> None:
    with pytest.raises(OSError, match="offline"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    assert _network_attempts == ["getaddrinfo('192.0.2.1')"]
    _network_attempts.clear()


# --- helpers -------------------------------------------------------------------------------


def _describe(matches: list[Match]) -> str:
    return "\n".join(
        f"{m.rule.id} [{m.rule.severity}] line {m.linenumber}: {m.message}" for m in matches
    )


def _errors_and_warnings(matches: list[Match]) -> list[Match]:
    for m in matches:
        if m.rule.severity not in ("error", "warning"):
            print(f"cfn-lint info: {m.rule.id} line {m.linenumber}: {m.message}")
    return [m for m in matches if m.rule.severity in ("error", "warning")]


class _NoManagedPolicies:
    """Stands in for samtranslator's ManagedPolicyLoader, which would call IAM.

    The template names no AWS managed policy; a later one that does must add its name
    and ARN here (the transform fails on an unknown name rather than going online).
    """

    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    source = load_template(TEMPLATE)
    return transform(source, {}, _NoManagedPolicies())  # type: ignore[arg-type]


def _policy_statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    statements = resource["Properties"]["PolicyDocument"]["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- lint ----------------------------------------------------------------------------------


def test_cfn_lint_passes_on_the_sam_template() -> None:
    matches = lint_file(TEMPLATE, config=LINT_CONFIG)
    problems = _errors_and_warnings(matches)
    assert problems == [], _describe(problems)


def test_sam_transform_runs_offline_and_keeps_every_resource(transformed: dict[str, Any]) -> None:
    assert "Transform" not in transformed
    source = load_template(TEMPLATE)
    assert set(source["Resources"]) <= set(transformed["Resources"])
    assert set(transformed["Outputs"]) == {
        "TableName",
        "TableArn",
        "TableStreamArn",
        "BucketName",
        "BucketArn",
        "AgentPolicyArn",
    }


def test_cfn_lint_passes_on_the_transformed_template(transformed: dict[str, Any]) -> None:
    matches = lint(json.dumps(transformed), config=LINT_CONFIG)
    problems = _errors_and_warnings(matches)
    assert problems == [], _describe(problems)


def test_the_lint_setup_does_catch_errors(tmp_path: pathlib.Path) -> None:
    """A control: the same calls report a broken template (so [] above means clean)."""
    broken_file = tmp_path / "template.yaml"
    broken_file.write_text(
        TEMPLATE.read_text().replace("BillingMode: PAY_PER_REQUEST", "BillingMode: ON_DEMAND")
    )
    found = {m.rule.id for m in _errors_and_warnings(lint_file(broken_file, config=LINT_CONFIG))}
    assert "E3030" in found, found

    broken = load_template(TEMPLATE)
    broken["Resources"]["JournalTable"]["Properties"]["BillingMode"] = "ON_DEMAND"
    broken["Resources"]["AgentPolicy"]["Properties"]["PolicyDocument"]["Statement"][0][
        "Action"
    ].append("dynamodb:NoSuchAction")
    transformed = transform(broken, {}, _NoManagedPolicies())  # type: ignore[arg-type]
    matches = lint(json.dumps(transformed), config=LINT_CONFIG)
    found = {m.rule.id for m in _errors_and_warnings(matches)}
    assert "E3030" in found, found  # BillingMode not an allowed value
    assert "W3037" in found, found  # IAM action that does not exist


# --- security facts ------------------------------------------------------------------------


def test_agent_policy_is_least_privilege(transformed: dict[str, Any]) -> None:
    policy = transformed["Resources"]["AgentPolicy"]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    statements = _policy_statements(policy)

    grants: dict[str, set[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        # NotAction / NotResource would grant everything *but* the list.
        assert "NotAction" not in statement and "NotResource" not in statement
        actions = _as_list(statement["Action"])
        resources = _as_list(statement["Resource"])
        for action in actions:
            assert "*" not in action, action
        for resource in resources:
            assert resource != "*"
            grants.setdefault(json.dumps(resource, sort_keys=True), set()).update(actions)

    all_actions = {a.lower() for actions in grants.values() for a in actions}
    assert "dynamodb:scan" not in all_actions
    assert not {a for a in all_actions if a.startswith(("s3:put", "s3:delete"))}

    def key(resource: Any) -> str:
        return json.dumps(resource, sort_keys=True)

    assert grants == {
        key({"Fn::GetAtt": ["JournalTable", "Arn"]}): {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:DeleteItem",
            "dynamodb:DescribeTable",
            "dynamodb:ConditionCheckItem",
        },
        key({"Fn::Sub": "${JournalTable.Arn}/index/*"}): {"dynamodb:Query"},
        key({"Fn::Sub": "${BlobBucket.Arn}/blobs/*"}): {"s3:GetObject"},
        key({"Fn::GetAtt": ["BlobBucket", "Arn"]}): {"s3:ListBucket"},
    }


def test_bucket_policy_denies_insecure_transport(transformed: dict[str, Any]) -> None:
    policies = [
        r for r in transformed["Resources"].values() if r["Type"] == "AWS::S3::BucketPolicy"
    ]
    assert len(policies) == 1
    (policy,) = policies
    assert policy["Properties"]["Bucket"] == {"Ref": "BlobBucket"}

    denies = [
        s
        for s in _policy_statements(policy)
        if s["Effect"] == "Deny"
        and str(s["Condition"]["Bool"]["aws:SecureTransport"]).lower() == "false"
    ]
    assert len(denies) == 1
    (deny,) = denies
    assert deny["Principal"] in ("*", {"AWS": "*"})
    assert _as_list(deny["Action"]) in (["s3:*"], ["*"])
    # Both the bucket itself (ListBucket etc.) and every object in it.
    assert sorted(map(json.dumps, _as_list(deny["Resource"]))) == sorted(
        map(
            json.dumps,
            [{"Fn::GetAtt": ["BlobBucket", "Arn"]}, {"Fn::Sub": "${BlobBucket.Arn}/*"}],
        )
    )


def test_bucket_blocks_public_access_and_acls(transformed: dict[str, Any]) -> None:
    props = transformed["Resources"]["BlobBucket"]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
