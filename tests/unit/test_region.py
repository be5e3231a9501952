"""Region, profile and endpoint resolve as the AWS CLI resolves them, on every path, and
every message names what to set in the caller's terms (``_core/aws.py``).

Precedence: a flag or argument, then ``AWS_REGION``, then ``AWS_DEFAULT_REGION``, then
the profile's ``region`` (``--profile``, else ``AWS_PROFILE``). boto3 alone reads no
``AWS_REGION`` and lets a profile's region beat it. Profiles come from a temporary
``AWS_CONFIG_FILE``; nothing here reaches the network.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from checkpoint_journal import errors
from checkpoint_journal._core import aws
from checkpoint_journal.cli import build_parser
from checkpoint_journal.cli.connect import projector_env
from checkpoint_journal.local import LocalDeployment

_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL",
              "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
              "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@pytest.fixture()
def config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean AWS environment with an AWS config file of three profiles: ``default``
    (eu-west-1), ``audit`` (ap-south-1) and ``bare`` (no region)."""
    for var in _VARIABLES:
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "config"
    path.write_text("[default]\nregion = eu-west-1\n[profile audit]\nregion = ap-south-1\n"
                    "[profile bare]\noutput = json\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return path


def _region(profile: str | None = None, **kw: Any) -> str | None:
    return aws.region_of(aws.new_session(profile), **kw)


# -- the order -------------------------------------------------------------------------


def test_the_profile_region_when_nothing_else_names_one(config: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _region() == "eu-west-1"
    assert _region("audit") == "ap-south-1"
    monkeypatch.setenv("AWS_PROFILE", "audit")
    assert _region() == "ap-south-1"
    assert _region("default") == "eu-west-1"  # --profile beats AWS_PROFILE
    assert _region("bare") is None


def test_aws_default_region_beats_the_profile(config: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert _region() == _region("audit") == "us-west-2"


def test_aws_region_beats_aws_default_region_and_the_profile(
        config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's auditor step: AWS_REGION with a usual profile that names another
    region (boto3 alone picks the profile's)."""
    monkeypatch.setenv("AWS_REGION", "ca-central-1")
    assert boto3.session.Session().region_name == "eu-west-1"  # why this module exists
    assert _region() == _region("audit") == "ca-central-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert _region() == "ca-central-1"


def test_the_flag_beats_everything(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ca-central-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert _region("audit", region_name="sa-east-1") == "sa-east-1"
    assert aws.clients(region_name="sa-east-1").region == "sa-east-1"
    assert aws.clients(profile_name="audit").region == "ca-central-1"


def test_a_session_built_with_a_region_keeps_it(config: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``boto3_session=boto3.Session(region_name=...)`` is the caller's explicit choice."""
    monkeypatch.setenv("AWS_REGION", "ca-central-1")
    session = boto3.session.Session(region_name="ap-northeast-1")
    assert aws.region_of(session) == "ap-northeast-1"
    assert aws.clients(boto3_session=session).region == "ap-northeast-1"
    # A session of a profile still yields to the environment, as the AWS CLI does.
    assert aws.clients(boto3_session=boto3.session.Session(profile_name="audit")).region \
        == "ca-central-1"


def test_a_functions_environment_is_read_as_given(config: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ca-central-1")  # the process's, not the function's
    env = {"AWS_DEFAULT_REGION": "us-west-2", "AWS_ACCESS_KEY_ID": "k",
           "AWS_SECRET_ACCESS_KEY": "s", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    got = aws.clients_from_env(env, max_attempts=1)
    assert got.region == "us-west-2"
    assert got.dynamodb.meta.endpoint_url == got.s3.meta.endpoint_url == "http://127.0.0.1:9"
    assert aws.clients_from_env({**env, "AWS_REGION": "eu-north-1"}, max_attempts=1).region \
        == "eu-north-1"
    assert aws.clients_from_env({"AWS_PROFILE": "audit"}, max_attempts=1).region == "ap-south-1"


def test_s3_endpoint_order(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """S3: s3_endpoint_url=, then AWS_ENDPOINT_URL_S3, then endpoint_url= (one emulator
    serving both), then boto3's; the command line's --endpoint-url is DynamoDB's only."""
    ddb_url, s3_url = "http://127.0.0.1:8001", "http://127.0.0.1:8002"
    got = aws.clients(endpoint_url=ddb_url)
    assert got.dynamodb.meta.endpoint_url == got.s3.meta.endpoint_url == ddb_url
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_url)
    assert aws.clients(endpoint_url=ddb_url).s3.meta.endpoint_url == s3_url
    assert aws.clients(endpoint_url=ddb_url, s3_endpoint_url="http://127.0.0.1:8003") \
        .s3.meta.endpoint_url == "http://127.0.0.1:8003"
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_url)
    cli = aws.clients(endpoint_url=ddb_url, s3_follows_endpoint_url=False)
    assert (cli.dynamodb.meta.endpoint_url, cli.s3.meta.endpoint_url) == (ddb_url, s3_url)


def test_a_secret_is_read_in_its_arns_region(config: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        arn = boto3.client("secretsmanager", region_name="eu-central-1").create_secret(
            Name="chain-key", SecretString="k" * 32)["ARN"]
        assert aws.secret_value(arn, region_name="us-east-1") == "k" * 32
        assert aws.secret_value("chain-key", region_name="eu-central-1") == "k" * 32


def test_a_local_deployment_takes_the_region_its_users_get(
        config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """So that a plain ``JournalSaver(table, endpoint_url=...)`` in the same environment
    finds the table (moto and DynamoDB Local keep tables per region)."""
    assert LocalDeployment().region_name == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "ca-central-1")
    assert LocalDeployment().region_name == "ca-central-1"
    assert LocalDeployment(region_name="us-west-2").region_name == "us-west-2"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config.with_name("none")))
    monkeypatch.delenv("AWS_REGION")
    assert LocalDeployment().region_name == "us-east-1"


# -- the command line ---------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["threads"], ["history", "t"], ["show", "t"], ["diff", "t", "a", "b"], ["verify"],
    ["export"], ["rebuild", "--all"],
])
def test_every_connecting_command_takes_the_aws_flags(argv: list[str]) -> None:
    args = build_parser().parse_args(
        [*argv, "--profile", "audit", "--region", "eu-west-3", "--endpoint-url", "http://x"])
    assert (args.profile, args.region, args.endpoint_url) == ("audit", "eu-west-3", "http://x")


def _rebuild_args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["rebuild", "--all", *flags])


def test_rebuild_passes_the_flags_to_the_projector_as_its_variables(config: Path) -> None:
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "x"}
    got = projector_env(_rebuild_args("--region", "eu-west-3", "--endpoint-url", "http://d"),
                        "t", "b", env)
    assert (got["AWS_REGION"], got["AWS_ENDPOINT_URL_DYNAMODB"]) == ("eu-west-3", "http://d")
    assert (got["TABLE_NAME"], got["BUCKET_NAME"], got["AWS_ACCESS_KEY_ID"]) == ("t", "b", "k")
    # As in the AWS CLI, --profile wins over the environment's credentials.
    got = projector_env(_rebuild_args("--profile", "audit"), "t", None, env)
    assert got["AWS_PROFILE"] == "audit" and "AWS_ACCESS_KEY_ID" not in got
    assert got["AWS_REGION"] == "x"  # AWS_DEFAULT_REGION still beats the profile's
    with pytest.raises(errors.NotConfiguredError, match="pass --region"):
        projector_env(_rebuild_args("--profile", "bare"), "t", None, {})


# -- messages in the caller's terms ------------------------------------------------------------


def test_no_region_says_what_to_set_in_the_callers_terms(config: Path) -> None:
    with pytest.raises(errors.NotConfiguredError) as python:
        aws.clients(profile_name="bare")
    with pytest.raises(errors.NotConfiguredError) as cli:
        aws.clients(profile_name="bare", terms=aws.COMMAND_LINE)
    with pytest.raises(errors.NotConfiguredError) as env:
        aws.clients_from_env({"AWS_PROFILE": "bare"}, max_attempts=1)
    assert str(python.value) == (
        "no AWS region configured: pass region_name=, or set AWS_REGION or "
        "AWS_DEFAULT_REGION, or use a profile that has one (AWS_PROFILE, or "
        "boto3_session=boto3.Session(profile_name=...)); profile 'bare' has none")
    assert str(cli.value) == (
        "no AWS region configured: pass --region, or set AWS_REGION or AWS_DEFAULT_REGION, "
        "or use a profile that has one (--profile or AWS_PROFILE); profile 'bare' has none")
    assert str(env.value).startswith("no AWS region configured: set AWS_REGION or")
    with pytest.raises(errors.NotConfiguredError,
                       match="no AWS region configured to read the secret: pass --region"):
        aws.secret_value("name", boto3_session=aws.new_session("bare"),
                         terms=aws.COMMAND_LINE)


def test_a_missing_profile_is_named(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(errors.NotConfiguredError,
                       match=r"profile 'nope' was not found in .*config.*: check --profile or "
                       "AWS_PROFILE"):
        aws.clients(profile_name="nope", terms=aws.COMMAND_LINE)
    monkeypatch.setenv("AWS_PROFILE", "gone")
    with pytest.raises(errors.NotConfiguredError,
                       match="profile 'gone' was not found .*check AWS_PROFILE, or "
                       r"boto3_session=boto3\.Session\(profile_name=\.\.\.\)"):
        aws.clients(region_name="us-east-1")


def _fail(clients: aws.Clients, service: str) -> str:
    """The message of one request to an endpoint where nothing listens."""
    client: Any = clients.dynamodb if service == aws.DYNAMODB else clients.s3
    fn = client.list_tables if service == aws.DYNAMODB else client.list_buckets
    with pytest.raises(errors.JournalError) as info:
        aws.call(fn, service=service, resource="r", what="op")
    return str(info.value)


def test_an_unreachable_endpoint_names_the_callers_setting(config: Path) -> None:
    dead = "http://127.0.0.1:9"  # the unit tier refuses it as if nothing listened
    kw: dict[str, Any] = {"endpoint_url": dead, "region_name": "us-east-1", "max_attempts": 1}
    python = _fail(aws.clients(**kw, boto3_session=_keyed()), aws.DYNAMODB)
    assert "Check endpoint_url=, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL" in python
    cli = _fail(aws.clients(**kw, boto3_session=_keyed(), terms=aws.COMMAND_LINE), aws.DYNAMODB)
    assert "Check --endpoint-url, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL" in cli
    python_s3 = _fail(aws.clients(**kw, boto3_session=_keyed()), aws.S3)
    assert "Check s3_endpoint_url=, endpoint_url=, AWS_ENDPOINT_URL_S3" in python_s3
    cli_s3 = _fail(aws.clients(**kw, boto3_session=_keyed(), terms=aws.COMMAND_LINE), aws.S3)
    assert "Check AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL and" in cli_s3


def test_no_credentials_names_the_callers_setting(config: Path) -> None:
    kw: dict[str, Any] = {"region_name": "us-east-1", "max_attempts": 1,
                          "endpoint_url": "http://127.0.0.1:9"}
    assert "Pass --profile, or set AWS_PROFILE" in _fail(
        aws.clients(**kw, terms=aws.COMMAND_LINE), aws.DYNAMODB)
    assert "pass boto3_session=" in _fail(aws.clients(**kw), aws.DYNAMODB)


def test_a_table_not_found_says_in_which_region_it_was_looked_for(
        config: Path) -> None:
    # --profile takes the profile's credentials, not the environment's (as the AWS CLI).
    config.with_name("credentials").write_text(
        "[audit]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    with mock_aws():
        cli = aws.clients(profile_name="audit", terms=aws.COMMAND_LINE)
        with pytest.raises(errors.TableNotFoundError) as info:
            aws.call(lambda: cli.dynamodb.describe_table(TableName="journal"),
                     service=aws.DYNAMODB, resource="journal", what="read")
    message = str(info.value)
    assert "'journal' was not found in ap-south-1 (https://dynamodb.ap-south-1" in message
    assert "--table or CHECKPOINT_JOURNAL_TABLE" in message
    assert "region (--region, AWS_REGION, AWS_DEFAULT_REGION, the profile's)" in message
    assert "table_name" not in message and "region_name=" not in message


def _keyed() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s")
