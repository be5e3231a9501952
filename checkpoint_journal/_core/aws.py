"""The one boundary to AWS: every boto3 client is built here, every botocore error is
translated here.

Everything above this module speaks ``checkpoint_journal.errors``: a failed request
reaches the caller as a :class:`~checkpoint_journal.errors.JournalError` subclass whose
message names the service, the resource and what to do, raised ``from`` the botocore
error so that the AWS detail stays in the chain. Retries (botocore's ``standard`` mode,
exponential back-off with jitter), timeouts and endpoints are configured here once.

Endpoints and regions resolve as the AWS tools do: an explicit argument first, then
boto3's own resolution (``AWS_ENDPOINT_URL_DYNAMODB``, ``AWS_ENDPOINT_URL_S3``,
``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, the profile), plus ``AWS_REGION``, which the
Lambda runtime and most AWS SDKs read but boto3 does not.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.exceptions
from botocore.config import Config

from checkpoint_journal import errors

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

DYNAMODB = "DynamoDB"
S3 = "S3"
SECRETS = "Secrets Manager"

# Attempts per request, the first included (botocore ``standard`` mode): enough to ride
# out a throttling burst on a fresh on-demand table, few enough that a real outage
# surfaces within seconds as TransientError.
DEFAULT_MAX_ATTEMPTS = 8
# Connections per client: the saver and the projector overlap up to 8 requests per
# operation (chunks, blobs, namespaces), from more than one thread.
MAX_POOL_CONNECTIONS = 32
# Seconds to connect and to wait for a response. botocore's default read timeout is
# 60 s; a stalled S3 GET must fail over to the journal long before a Lambda times out.
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 20

_CREDENTIAL_CODES = frozenset({
    "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException",
    "ExpiredTokenException", "ExpiredToken", "MissingAuthenticationTokenException",
    "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken",
})
_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "AllAccessDisabled"})
_TRANSIENT_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling",
    "RequestLimitExceeded", "InternalServerError", "InternalError", "ServiceUnavailable",
    "SlowDown", "TransactionConflictException", "RequestTimeout", "503", "500",
    "ConditionalRequestConflict", "OperationAborted",
})
_MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# The variable that points boto3 at each service's endpoint.
_ENDPOINT_VARIABLE = {DYNAMODB: "AWS_ENDPOINT_URL_DYNAMODB", S3: "AWS_ENDPOINT_URL_S3"}


class ConditionFailed(errors.ConflictError):
    """A conditional write found the item not as its condition required.

    Callers that write conditionally catch it; ``item`` is the existing item when the
    request asked for it (``ReturnValuesOnConditionCheckFailure="ALL_OLD"``).
    """

    def __init__(self, message: str, item: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.item = item


class TransactionCanceled(errors.JournalError):
    """A TransactWriteItems was cancelled: none of its actions was applied.

    ``reasons`` has one entry per action, in order, as DynamoDB gives them: ``Code``
    ("None" for an action that did not fail, "ConditionalCheckFailed",
    "TransactionConflict", "ThrottlingError", ...) and, for a failed condition asked
    with ``ReturnValuesOnConditionCheckFailure="ALL_OLD"``, the existing ``Item``.
    Callers that write transactionally catch it and decide from the reasons.
    """

    def __init__(self, message: str, reasons: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.reasons = reasons

    def code(self, action: int) -> str:
        """The reason code of action ``action`` ("None" when it did not fail or when
        DynamoDB gave no reason for it)."""
        if action < len(self.reasons):
            return str(self.reasons[action].get("Code") or "None")
        return "None"

    def item(self, action: int) -> dict[str, Any] | None:
        """The existing item of action ``action`` whose condition failed, if asked for."""
        if action < len(self.reasons):
            found: dict[str, Any] | None = self.reasons[action].get("Item")
            return found
        return None


@dataclass(frozen=True)
class Clients:
    """The clients of one deployment, from one session."""

    dynamodb: DynamoDBClient
    s3: S3Client
    region: str


def region_from(env: Mapping[str, str]) -> str | None:
    """The region an environment names: ``AWS_REGION`` (Lambda, most SDKs), then
    ``AWS_DEFAULT_REGION`` (the AWS CLI, boto3)."""
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None


def _config(max_attempts: int) -> Config:
    return Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=MAX_POOL_CONNECTIONS,
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
    )


def clients(
    *,
    boto3_session: boto3.session.Session | None = None,
    endpoint_url: str | None = None,
    s3_endpoint_url: str | None = None,
    region_name: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    s3_follows_endpoint_url: bool = True,
) -> Clients:
    """A DynamoDB and an S3 client from one session, with the retry budget, timeouts
    and pool configured here.

    S3 goes to ``s3_endpoint_url``, else to ``endpoint_url`` (one emulator serving
    both), unless ``s3_follows_endpoint_url`` is False: then, without
    ``s3_endpoint_url``, S3 keeps boto3's own resolution (``AWS_ENDPOINT_URL_S3``), as
    the command line's ``--endpoint-url`` (DynamoDB's) wants.

    Raises NotConfiguredError when no region can be found, naming the ways to set one.
    """
    session = boto3_session or boto3.session.Session()
    region = region_name or session.region_name or region_from(os.environ)
    kw: dict[str, Any] = {"config": _config(max_attempts)}
    if region:
        kw["region_name"] = region
    try:
        ddb = session.client("dynamodb", endpoint_url=endpoint_url, **kw)
        s3_endpoint = s3_endpoint_url or (endpoint_url if s3_follows_endpoint_url else None)
        s3 = session.client("s3", endpoint_url=s3_endpoint, **kw)
    except botocore.exceptions.NoRegionError as e:
        raise errors.NotConfiguredError(
            "no AWS region configured: pass --region (region_name= in Python), or set "
            "AWS_REGION or AWS_DEFAULT_REGION, or configure one in your AWS profile"
        ) from e
    return Clients(ddb, s3, ddb.meta.region_name)


def clients_from_env(env: Mapping[str, str], *, max_attempts: int) -> Clients:
    """Clients for a stream handler, from a Lambda-style environment passed explicitly
    (the local stream runner gives each deployment its own; Lambda gives ``os.environ``)."""
    session = boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=env.get("AWS_SESSION_TOKEN"),
        region_name=region_from(env),
    )
    return clients(
        boto3_session=session,
        endpoint_url=env.get("AWS_ENDPOINT_URL_DYNAMODB") or env.get("AWS_ENDPOINT_URL") or None,
        s3_endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
        max_attempts=max_attempts,
    )


def secret_value(secret_id: str, *, region_name: str | None = None,
                 boto3_session: boto3.session.Session | None = None) -> str:
    """The string value of a Secrets Manager secret (the stack's chain key)."""
    session = boto3_session or boto3.session.Session()
    region = region_name or session.region_name or region_from(os.environ)
    try:
        client = session.client("secretsmanager", region_name=region,
                                config=_config(DEFAULT_MAX_ATTEMPTS))
    except botocore.exceptions.NoRegionError as e:
        raise errors.NotConfiguredError(
            "no AWS region configured to read the secret: pass --region, or set AWS_REGION "
            "or AWS_DEFAULT_REGION"
        ) from e
    got = call(lambda: client.get_secret_value(SecretId=secret_id), service=SECRETS,
               resource=secret_id, what="read the chain key",
               denied_hint="attach the stack's AuditorPolicy (secretsmanager:GetSecretValue)")
    value = got.get("SecretString")
    if not isinstance(value, str):
        raise errors.NotConfiguredError(
            f"secret {secret_id!r} holds no string value: the chain key is a SecretString")
    return value


def is_aws_error(e: BaseException) -> bool:
    """Whether ``e`` is an error botocore raised (for callers that must not let one
    escape untranslated, such as a command line's last resort)."""
    return isinstance(e, botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError)


def call(
    fn: Callable[[], T], *, service: str, resource: str, what: str,
    denied_hint: str | None = None,
) -> T:
    """``fn()`` with every botocore error it raises translated (see :func:`translate`)."""
    try:
        return fn()
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        raise translate(e, service=service, resource=resource, what=what,
                        denied_hint=denied_hint) from e


def paginate(
    pages: Iterable[T], *, service: str, resource: str, what: str,
    denied_hint: str | None = None,
) -> Iterator[T]:
    """A boto3 paginator's pages, with every botocore error translated."""
    it = iter(pages)
    while True:
        try:
            page = next(it)
        except StopIteration:
            return
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            raise translate(e, service=service, resource=resource, what=what,
                            denied_hint=denied_hint) from e
        yield page


def translate(
    e: Exception, *, service: str, resource: str, what: str, denied_hint: str | None = None,
) -> errors.JournalError:
    """The checkpoint_journal error for a botocore error (the caller raises it ``from e``).

    ``service`` is :data:`DYNAMODB`, :data:`S3` or :data:`SECRETS`; ``resource`` the table,
    bucket (or ``bucket/key``) or secret; ``denied_hint`` what a role lacking a
    permission should attach instead of the default advice.
    """
    where = f"{service} {resource!r}"
    if isinstance(e, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return errors.CredentialsError(
            f"{what}: no AWS credentials found for {service}. Configure a profile "
            "(AWS_PROFILE), environment variables or an instance role."
        )
    if isinstance(e, botocore.exceptions.EndpointConnectionError):
        return errors.NotConfiguredError(
            f"{what}: cannot reach the {service} endpoint ({e}). Check --endpoint-url "
            f"(endpoint_url=), {_ENDPOINT_VARIABLE.get(service, 'AWS_ENDPOINT_URL')} and "
            "that the service is running."
        )
    if isinstance(e, botocore.exceptions.ClientError):
        err = e.response.get("Error", {})
        code, msg = str(err.get("Code", "")), str(err.get("Message", ""))
        if code == "PreconditionFailed" and service == S3:  # IfNoneMatch: the key exists
            return ConditionFailed(f"{what}: {where} already exists", None)
        if code == "ConditionalCheckFailedException":
            item: Any = e.response.get("Item")
            return ConditionFailed(f"{what}: the condition on {where} did not hold", item)
        if code == "TransactionCanceledException":
            reasons: Any = e.response.get("CancellationReasons") or []
            return TransactionCanceled(
                f"{what}: {service} cancelled the transaction on {where} ({msg})",
                [dict(r) for r in reasons])
        if code == "ResourceNotFoundException" and service == DYNAMODB:
            return errors.TableNotFoundError(
                f"{what}: DynamoDB table {resource!r} was not found ({msg}). Deploy the stack "
                "(sam deploy) or pass the TableName output of your stack (--table, table_name=)."
            )
        if code == "ResourceNotFoundException" and service == SECRETS:
            return errors.NotConfiguredError(
                f"{what}: secret {resource!r} was not found. Pass the ChainKeySecretArn output "
                "of your stack."
            )
        if code == "NoSuchBucket":
            return errors.BucketNotFoundError(
                f"{what}: S3 bucket {resource.split('/', 1)[0]!r} does not exist. Deploy the "
                "stack (sam deploy) or pass the BucketName output of your stack (--bucket, bucket=)."
            )
        if code in _MISSING_OBJECT_CODES and service == S3:
            return errors.ObjectNotFoundError(f"{what}: S3 object {resource!r} does not exist")
        if code in _CREDENTIAL_CODES:
            return errors.CredentialsError(
                f"{what}: {service} rejected the credentials ({code}: {msg}). Refresh or fix "
                "them (aws sts get-caller-identity tells which identity you are using)."
            )
        if code in _DENIED_CODES:
            return errors.AccessDeniedError(
                f"{what}: {service} denied access to {resource!r} ({msg}). "
                + (denied_hint or "Attach the stack's AgentPolicy output to this role.")
            )
        if code in _TRANSIENT_CODES:
            return errors.TransientError(
                f"{what}: {service} kept failing after the retry budget ({code}: {msg}). "
                "Retry later, or raise max_attempts."
            )
        if code == "ValidationException" and "size" in msg.lower():
            return errors.PayloadTooLargeError(f"{what}: DynamoDB refused the item: {msg}")
        return errors.JournalError(f"{what}: {service} refused the request ({code}: {msg})")
    if isinstance(e, botocore.exceptions.ReadTimeoutError | botocore.exceptions.ConnectTimeoutError
                  | botocore.exceptions.ConnectionClosedError
                  | botocore.exceptions.ResponseStreamingError
                  | botocore.exceptions.IncompleteReadError):
        return errors.TransientError(
            f"{what}: {service} did not answer in time or dropped the connection "
            f"({type(e).__name__}). Retry later; check the network to {where}."
        )
    if isinstance(e, botocore.exceptions.NoRegionError):
        return errors.NotConfiguredError(
            f"{what}: no AWS region configured: pass --region, or set AWS_REGION or "
            "AWS_DEFAULT_REGION"
        )
    return errors.JournalError(f"{what}: unexpected {service} error: {type(e).__name__}: {e}")
