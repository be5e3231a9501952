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

import copy
import json
import pathlib
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint, lint_file
from cfnlint.rules import Match
from samtranslator.translator.transform import transform

from checkpoint_journal.local._cfn import load_template
from tests.unit.test_template import resolve

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


# What `sam package` / `sam deploy` put in place of the layer's local ContentUri (the
# built artifact, uploaded). The translator accepts only an S3 location; cfn-lint makes
# the same swap. The functions' code is inline: nothing of theirs is uploaded.
PACKAGED_LAYER = "s3://artifacts-bucket/handlers-layer.zip"
FUNCTION_CODE = {"ZipFile": "# checkpoint-journal: the handler is in the HandlersLayer layer.\n"}


def _transform(source: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation receives it after `sam build` and `sam package`."""
    source = copy.deepcopy(source)
    for resource in source["Resources"].values():
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            content_uri = resource["Properties"]["ContentUri"]
            assert isinstance(content_uri, str) and not content_uri.startswith("s3://"), content_uri
            resource["Properties"]["ContentUri"] = PACKAGED_LAYER
    return transform(source, {}, _NoManagedPolicies())  # type: ignore[arg-type, no-any-return]


def _layer_version_id(transformed: dict[str, Any]) -> str:
    """The logical id SAM gave HandlersLayer's AWS::Lambda::LayerVersion: the source id
    and a hash of the layer's properties (a changed layer is a new version)."""
    (layer_id,) = [
        logical_id for logical_id, r in transformed["Resources"].items()
        if r["Type"] == "AWS::Lambda::LayerVersion" and logical_id.startswith("HandlersLayer")
    ]
    return layer_id


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return _transform(load_template(TEMPLATE))


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
    layers = {"HandlersLayer"}
    assert set(source["Resources"]) - layers <= set(transformed["Resources"])
    assert _layer_version_id(transformed)
    assert set(transformed["Outputs"]) == {
        "TableName",
        "TableArn",
        "TableStreamArn",
        "BucketName",
        "BucketArn",
        "AgentPolicyArn",
        "ChainKeySecretArn",
        "AuditorPolicyArn",
        "ProjectorFunctionName",
        "ProjectorFunctionArn",
        "ProjectorLogGroupName",
        "ProjectorFailureQueueUrl",
        "ProjectorFailureQueueArn",
        "ProjectorIteratorAgeAlarmName",
        "ProjectorErrorsAlarmName",
        "ProjectorFailureQueueAlarmName",
        "ArchiveLocation",
        "ArchiverFunctionName",
        "ArchiverFunctionArn",
        "ArchiverLogGroupName",
        "ArchiverFailureQueueUrl",
        "ArchiverFailureQueueArn",
        "ArchiverIteratorAgeAlarmName",
        "ArchiverErrorsAlarmName",
        "ArchiverFailureQueueAlarmName",
    }
    # Every output is exported as "<stack name>-<output name>".
    for name, output in transformed["Outputs"].items():
        assert output["Export"] == {"Name": {"Fn::Sub": f"${{AWS::StackName}}-{name}"}}, name


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
    transformed = _transform(broken)
    matches = lint(json.dumps(transformed), config=LINT_CONFIG)
    found = {m.rule.id for m in _errors_and_warnings(matches)}
    assert "E3030" in found, found  # BillingMode not an allowed value
    assert "W3037" in found, found  # IAM action that does not exist


# --- security facts ------------------------------------------------------------------------
#
# Each policy check below is a function returning the problems it finds, so that
# test_loosened_policies_are_caught can show that it does fail on a loosened template.


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


TABLE = {"Fn::GetAtt": ["JournalTable", "Arn"]}
TABLE_INDEXES = {"Fn::Sub": "${JournalTable.Arn}/index/*"}
RUN_INDEX = {"Fn::Sub": "${JournalTable.Arn}/index/RunIndex"}
THREAD_INDEX = {"Fn::Sub": "${JournalTable.Arn}/index/ThreadIndex"}
META_INDEX = {"Fn::Sub": "${JournalTable.Arn}/index/MetaIndex"}
TABLE_STREAM = {"Fn::GetAtt": ["JournalTable", "StreamArn"]}
BUCKET = {"Fn::GetAtt": ["BlobBucket", "Arn"]}
BLOBS = {"Fn::Sub": "${BlobBucket.Arn}/blobs/*"}
CHAIN_KEY = {"Ref": "ChainKeySecret"}
FAILURE_QUEUE = {"Fn::GetAtt": ["ProjectorFailureQueue", "Arn"]}
PROJECTOR_LOGS = {"Fn::GetAtt": ["ProjectorLogGroup", "Arn"]}
ARCHIVE = {"Fn::Sub": "${BlobBucket.Arn}/archive/*"}
# Every request must name its partition keys: ForAllValues over none would hold.
KEYS_NAMED = {"Null": {"dynamodb:LeadingKeys": "false"}}
# Thread partitions only (the projector; the agent's, with its TenantPrefix).
THREAD_ITEMS = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["T#*"]}, **KEYS_NAMED}
AGENT_THREAD_ITEMS = {
    "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [{"Fn::Sub": "T#${TenantPrefix}*"}]},
    **KEYS_NAMED,
}
# The archiver's two table grants: its archive keys (K# partitions only), and whether
# journal events exist (T# partitions, keys only). The agent may delete archive keys.
KEY_ITEMS = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["K#*"]}, **KEYS_NAMED}
EVENT_KEYS_ONLY = {
    "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["T#*"]},
    "ForAllValues:StringEquals": {"dynamodb:Attributes": ["PK", "SK", "written_at"]},
    "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
    "Null": {"dynamodb:LeadingKeys": "false", "dynamodb:Attributes": "false"},
}
ARCHIVER_FAILURE_QUEUE = {"Fn::GetAtt": ["ArchiverFailureQueue", "Arn"]}
ARCHIVER_LOGS = {"Fn::GetAtt": ["ArchiverLogGroup", "Arn"]}

# Actions IAM cannot scope to a resource (the IAM service authorization reference lists no
# resource type for them, and neither does cfn-lint's copy of it): "*" is the only
# Resource that matches them. Nothing else may be granted on "*".
UNSCOPABLE_ACTIONS = frozenset(
    {"dynamodb:ListStreams", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
)

Grants = dict[tuple[str, str], set[str]]


def _grants(statements: list[dict[str, Any]], problems: list[str]) -> Grants:
    """(resource, condition) -> actions of Allow statements; shapes that widen are problems."""
    grants: Grants = {}
    for statement in statements:
        sid = statement.get("Sid", "?")
        if statement.get("Effect") != "Allow":
            problems.append(f"{sid}: Effect {statement.get('Effect')!r}")
        # NotAction / NotResource would grant everything *but* the list.
        for widening in ("NotAction", "NotResource", "NotPrincipal"):
            if widening in statement:
                problems.append(f"{sid}: {widening}")
        actions = _as_list(statement.get("Action", []))
        for action in actions:
            if "*" in action:
                problems.append(f"{sid}: wildcard action {action}")
        condition = _key(statement.get("Condition"))
        for resource in _as_list(statement.get("Resource", [])):
            if resource == "*" and not set(actions) <= UNSCOPABLE_ACTIONS:
                wide = sorted(set(actions) - UNSCOPABLE_ACTIONS)
                problems.append(f"{sid}: {wide} on Resource '*'")
            grants.setdefault((_key(resource), condition), set()).update(actions)
    return grants


def _forbidden_for_everyone(grants: Grants, problems: list[str]) -> None:
    """For every role that runs in production paths (agent, projector, archiver)."""
    actions = {a.lower() for granted in grants.values() for a in granted}
    # DESIGN I7: cross-thread listing goes through the projector's indexes, never a Scan.
    if "dynamodb:scan" in actions:
        problems.append("dynamodb:Scan granted")


# A tenant-scoped agent (TenantPrefix set) gets neither the cross-thread indexes nor the
# bucket listing; everything else is the same, its thread partitions narrowed by the
# prefix inside AGENT_THREAD_ITEMS.
TENANT_AGENT_GRANTS: Grants = {
    (_key(TABLE), _key(AGENT_THREAD_ITEMS)): {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    },
    # delete_thread's crypto-shredding: destroy the thread's archive key, nothing else.
    (_key(TABLE), _key(KEY_ITEMS)): {"dynamodb:DeleteItem"},
    (_key(TABLE), _key(None)): {"dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive"},
    (_key(RUN_INDEX), _key(None)): {"dynamodb:Query"},
    (_key(BLOBS), _key(None)): {"s3:GetObject"},
    (_key(CHAIN_KEY), _key(None)): {"secretsmanager:GetSecretValue"},
}
AGENT_GRANTS: Grants = {
    **TENANT_AGENT_GRANTS,
    (_key(THREAD_INDEX), _key(None)): {"dynamodb:Query"},
    (_key(META_INDEX), _key(None)): {"dynamodb:Query"},
    (_key(BUCKET), _key(None)): {"s3:ListBucket"},
}
_AGENT_ITEM_ACTIONS = {"dynamodb:getitem", "dynamodb:batchgetitem", "dynamodb:query",
                       "dynamodb:putitem", "dynamodb:batchwriteitem", "dynamodb:deleteitem",
                       "dynamodb:updateitem", "dynamodb:conditioncheckitem"}


def _agent_policy_problems(transformed: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for tenant, expected in (("", AGENT_GRANTS), ("acme:", TENANT_AGENT_GRANTS)):
        problems += _agent_policy_problems_with(transformed, tenant, expected)
    return problems


def _agent_policy_problems_with(transformed: dict[str, Any], tenant: str,
                                expected: Grants) -> list[str]:
    problems: list[str] = []
    resolved = resolve(transformed, {"TenantPrefix": tenant}, only_conditions=True)
    policy = resolved["Resources"]["AgentPolicy"]
    if policy["Type"] != "AWS::IAM::ManagedPolicy":
        problems.append(f"AgentPolicy is a {policy['Type']}")
    grants = _grants(_policy_statements(policy), problems)
    # Item actions on the table only with a LeadingKeys prefix (T# or K#) that requests
    # must name (issue 11: no write to another partition, no vacuous ForAllValues).
    for (resource, condition), granted in grants.items():
        items = sorted(a for a in granted if a.lower() in _AGENT_ITEM_ACTIONS)
        if resource != _key(TABLE):
            continue  # an index: its partition key names no thread (see RunIndexQuery)
        if items and json.loads(condition) not in (AGENT_THREAD_ITEMS, KEY_ITEMS):
            problems.append(f"agent item actions {items} on {resource} under {condition}")
    _forbidden_for_everyone(grants, problems)
    # DESIGN I7: the agent reads S3 but never writes or deletes there.
    actions = {a.lower() for granted in grants.values() for a in granted}
    writes = sorted(a for a in actions if a.startswith(("s3:put", "s3:delete", "s3:restore")))
    if writes:
        problems.append(f"agent may write or delete in S3: {writes}")
    agent_resources = {_key(r) for r in (TABLE, RUN_INDEX, THREAD_INDEX, META_INDEX, BLOBS,
                                         BUCKET, CHAIN_KEY)}
    for resource, _ in grants:
        if resource not in agent_resources:
            problems.append(f"agent granted access to {resource}")
    if grants != expected:
        problems.append(f"agent grants changed (TenantPrefix {tenant!r}): {grants}")
    return problems


def test_agent_policy_is_least_privilege(transformed: dict[str, Any]) -> None:
    assert _agent_policy_problems(transformed) == []


ARCHIVE_OBJECTS = {"Fn::Sub": "${BlobBucket.Arn}/archive/*"}
AUDITOR_GRANTS: Grants = {
    (_key(TABLE), _key(None)): {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:Scan",  # verify enumerates threads from the table, not from an index
        "dynamodb:DescribeTable",
    },
    (_key(TABLE_INDEXES), _key(None)): {"dynamodb:Query"},
    (_key(ARCHIVE_OBJECTS), _key(None)): {"s3:GetObject"},
    (_key(BLOBS), _key(None)): {"s3:GetObject"},
    (_key(BUCKET), _key(None)): {"s3:ListBucket"},
    (_key(CHAIN_KEY), _key(None)): {"secretsmanager:GetSecretValue"},
}
_READ_ONLY = {"dynamodb:getitem", "dynamodb:batchgetitem", "dynamodb:query",
              "dynamodb:scan", "dynamodb:describetable", "s3:getobject", "s3:listbucket",
              "secretsmanager:getsecretvalue"}


def _auditor_policy_problems(transformed: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    policy = transformed["Resources"]["AuditorPolicy"]
    if policy["Type"] != "AWS::IAM::ManagedPolicy":
        problems.append(f"AuditorPolicy is a {policy['Type']}")
    grants = _grants(_policy_statements(policy), problems)
    # No _forbidden_for_everyone here: DESIGN I7 keeps Scan from the agent's role; an
    # auditor's `verify` enumerates threads from the table itself (it must not trust the
    # projector's ThreadIndex), so Scan is pinned in AUDITOR_GRANTS instead.
    # verify, export, history, show read; an auditor never changes what it audits.
    actions = {a.lower() for granted in grants.values() for a in granted}
    if actions - _READ_ONLY:
        problems.append(f"auditor may do more than read: {sorted(actions - _READ_ONLY)}")
    allowed = {_key(r) for r in (TABLE, TABLE_INDEXES, ARCHIVE_OBJECTS, BLOBS, BUCKET,
                                 CHAIN_KEY)}
    for resource, _ in grants:
        if resource not in allowed:
            problems.append(f"auditor granted access to {resource}")
    if grants != AUDITOR_GRANTS:
        problems.append(f"auditor grants changed: {grants}")
    return problems


def test_auditor_policy_is_read_only(transformed: dict[str, Any]) -> None:
    assert _auditor_policy_problems(transformed) == []
    assert transformed["Outputs"]["AuditorPolicyArn"]["Value"] == {"Ref": "AuditorPolicy"}


def _auditor_reads_stream(t: dict[str, Any]) -> None:
    _statement(t, "AuditorPolicy", "ReadJournalTable")["Action"].append("dynamodb:GetRecords")


def _auditor_writes_table(t: dict[str, Any]) -> None:
    _statement(t, "AuditorPolicy", "ReadJournalTable")["Action"].append("dynamodb:DeleteItem")


def _auditor_deletes_archive(t: dict[str, Any]) -> None:
    _statement(t, "AuditorPolicy", "ReadArchiveAndBlobs")["Action"] = [
        "s3:GetObject", "s3:DeleteObject"]


def _auditor_reads_everything(t: dict[str, Any]) -> None:
    _statement(t, "AuditorPolicy", "ReadArchiveAndBlobs")["Resource"] = {
        "Fn::Sub": "${BlobBucket.Arn}/*"}


PROJECTOR_GRANTS: Grants = {
    (_key(TABLE), _key(THREAD_ITEMS)): {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
    },
    (_key(TABLE_INDEXES), _key(None)): {"dynamodb:Query"},
    (_key(TABLE_STREAM), _key(None)): {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
    },
    (_key("*"), _key(None)): {
        "dynamodb:ListStreams",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    },
    (_key(BLOBS), _key(None)): {
        "s3:GetObject",
        "s3:PutObject",
        "s3:PutObjectTagging",
        "s3:DeleteObject",
    },
    # Listing is limited to keys under blobs/ (delete_thread lists a thread's prefix).
    (_key(BUCKET), _key({"StringLike": {"s3:prefix": "blobs/*"}})): {"s3:ListBucket"},
    (_key(FAILURE_QUEUE), _key(None)): {"sqs:SendMessage"},
    (_key(PROJECTOR_LOGS), _key(None)): {"logs:CreateLogStream", "logs:PutLogEvents"},
}

# Every resource the projector's role may touch: the table, its indexes and stream, the
# blobs/ prefix and the bucket (listing, conditioned), its failure queue, its log group.
PROJECTOR_RESOURCES = {
    _key(r)
    for r in (TABLE, TABLE_INDEXES, TABLE_STREAM, BUCKET, BLOBS, FAILURE_QUEUE, PROJECTOR_LOGS)
} | {_key("*")}


IAM_POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy")


def _role_problems(
    transformed: dict[str, Any], function_id: str, role_id: str, who: str,
    expected: Grants, allowed: set[str],
) -> tuple[list[str], Grants]:
    """What is wrong with a function's execution role, and its grants."""
    problems: list[str] = []
    resources = transformed["Resources"]
    function = resources[function_id]
    role_ref = {"Fn::GetAtt": [role_id, "Arn"]}
    # Without an explicit role SAM generates one with AWSLambdaDynamoDBExecutionRole
    # (every stream in the account) and AWSXrayWriteOnlyAccess attached.
    if function["Properties"].get("Role") != role_ref:
        problems.append(f"{who} runs as {function['Properties'].get('Role')}")
        return problems, {}
    role = resources[role_id]["Properties"]
    if role["AssumeRolePolicyDocument"]["Statement"] != [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]:
        problems.append(f"trust policy changed: {role['AssumeRolePolicyDocument']}")
    for managed in role.get("ManagedPolicyArns", []):
        problems.append(f"managed policy attached: {managed}")

    statements = [
        statement
        for policy in role.get("Policies", [])
        for statement in _as_list(policy["PolicyDocument"]["Statement"])
    ]
    # Grants attached to the role from elsewhere count too.
    for logical_id, resource in resources.items():
        if resource["Type"] in IAM_POLICY_TYPES:
            props = resource["Properties"]
            attached = _as_list(props.get("Roles", [])) + _as_list(props.get("RoleName", []))
            if {"Ref": role_id} in attached:
                statements += _policy_statements(resource)
                problems.append(f"{logical_id} attaches more grants to the {who}'s role")

    grants = _grants(statements, problems)
    _forbidden_for_everyone(grants, problems)
    for resource, _ in grants:
        if resource not in allowed:
            problems.append(f"{who} granted access to {resource}")
    if grants != expected:
        problems.append(f"{who} grants changed: {grants}")
    return problems, grants


def _projector_role_problems(transformed: dict[str, Any]) -> list[str]:
    problems, _ = _role_problems(transformed, "ProjectorFunction", "ProjectorRole",
                                 "projector", PROJECTOR_GRANTS, PROJECTOR_RESOURCES)
    return problems


ARCHIVER_GRANTS: Grants = {
    (_key(TABLE_STREAM), _key(None)): {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
    },
    (_key("*"), _key(None)): {
        "dynamodb:ListStreams",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    },
    (_key(TABLE), _key(KEY_ITEMS)): {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
    },
    (_key(TABLE), _key(EVENT_KEYS_ONLY)): {"dynamodb:GetItem", "dynamodb:BatchGetItem"},
    # New, locked files only: BlobBucketPolicy refuses an overwrite or an unlocked put.
    (_key(ARCHIVE), _key(None)): {"s3:PutObject", "s3:PutObjectRetention"},
    (_key(ARCHIVER_FAILURE_QUEUE), _key(None)): {"sqs:SendMessage"},
    (_key(ARCHIVER_LOGS), _key(None)): {"logs:CreateLogStream", "logs:PutLogEvents"},
}

# The archiver reads the stream, its keys' items and journal keys, and writes archive/
# objects: not the table's indexes, not blobs/, not the bucket itself, not the
# projector's queue or logs.
ARCHIVER_RESOURCES = {
    _key(r) for r in (TABLE_STREAM, TABLE, ARCHIVE, ARCHIVER_FAILURE_QUEUE, ARCHIVER_LOGS)
} | {_key("*")}
_STREAM_ACTIONS = {"dynamodb:describestream", "dynamodb:getrecords",
                   "dynamodb:getsharditerator", "dynamodb:liststreams"}


def _archiver_role_problems(transformed: dict[str, Any]) -> list[str]:
    problems, grants = _role_problems(transformed, "ArchiverFunction", "ArchiverRole",
                                      "archiver", ARCHIVER_GRANTS, ARCHIVER_RESOURCES)
    # The stream records carry everything it writes. Of the table it may touch its own
    # K# key items, and learn whether journal items exist: never their content.
    for (resource, condition), granted in grants.items():
        table_actions = sorted(a for a in granted if a.startswith("dynamodb:")
                               and a.lower() not in _STREAM_ACTIONS)
        if not table_actions:
            continue
        cond = json.loads(condition) or {}
        leading = cond.get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
        if resource != _key(TABLE):
            problems.append(f"archiver may use {resource}: {table_actions}")
        elif leading == ["K#*"]:
            continue
        elif leading == ["T#*"]:
            attributes = cond.get("ForAllValues:StringEquals", {}).get("dynamodb:Attributes")
            select = cond.get("StringEqualsIfExists", {}).get("dynamodb:Select")
            if not (set(attributes or ["*"]) <= {"PK", "SK", "written_at"} and select == "SPECIFIC_ATTRIBUTES"):
                problems.append(f"archiver may read journal items' content: {condition}")
            if set(table_actions) - {"dynamodb:GetItem", "dynamodb:BatchGetItem"}:
                problems.append(f"archiver may do more than read journal keys: {table_actions}")
        else:
            problems.append(f"archiver may use the table beyond its keys: {table_actions} "
                            f"({condition})")
    # An audit trail writer appends: no reads, lists, deletes, tag changes or lock
    # bypasses in S3. PutObjectRetention: the Object Lock headers of its own puts.
    actions = {a.lower() for granted in grants.values() for a in granted}
    s3_actions = sorted(a for a in actions if a.startswith("s3:")
                        and a not in ("s3:putobject", "s3:putobjectretention"))
    if s3_actions:
        problems.append(f"archiver may do more than put objects: {s3_actions}")
    return problems


def test_projector_role_is_least_privilege(transformed: dict[str, Any]) -> None:
    assert _projector_role_problems(transformed) == []


def test_archiver_role_is_least_privilege(transformed: dict[str, Any]) -> None:
    assert _archiver_role_problems(transformed) == []


def _statement(source: dict[str, Any], resource: str, sid: str) -> dict[str, Any]:
    props = source["Resources"][resource]["Properties"]
    if "Policies" in props:
        documents = [policy["PolicyDocument"] for policy in props["Policies"]]
    else:
        documents = [props["PolicyDocument"]]
    (found,) = [s for d in documents for s in d["Statement"] if s.get("Sid") == sid]
    return found  # type: ignore[no-any-return]


def _add_scan(t: dict[str, Any]) -> None:
    _statement(t, "ProjectorRole", "JournalTableItems")["Action"].append("dynamodb:Scan")


def _whole_bucket(t: dict[str, Any]) -> None:
    _statement(t, "ProjectorRole", "BlobObjects")["Resource"] = {"Fn::Sub": "${BlobBucket.Arn}/*"}


def _unconditioned_listing(t: dict[str, Any]) -> None:
    del _statement(t, "ProjectorRole", "ListBlobPrefixes")["Condition"]


def _any_stream(t: dict[str, Any]) -> None:
    _statement(t, "ProjectorRole", "ReadJournalStream")["Resource"] = "*"


def _sam_generated_role(t: dict[str, Any]) -> None:
    del t["Resources"]["ProjectorFunction"]["Properties"]["Role"]


def _managed_policy_on_role(t: dict[str, Any]) -> None:
    t["Resources"]["ProjectorRole"]["Properties"]["ManagedPolicyArns"] = [
        "arn:aws:iam::aws:policy/AmazonS3FullAccess"
    ]


def _side_policy(t: dict[str, Any]) -> None:
    t["Resources"]["Extra"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "extra",
            "Roles": [{"Ref": "ProjectorRole"}],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": BLOBS}],
            },
        },
    }


def _archiver_reads_table(t: dict[str, Any]) -> None:
    _statement(t, "ArchiverRole", "ReadJournalStream")["Action"].append("dynamodb:GetItem")
    _statement(t, "ArchiverRole", "ReadJournalStream")["Resource"] = [TABLE_STREAM, TABLE]


def _archiver_whole_bucket(t: dict[str, Any]) -> None:
    _statement(t, "ArchiverRole", "WriteArchive")["Resource"] = {"Fn::Sub": "${BlobBucket.Arn}/*"}


def _archiver_reads_and_deletes_archive(t: dict[str, Any]) -> None:
    _statement(t, "ArchiverRole", "WriteArchive")["Action"] = [
        "s3:PutObject", "s3:GetObject", "s3:DeleteObject"]


def _archiver_any_stream(t: dict[str, Any]) -> None:
    _statement(t, "ArchiverRole", "ReadJournalStream")["Resource"] = "*"


def _archiver_sam_generated_role(t: dict[str, Any]) -> None:
    del t["Resources"]["ArchiverFunction"]["Properties"]["Role"]


def _archiver_projectors_queue(t: dict[str, Any]) -> None:
    _statement(t, "ArchiverRole", "FailureQueue")["Resource"] = FAILURE_QUEUE


def _archiver_side_policy(t: dict[str, Any]) -> None:
    _side_policy(t)
    t["Resources"]["Extra"]["Properties"]["Roles"] = [{"Ref": "ArchiverRole"}]


def _archiver_keys_anywhere(t: dict[str, Any]) -> None:
    del _statement(t, "ArchiverRole", "ArchiveKeys")["Condition"]


def _archiver_reads_event_bodies(t: dict[str, Any]) -> None:
    del _statement(t, "ArchiverRole", "JournalEventExists")["Condition"][
        "ForAllValues:StringEquals"]


def _archiver_writes_events(t: dict[str, Any]) -> None:
    _statement(t, "ArchiverRole", "JournalEventExists")["Action"].append("dynamodb:PutItem")


def _archiver_queries_table(t: dict[str, Any]) -> None:
    _statement(t, "ArchiverRole", "ArchiveKeys")["Action"].append("dynamodb:Query")


def _agent_scan(t: dict[str, Any]) -> None:
    _statement(t, "AgentPolicy", "DescribeTable")["Action"] = [
        "dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive", "dynamodb:Scan"]


def _agent_put_blob(t: dict[str, Any]) -> None:
    _statement(t, "AgentPolicy", "ReadBlobs")["Action"] = ["s3:GetObject", "s3:PutObject"]


def _agent_any_table(t: dict[str, Any]) -> None:
    _statement(t, "AgentPolicy", "RunIndexQuery")["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"
    }


def _agent_unconditioned_writes(t: dict[str, Any]) -> None:
    del _statement(t, "AgentPolicy", "ThreadItems")["Condition"]


def _agent_vacuous_leading_keys(t: dict[str, Any]) -> None:
    del _statement(t, "AgentPolicy", "ThreadItems")["Condition"]["Null"]


def _agent_any_partition(t: dict[str, Any]) -> None:
    _statement(t, "AgentPolicy", "ThreadItems")["Condition"]["ForAllValues:StringLike"][
        "dynamodb:LeadingKeys"] = ["*"]


def _agent_creates_archive_keys(t: dict[str, Any]) -> None:
    _statement(t, "AgentPolicy", "DestroyArchiveKeys")["Action"] = [
        "dynamodb:DeleteItem", "dynamodb:PutItem"]


def _agent_updates_items(t: dict[str, Any]) -> None:
    _statement(t, "AgentPolicy", "ThreadItems")["Action"].append("dynamodb:UpdateItem")


def _agent_tenant_lists_everything(t: dict[str, Any]) -> None:
    statements = t["Resources"]["AgentPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    t["Resources"]["AgentPolicy"]["Properties"]["PolicyDocument"]["Statement"] = [
        s["Fn::If"][2] if "Fn::If" in s else s for s in statements]


def _projector_any_partition(t: dict[str, Any]) -> None:
    del _statement(t, "ProjectorRole", "JournalTableItems")["Condition"]


def _archiver_bypasses_lock(t: dict[str, Any]) -> None:
    _statement(t, "ArchiverRole", "WriteArchive")["Action"].append(
        "s3:BypassGovernanceRetention")


@pytest.mark.parametrize(
    ("loosen", "check"),
    [
        (_add_scan, _projector_role_problems),
        (_whole_bucket, _projector_role_problems),
        (_unconditioned_listing, _projector_role_problems),
        (_any_stream, _projector_role_problems),
        (_sam_generated_role, _projector_role_problems),
        (_managed_policy_on_role, _projector_role_problems),
        (_side_policy, _projector_role_problems),
        (_archiver_reads_table, _archiver_role_problems),
        (_archiver_whole_bucket, _archiver_role_problems),
        (_archiver_reads_and_deletes_archive, _archiver_role_problems),
        (_archiver_any_stream, _archiver_role_problems),
        (_archiver_sam_generated_role, _archiver_role_problems),
        (_archiver_projectors_queue, _archiver_role_problems),
        (_archiver_side_policy, _archiver_role_problems),
        (_archiver_keys_anywhere, _archiver_role_problems),
        (_archiver_reads_event_bodies, _archiver_role_problems),
        (_archiver_writes_events, _archiver_role_problems),
        (_archiver_queries_table, _archiver_role_problems),
        (_auditor_reads_stream, _auditor_policy_problems),
        (_auditor_writes_table, _auditor_policy_problems),
        (_auditor_deletes_archive, _auditor_policy_problems),
        (_auditor_reads_everything, _auditor_policy_problems),
        (_agent_scan, _agent_policy_problems),
        (_agent_put_blob, _agent_policy_problems),
        (_agent_any_table, _agent_policy_problems),
        (_agent_unconditioned_writes, _agent_policy_problems),
        (_agent_vacuous_leading_keys, _agent_policy_problems),
        (_agent_any_partition, _agent_policy_problems),
        (_agent_creates_archive_keys, _agent_policy_problems),
        (_agent_updates_items, _agent_policy_problems),
        (_agent_tenant_lists_everything, _agent_policy_problems),
        (_projector_any_partition, _projector_role_problems),
        (_archiver_bypasses_lock, _archiver_role_problems),
    ],
    ids=lambda f: getattr(f, "__name__", "").strip("_"),
)
def test_loosened_policies_are_caught(loosen: Any, check: Any) -> None:
    """A control: the checks above do fail when a grant is widened."""
    source = load_template(TEMPLATE)
    loosen(source)
    assert check(_transform(source)) != []


# --- the projector -------------------------------------------------------------------------


def test_projector_function_contract(transformed: dict[str, Any]) -> None:
    function = transformed["Resources"]["ProjectorFunction"]
    assert function["Type"] == "AWS::Lambda::Function"
    props = function["Properties"]
    assert props["Handler"] == "checkpoint_journal.stream_handlers.projector.handler"
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["Code"] == FUNCTION_CODE
    assert props["Layers"] == [{"Ref": _layer_version_id(transformed)}]
    assert props["TracingConfig"] == {"Mode": "Active"}
    # The names the projector's code reads (a contract with checkpoint_journal).
    assert props["Environment"]["Variables"] == {
        "TABLE_NAME": {"Ref": "JournalTable"},
        "BUCKET_NAME": {"Ref": "BlobBucket"},
        "INLINE_LIMIT_BYTES": {"Ref": "ViewInlineLimitBytes"},
        "POWERTOOLS_SERVICE_NAME": "checkpoint-journal-projector",
        "POWERTOOLS_METRICS_NAMESPACE": "CheckpointJournal",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    # JSON logs, at the level Powertools is told to log at, into the group with retention.
    assert props["LoggingConfig"] == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": "INFO",
        "LogGroup": {"Ref": "ProjectorLogGroup"},
    }
    log_group = transformed["Resources"]["ProjectorLogGroup"]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"] == {"RetentionInDays": {"Ref": "LogRetentionDays"}}
    assert transformed["Parameters"]["LogRetentionDays"]["Default"] == 30


def test_one_build_serves_both_functions(transformed: dict[str, Any]) -> None:
    """`sam build` runs one make target, `make build-HandlersLayer`, on the package
    directory only; the functions have no code to build and run from that layer."""
    resources = load_template(TEMPLATE)["Resources"]
    built = sorted(logical_id for logical_id, r in resources.items()
                   if "BuildMethod" in (r.get("Metadata") or {}))
    assert built == ["HandlersLayer"]
    layer = resources["HandlersLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"] == {
        "BuildMethod": "makefile", "BuildArchitecture": "arm64", "ContextPath": "."}
    content_uri = layer["Properties"]["ContentUri"]
    assert content_uri == "checkpoint_journal"
    assert (TEMPLATE.parent / content_uri / "stream_handlers").is_dir()
    makefile = (TEMPLATE.parent / "Makefile").read_text()
    assert "\nbuild-HandlersLayer:\n\t" in makefile
    target = makefile.split("\nbuild-HandlersLayer:\n", 1)[1].split("\n\n", 1)[0]
    assert "deploy/build_lambda.py" in target
    for function_id in ("ProjectorFunction", "ArchiverFunction"):
        function = resources[function_id]
        props = function["Properties"]
        assert "Metadata" not in function and "CodeUri" not in props
        assert props["InlineCode"] == FUNCTION_CODE["ZipFile"]
        assert props["Layers"] == [{"Ref": "HandlersLayer"}]
        assert [props["Runtime"]] == layer["Properties"]["CompatibleRuntimes"]
        assert props["Architectures"] == layer["Properties"]["CompatibleArchitectures"]
    # The layer version is its own resource, kept by no retention policy of its own:
    # a deploy that changes it deletes the version the functions no longer use.
    assert layer["Properties"]["RetentionPolicy"] == "Delete"
    assert transformed["Resources"][_layer_version_id(transformed)]["DeletionPolicy"] == "Delete"


def _mappings(transformed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: r["Properties"]
        for logical_id, r in transformed["Resources"].items()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    }


def test_projector_event_source_mapping(transformed: dict[str, Any]) -> None:
    mapping = dict(_mappings(transformed)["ProjectorFunctionJournal"])
    del mapping["FilterCriteria"]  # next test
    assert mapping == {
        "EventSourceArn": TABLE_STREAM,
        "FunctionName": {"Ref": "ProjectorFunction"},
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": 100,
        "MaximumBatchingWindowInSeconds": 1,
        "ParallelizationFactor": 1,
        # DESIGN I5: retry with partial batch responses and bisection, then record the
        # batch in the failure queue.
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 5,
        "MaximumRecordAgeInSeconds": 3600,
        "DestinationConfig": {"OnFailure": {"Destination": FAILURE_QUEUE}},
    }


def test_at_most_two_readers_per_stream(transformed: dict[str, Any]) -> None:
    # DynamoDB Streams allows two simultaneous readers of a shard (DESIGN §1.2): the
    # projector and the archiver are both, and there is no room for a third.
    on_stream = {
        m["FunctionName"]["Ref"]
        for m in _mappings(transformed).values()
        if m["EventSourceArn"] == TABLE_STREAM
    }
    assert on_stream == {"ProjectorFunction", "ArchiverFunction"}
    assert len(_mappings(transformed)) == 2


def _matches(pattern: Any, value: Any) -> bool:
    """Lambda event filtering for exact-value patterns (the only kind used here)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and _matches(sub, value[key]) for key, sub in pattern.items()
        )
    assert isinstance(pattern, list) and all(isinstance(v, str) for v in pattern), (
        f"only exact string matching is modelled here, not {pattern!r}"
    )
    return value in pattern


def _record(event_name: str, kind: str | None = None) -> dict[str, Any]:
    keys = {"PK": {"S": "T#t"}, "SK": {"S": "J#x"}}
    dynamodb: dict[str, Any] = {"Keys": keys}
    if event_name != "REMOVE":  # NEW_IMAGE: a removal carries the keys only
        dynamodb["NewImage"] = {**keys, **({"kind": {"S": kind}} if kind else {})}
    return {"eventName": event_name, "eventSource": "aws:dynamodb", "dynamodb": dynamodb}


@pytest.mark.parametrize(
    ("record", "selected"),
    [
        *[(_record("INSERT", kind), True) for kind in "CWBX"],
        *[(_record("MODIFY", kind), True) for kind in "CWBX"],
        (_record("REMOVE"), True),
        # The projector's own view, head and index items: no kind of the journal's.
        *[(_record("INSERT", kind), False) for kind in ("V", "H", "I", "c")],
        # Removal markers are the archive's (and verify's), not the projector's: the
        # prune or delete_for_runs that writes one deletes the items itself.
        (_record("INSERT", "R"), False),
        (_record("MODIFY", "V"), False),
        (_record("INSERT"), False),
    ],
)
def test_filter_criteria_select_journal_records_and_removals(
    transformed: dict[str, Any], record: dict[str, Any], selected: bool
) -> None:
    filters = _mappings(transformed)["ProjectorFunctionJournal"]["FilterCriteria"]["Filters"]
    # Lambda's limits: 5 filters per mapping, 4096 characters per pattern.
    assert 1 <= len(filters) <= 5
    patterns = []
    for f in filters:
        assert len(f["Pattern"]) <= 4096
        patterns.append(json.loads(f["Pattern"]))  # valid JSON, or this raises
    # A record is delivered when any one filter matches it.
    assert any(_matches(p, record) for p in patterns) is selected


def test_filter_patterns_are_exactly_these(transformed: dict[str, Any]) -> None:
    filters = _mappings(transformed)["ProjectorFunctionJournal"]["FilterCriteria"]["Filters"]
    assert [json.loads(f["Pattern"]) for f in filters] == [
        {
            "eventName": ["INSERT", "MODIFY"],
            "dynamodb": {"NewImage": {"kind": {"S": ["C", "W", "B", "X"]}}},
        },
        {"eventName": ["REMOVE"]},
    ]


@pytest.mark.parametrize("logical_id", ["ProjectorFailureQueue", "ArchiverFailureQueue"])
def test_failure_queue(transformed: dict[str, Any], logical_id: str) -> None:
    queue = transformed["Resources"][logical_id]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"] == {"MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True}


# --- the archiver --------------------------------------------------------------------------


def test_archiver_function_contract(transformed: dict[str, Any]) -> None:
    function = transformed["Resources"]["ArchiverFunction"]
    assert function["Type"] == "AWS::Lambda::Function"
    props = function["Properties"]
    assert props["Handler"] == "checkpoint_journal.stream_handlers.archiver.handler"
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["Code"] == FUNCTION_CODE
    assert props["Layers"] == [{"Ref": _layer_version_id(transformed)}]
    assert props["Role"] == {"Fn::GetAtt": ["ArchiverRole", "Arn"]}
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert (props["MemorySize"], props["Timeout"]) == (512, 60)
    # The names the archiver's code reads (a contract with checkpoint_journal). The table
    # holds the threads' archive keys.
    assert props["Environment"]["Variables"] == {
        "BUCKET_NAME": {"Ref": "BlobBucket"},
        "TABLE_NAME": {"Ref": "JournalTable"},
        "ARCHIVE_INLINE_LIMIT_BYTES": "65536",
        # The Object Lock its puts carry; BlobBucketPolicy refuses a put without it.
        "ARCHIVE_OBJECT_LOCK_MODE": {"Ref": "ArchiveObjectLockMode"},
        "ARCHIVE_RETENTION_DAYS": {"Ref": "ArchiveRetentionDays"},
        "POWERTOOLS_SERVICE_NAME": "checkpoint-journal-archiver",
        "POWERTOOLS_METRICS_NAMESPACE": "CheckpointJournal",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    from checkpoint_journal.stream_handlers._archiver import DEFAULT_INLINE_LIMIT_BYTES

    assert int(props["Environment"]["Variables"]["ARCHIVE_INLINE_LIMIT_BYTES"]) == (
        DEFAULT_INLINE_LIMIT_BYTES)
    assert props["LoggingConfig"] == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": "INFO",
        "LogGroup": {"Ref": "ArchiverLogGroup"},
    }
    log_group = transformed["Resources"]["ArchiverLogGroup"]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"] == {"RetentionInDays": {"Ref": "LogRetentionDays"}}
    assert transformed["Outputs"]["ArchiveLocation"]["Value"] == {
        "Fn::Sub": "s3://${BlobBucket}/archive/"}


def test_archiver_event_source_mapping(transformed: dict[str, Any]) -> None:
    mapping = dict(_mappings(transformed)["ArchiverFunctionJournal"])
    del mapping["FilterCriteria"]  # below
    assert mapping == {
        "EventSourceArn": TABLE_STREAM,
        "FunctionName": {"Ref": "ArchiverFunction"},
        "StartingPosition": "TRIM_HORIZON",
        # Fewer, bigger files.
        "BatchSize": 1000,
        "MaximumBatchingWindowInSeconds": 60,
        "ParallelizationFactor": 1,
        # No FunctionResponseTypes: a batch is one file, archived whole or failed whole;
        # Lambda retries and bisects it, then describes it in the failure queue.
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 20,
        # Below the stream's 24 h retention: a given-up batch can still be replayed.
        "MaximumRecordAgeInSeconds": 21600,
        "DestinationConfig": {"OnFailure": {"Destination": ARCHIVER_FAILURE_QUEUE}},
    }


def test_archiver_filter_pattern_is_exactly_this(transformed: dict[str, Any]) -> None:
    filters = _mappings(transformed)["ArchiverFunctionJournal"]["FilterCriteria"]["Filters"]
    assert [json.loads(f["Pattern"]) for f in filters] == [
        {
            "eventName": ["INSERT", "MODIFY"],
            "dynamodb": {"NewImage": {"kind": {"S": ["C", "W", "B", "X", "R"]}}},
        },
    ]


@pytest.mark.parametrize(
    ("record", "selected"),
    [
        *[(_record("INSERT", kind), True) for kind in "CWBXR"],
        # A tombstone written again by a later delete_thread.
        (_record("MODIFY", "X"), True),
        # Removals are not archived: a deletion shows as its tombstone.
        (_record("REMOVE"), False),
        # The projector's items and chunks (their commit item stands for them).
        *[(_record("INSERT", kind), False) for kind in ("V", "H", "I", "P", "c")],
        # No kind: the threads' archive keys (K# items) among them.
        (_record("INSERT"), False),
    ],
)
def test_archiver_filter_selects_journal_events_only(
    transformed: dict[str, Any], record: dict[str, Any], selected: bool
) -> None:
    filters = _mappings(transformed)["ArchiverFunctionJournal"]["FilterCriteria"]["Filters"]
    patterns = [json.loads(f["Pattern"]) for f in filters]
    assert any(_matches(p, record) for p in patterns) is selected


# --- alarms ----------------------------------------------------------------------------------

ALARM_ACTIONS = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


def _function_alarms(function: str) -> list[tuple[str, dict[str, Any]]]:
    """The three alarms each stream function has: lag, failed invocations, given up."""
    name = function.removesuffix("Function")
    return [
        (
            f"{name}IteratorAgeAlarm",
            {
                "Namespace": "AWS/Lambda",
                "MetricName": "IteratorAge",
                "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function}}],
                "Statistic": "Maximum",
                "Period": 60,
                "EvaluationPeriods": 5,
                "DatapointsToAlarm": 5,
                "Threshold": {"Ref": f"{name}IteratorAgeThresholdMs"},
                "ComparisonOperator": "GreaterThanThreshold",
            },
        ),
        (
            f"{name}ErrorsAlarm",
            {
                "Namespace": "AWS/Lambda",
                "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function}}],
                "Statistic": "Sum",
                "Period": 60,
                "EvaluationPeriods": 1,
                "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold",
            },
        ),
        (
            f"{name}FailureQueueAlarm",
            {
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [
                    {
                        "Name": "QueueName",
                        "Value": {"Fn::GetAtt": [f"{name}FailureQueue", "QueueName"]},
                    }
                ],
                "Statistic": "Maximum",
                "Period": 300,
                "EvaluationPeriods": 1,
                "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold",
            },
        ),
    ]


@pytest.mark.parametrize(
    ("logical_id", "expected"),
    _function_alarms("ProjectorFunction") + _function_alarms("ArchiverFunction"),
)
def test_alarms(transformed: dict[str, Any], logical_id: str, expected: dict[str, Any]) -> None:
    alarm = transformed["Resources"][logical_id]
    assert alarm["Type"] == "AWS::CloudWatch::Alarm"
    props = dict(alarm["Properties"])
    assert props.pop("AlarmDescription")
    # Quiet, not breaching, when there is no data: an idle function is a healthy one.
    assert props.pop("TreatMissingData") == "notBreaching"
    assert props.pop("AlarmActions") == ALARM_ACTIONS
    assert props.pop("OKActions") == ALARM_ACTIONS
    assert props == expected
    assert transformed["Outputs"][f"{logical_id}Name"]["Value"] == {"Ref": logical_id}


def test_alarm_parameters(transformed: dict[str, Any]) -> None:
    parameters = transformed["Parameters"]
    assert parameters["ProjectorIteratorAgeThresholdMs"]["Default"] == 60000
    # The archiver waits up to 60 s for a batch by design: 15 minutes before it alarms.
    assert parameters["ArchiverIteratorAgeThresholdMs"]["Default"] == 900000
    # No topic by default: the alarms then notify nobody, and the deploy needs no SNS.
    assert parameters["AlarmTopicArn"]["Default"] == ""
    assert transformed["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    pattern = re.compile(parameters["AlarmTopicArn"]["AllowedPattern"])
    assert pattern.fullmatch("")
    assert pattern.fullmatch("arn:aws:sns:eu-west-1:123456789012:ops-alerts")
    assert not pattern.fullmatch("ops-alerts")
    assert not pattern.fullmatch("arn:aws:sqs:eu-west-1:123456789012:q")


# --- the bucket ----------------------------------------------------------------------------


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
        and str(s["Condition"].get("Bool", {}).get("aws:SecureTransport")).lower() == "false"
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
