"""botocore errors are translated once, into errors that say what to do."""

from __future__ import annotations

import botocore.exceptions
import pytest

from checkpoint_journal import errors
from checkpoint_journal._core.store import translate


def client_error(code: str, msg: str = "m") -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": msg}}, "Op")


@pytest.mark.parametrize(
    ("exc", "cls", "hint"),
    [
        (client_error("ResourceNotFoundException"), errors.TableNotFoundError, "sam deploy"),
        (client_error("UnrecognizedClientException"), errors.CredentialsError, "sts"),
        (client_error("ExpiredTokenException"), errors.CredentialsError, "Refresh"),
        (client_error("AccessDeniedException"), errors.AccessDeniedError, "AgentPolicy"),
        (client_error("ProvisionedThroughputExceededException"), errors.TransientError, "max_attempts"),
        (client_error("ThrottlingException"), errors.TransientError, "Retry later"),
        (client_error("ValidationException", "Item size has exceeded"), errors.PayloadTooLargeError, "refused"),
        (client_error("SomethingNew"), errors.JournalError, "unexpected"),
        (botocore.exceptions.NoCredentialsError(), errors.CredentialsError, "boto3_session"),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"), errors.NotConfiguredError, "endpoint"),
    ],
)
def test_translation(exc: Exception, cls: type[Exception], hint: str) -> None:
    with pytest.raises(cls, match=hint) as info:
        translate(exc, table="tbl", what="op")
    assert info.value.__cause__ is exc
    assert isinstance(info.value, errors.JournalError)
