"""botocore errors are translated once (``_core/aws.py``), into errors that name the
service and say what to do."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest

from checkpoint_journal import errors
from checkpoint_journal._core import aws


def client_error(code: str, msg: str = "m", **extra: Any) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": msg}, **extra}, "Op")  # type: ignore[arg-type]


DDB, S3 = aws.DYNAMODB, aws.S3


@pytest.mark.parametrize(
    ("exc", "service", "cls", "hint"),
    [
        (client_error("ResourceNotFoundException"), DDB, errors.TableNotFoundError, "sam deploy"),
        (client_error("UnrecognizedClientException"), DDB, errors.CredentialsError, "sts"),
        (client_error("ExpiredTokenException"), DDB, errors.CredentialsError, "Refresh"),
        (client_error("AccessDeniedException"), DDB, errors.AccessDeniedError, "AgentPolicy"),
        (client_error("ProvisionedThroughputExceededException"), DDB, errors.TransientError,
         "max_attempts"),
        (client_error("ThrottlingException"), DDB, errors.TransientError, "Retry later"),
        (client_error("ValidationException", "Item size has exceeded"), DDB,
         errors.PayloadTooLargeError, "refused"),
        (client_error("SomethingNew"), DDB, errors.JournalError, "DynamoDB refused"),
        (botocore.exceptions.NoCredentialsError(), DDB, errors.CredentialsError, "AWS_PROFILE"),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"), DDB,
         errors.NotConfiguredError, "cannot reach the DynamoDB endpoint"),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"), S3,
         errors.NotConfiguredError, "cannot reach the S3 endpoint.*AWS_ENDPOINT_URL_S3"),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"), S3,
         errors.TransientError, "S3 did not answer in time"),
        (client_error("NoSuchBucket"), S3, errors.BucketNotFoundError, "BucketName"),
        (client_error("NoSuchKey"), S3, errors.ObjectNotFoundError, "does not exist"),
        (client_error("SlowDown"), S3, errors.TransientError, "S3 kept failing"),
        (client_error("AccessDenied"), S3, errors.AccessDeniedError, "S3 denied access"),
    ],
)
def test_translation(exc: Exception, service: str, cls: type[Exception], hint: str) -> None:
    def fail() -> None:
        raise exc

    with pytest.raises(cls, match=hint) as info:
        aws.call(fail, service=service, resource="res", what="op")
    assert info.value.__cause__ is exc
    assert isinstance(info.value, errors.JournalError)
    assert service in str(info.value) or cls in (errors.TableNotFoundError,
                                                 errors.BucketNotFoundError)


def test_a_failed_condition_carries_the_existing_item() -> None:
    old = {"PK": {"S": "T#a"}, "SK": {"S": "J#x"}}
    err = client_error("ConditionalCheckFailedException", Item=old)
    got = aws.translate(err, service=DDB, resource="tbl", what="append")
    assert isinstance(got, aws.ConditionFailed) and got.item == old
    assert isinstance(got, errors.ConflictError)


def test_the_denied_hint_names_what_to_attach() -> None:
    got = aws.translate(client_error("AccessDenied"), service=S3, resource="b/k", what="read",
                        denied_hint="Attach the AuditorPolicy.")
    assert "Attach the AuditorPolicy." in str(got) and "AgentPolicy" not in str(got)


def test_errors_outside_botocore_pass_through() -> None:
    def fail() -> None:
        raise KeyError("not an AWS error")

    with pytest.raises(KeyError):
        aws.call(fail, service=DDB, resource="tbl", what="op")


def test_paginate_translates_errors_raised_between_pages() -> None:
    def pages() -> Any:
        yield {"Items": [1]}
        raise client_error("ThrottlingException")

    got = aws.paginate(pages(), service=DDB, resource="tbl", what="list")
    assert next(got) == {"Items": [1]}
    with pytest.raises(errors.TransientError, match="DynamoDB"):
        next(got)


def test_no_region_names_the_flag_and_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    # In Python's terms here; the command line's (--region) in tests/unit/test_region.py.
    with pytest.raises(errors.NotConfiguredError,
                       match="region_name=.*AWS_REGION.*AWS_DEFAULT_REGION"):
        aws.clients()


def test_aws_region_is_honoured_like_the_aws_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert aws.clients().region == "eu-west-3"
    assert aws.clients(region_name="us-west-2").region == "us-west-2"
