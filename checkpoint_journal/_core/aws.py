"""The one boundary to AWS: every boto3 client is built here, every botocore error is
translated here.

Everything above this module speaks ``checkpoint_journal.errors``: a failed request
reaches the caller as a :class:`~checkpoint_journal.errors.JournalError` subclass whose
message names the service, the resource and what to do, raised ``from`` the botocore
error so that the AWS detail stays in the chain. Retries (botocore's ``standard`` mode,
exponential back-off with jitter), timeouts and endpoints are configured here once.

Regions resolve as the AWS CLI and SDKs do (:func:`region_of`): a flag or argument, the
region a caller's own session was built with, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then
the profile's (``--profile`` / ``AWS_PROFILE``). boto3 alone reads no ``AWS_REGION`` and
lets a profile's region beat it, so the region is resolved here and handed to every
client. Endpoints are boto3's: an argument, else ``AWS_ENDPOINT_URL_<SERVICE>``, else
``AWS_ENDPOINT_URL``, else the profile's.

Messages name what their reader can change in the reader's own terms (:class:`Terms`):
``--region`` on the command line, ``region_name=`` in Python, ``AWS_REGION`` in a
function's environment. Each client made here carries its terms, region and endpoint
into the errors its requests raise (:func:`_label`), so that a table not found names
the region it was looked for in.
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
# The variables that point boto3 at each service's endpoint, in boto3's order.
_ENDPOINT_VARIABLES = {
    DYNAMODB: ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"),
    S3: ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    SECRETS: ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"),
}
# Where a client's terms, region and endpoint ride on the errors of its requests.
_WHERE = "_checkpoint_journal_where"


@dataclass(frozen=True)
class Terms:
    """How messages name the settings their reader can change.

    The same missing region is fixed with ``--region`` on the command line,
    ``region_name=`` in Python and ``AWS_REGION`` in a Lambda function's environment:
    pass the caller's own (:data:`PYTHON`, :data:`COMMAND_LINE`, :data:`ENVIRONMENT`).
    """

    region: str
    """The flag or argument that sets the region ("" where there is none)."""
    profile: str
    """What picks the profile."""
    endpoints: Mapping[str, str]
    """Per service, the flags or arguments that set its endpoint, before the variables."""
    table: str
    bucket: str
    credentials: str
    """What to do when no credentials are found."""


PYTHON = Terms(
    region="region_name=",
    profile="AWS_PROFILE, or boto3_session=boto3.Session(profile_name=...)",
    endpoints={DYNAMODB: "endpoint_url=", S3: "s3_endpoint_url=, endpoint_url="},
    table="table_name",
    bucket="bucket=",
    credentials="Set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, pass "
    "boto3_session=, or run with an instance or task role.",
)
COMMAND_LINE = Terms(
    region="--region",
    profile="--profile or AWS_PROFILE",
    endpoints={DYNAMODB: "--endpoint-url"},
    table="--table or CHECKPOINT_JOURNAL_TABLE",
    bucket="--bucket or CHECKPOINT_JOURNAL_BUCKET",
    credentials="Pass --profile, or set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or run with an instance or task role.",
)
ENVIRONMENT = Terms(
    region="",
    profile="AWS_PROFILE",
    endpoints={},
    table="TABLE_NAME",
    bucket="BUCKET_NAME",
    credentials="Give the function an execution role, or set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY in its environment.",
)


@dataclass(frozen=True)
class _Where:
    """What the errors of one client's requests say about where they went."""

    terms: Terms
    region: str
    endpoint: str


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
    session: boto3.session.Session
    """Where the clients came from (a secret of the same deployment is read with it)."""
    terms: Terms = PYTHON


def region_from(env: Mapping[str, str]) -> str | None:
    """The region an environment names: ``AWS_REGION`` (Lambda, the AWS CLI v2, most
    SDKs), then ``AWS_DEFAULT_REGION`` (the AWS CLI, boto3)."""
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None


def _configured_region(session: boto3.session.Session, source: str) -> str | None:
    """The region ``session`` has from one source: "instance" (built with
    ``region_name=``) or "config" (its profile)."""
    core = getattr(session, "_session", None)  # boto3 keeps its botocore session there
    if core is None:
        return None
    value = core.get_config_variable("region", methods=(source,))
    return str(value) if value else None


def region_of(
    session: boto3.session.Session, *, region_name: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """The region for clients of ``session``, as the AWS CLI resolves it: ``region_name``
    (a flag or argument), the region ``session`` was built with, ``AWS_REGION``,
    ``AWS_DEFAULT_REGION``, then the session's profile. None when nothing names one.

    ``env`` is the environment to read (default ``os.environ``).
    """
    return (
        region_name
        or _configured_region(session, "instance")
        or region_from(os.environ if env is None else env)
        or _configured_region(session, "config")
        or None
    )


def new_session(
    profile_name: str | None = None, *, terms: Terms = PYTHON, **credentials: str | None,
) -> boto3.session.Session:
    """A boto3 session for ``profile_name`` (None: ``AWS_PROFILE``, else the default
    profile), with ``credentials`` (``aws_access_key_id=`` ...) if given.

    Raises NotConfiguredError when the profile does not exist.
    """
    try:
        return boto3.session.Session(profile_name=profile_name, **credentials)  # type: ignore[arg-type]
    except botocore.exceptions.ProfileNotFound as e:
        name = profile_name or os.environ.get("AWS_PROFILE", "")
        files = (f"{os.environ.get('AWS_CONFIG_FILE') or '~/.aws/config'} or "
                 f"{os.environ.get('AWS_SHARED_CREDENTIALS_FILE') or '~/.aws/credentials'}")
        raise errors.NotConfiguredError(
            f"AWS profile {name!r} was not found in {files}: check {terms.profile} "
            "(`aws configure list-profiles` lists the profiles there)"
        ) from e


def default_region(*, terms: Terms = PYTHON) -> str | None:
    """The region a client would get with no flag or argument (see :func:`region_of`)."""
    return region_of(new_session(terms=terms))


def no_region_message(terms: Terms, session: boto3.session.Session | None = None,
                      *, purpose: str = "") -> str:
    """The message for a missing region, in ``terms``: what to pass or set."""
    where = f"pass {terms.region}, or set" if terms.region else "set"
    profile = getattr(session, "profile_name", None)
    named = profile not in (None, "default")
    return (
        f"no AWS region configured{purpose}: {where} AWS_REGION or AWS_DEFAULT_REGION, or "
        f"use a profile that has one ({terms.profile})"
        + (f"; profile {profile!r} has none" if named else "")
    )


def _config(max_attempts: int) -> Config:
    return Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=MAX_POOL_CONNECTIONS,
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
    )


def _label(client: Any, terms: Terms) -> None:
    """Make the errors of ``client``'s requests carry ``terms``, its region and its
    endpoint to :func:`translate`: an error raised before any response (no endpoint,
    no credentials) as an attribute, a service's error answer inside its response."""
    where = _Where(terms, str(client.meta.region_name), str(client.meta.endpoint_url))

    def on_error(exception: BaseException, **_: Any) -> None:
        setattr(exception, _WHERE, where)

    def on_answer(http_response: Any, parsed: Any, **_: Any) -> None:
        if getattr(http_response, "status_code", 200) >= 300 and isinstance(parsed, dict):
            parsed[_WHERE] = where  # becomes the ClientError's ``response``

    client.meta.events.register("after-call-error", on_error)
    client.meta.events.register("after-call", on_answer)


def _where(e: BaseException) -> _Where | None:
    found = getattr(e, _WHERE, None)
    if found is None and isinstance(e, botocore.exceptions.ClientError):
        found = e.response.get(_WHERE)
    return found if isinstance(found, _Where) else None


def _s3_endpoint_variable() -> str | None:
    """``AWS_ENDPOINT_URL_S3``, unless boto3 is told to ignore configured endpoints."""
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return None
    return os.environ.get("AWS_ENDPOINT_URL_S3") or None


def clients(
    *,
    boto3_session: boto3.session.Session | None = None,
    profile_name: str | None = None,
    endpoint_url: str | None = None,
    s3_endpoint_url: str | None = None,
    region_name: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    s3_follows_endpoint_url: bool = True,
    terms: Terms = PYTHON,
) -> Clients:
    """A DynamoDB and an S3 client from one session, with the retry budget, timeouts
    and pool configured here.

    The session is ``boto3_session``, else a new one for ``profile_name`` (None:
    ``AWS_PROFILE``); the region is resolved by :func:`region_of`. DynamoDB goes to
    ``endpoint_url``, else to boto3's (``AWS_ENDPOINT_URL_DYNAMODB``, ``AWS_ENDPOINT_URL``,
    the profile's). S3 goes to ``s3_endpoint_url``, else ``AWS_ENDPOINT_URL_S3``, else
    ``endpoint_url`` (one emulator serving both) unless ``s3_follows_endpoint_url`` is
    False (the command line's ``--endpoint-url`` is DynamoDB's), else boto3's. ``terms``
    words every error these clients' requests raise.

    Raises NotConfiguredError when no region can be found or the profile does not exist,
    naming the ways to set one in ``terms``.
    """
    if boto3_session is not None and profile_name is not None:
        raise ValueError("pass boto3_session or profile_name, not both")
    session = boto3_session or new_session(profile_name, terms=terms)
    region = region_of(session, region_name=region_name)
    if not region:
        raise errors.NotConfiguredError(no_region_message(terms, session))
    s3_endpoint = (s3_endpoint_url or _s3_endpoint_variable()
                   or (endpoint_url if s3_follows_endpoint_url else None))
    kw: dict[str, Any] = {"config": _config(max_attempts), "region_name": region}
    ddb = session.client("dynamodb", endpoint_url=endpoint_url, **kw)
    s3 = session.client("s3", endpoint_url=s3_endpoint, **kw)
    _label(ddb, terms)
    _label(s3, terms)
    return Clients(ddb, s3, region, session, terms)


def clients_from_env(
    env: Mapping[str, str], *, max_attempts: int, terms: Terms = ENVIRONMENT,
) -> Clients:
    """Clients for a stream handler, from a Lambda-style environment passed explicitly
    (the local stream runner gives each deployment its own; Lambda gives ``os.environ``):
    its credentials, region (``AWS_REGION``, ``AWS_DEFAULT_REGION``, ``AWS_PROFILE``'s)
    and endpoints (``AWS_ENDPOINT_URL_DYNAMODB`` / ``_S3``, else ``AWS_ENDPOINT_URL``)."""
    session = new_session(
        env.get("AWS_PROFILE") or None, terms=terms,
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=env.get("AWS_SESSION_TOKEN"),
    )
    region = region_of(session, env=env)
    if not region:
        raise errors.NotConfiguredError(no_region_message(terms, session))
    return clients(
        boto3_session=session,
        region_name=region,
        endpoint_url=env.get("AWS_ENDPOINT_URL_DYNAMODB") or env.get("AWS_ENDPOINT_URL") or None,
        s3_endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
        max_attempts=max_attempts,
        # The environment says where S3 is; without a word about it, boto3 decides.
        s3_follows_endpoint_url=False,
        terms=terms,
    )


def _arn_region(secret_id: str) -> str | None:
    """The region of a secret's ARN (``arn:aws:secretsmanager:REGION:...``): where the
    secret is, whatever the caller's region."""
    parts = secret_id.split(":")
    if len(parts) >= 7 and parts[0] == "arn" and parts[2] == "secretsmanager":
        return parts[3] or None
    return None


def secret_value(secret_id: str, *, region_name: str | None = None,
                 boto3_session: boto3.session.Session | None = None,
                 terms: Terms = PYTHON) -> str:
    """The string value of a Secrets Manager secret (the stack's chain key).

    The region is the ARN's when ``secret_id`` is one, else resolved by
    :func:`region_of`; the endpoint is boto3's (``AWS_ENDPOINT_URL_SECRETS_MANAGER``).
    """
    session = boto3_session or new_session(terms=terms)
    region = _arn_region(secret_id) or region_of(session, region_name=region_name)
    if not region:
        raise errors.NotConfiguredError(
            no_region_message(terms, session, purpose=" to read the secret"))
    client = session.client("secretsmanager", region_name=region,
                            config=_config(DEFAULT_MAX_ATTEMPTS))
    _label(client, terms)
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
    permission should attach instead of the default advice. Messages name settings in
    the terms of the client that made the request (:func:`clients`), else in Python's.
    """
    where = f"{service} {resource!r}"
    made_by = _where(e)
    terms = made_by.terms if made_by is not None else PYTHON
    if isinstance(e, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return errors.CredentialsError(
            f"{what}: no AWS credentials found for {service}. {terms.credentials}"
        )
    if isinstance(e, botocore.exceptions.EndpointConnectionError):
        settings = ", ".join(
            [s for s in (terms.endpoints.get(service, ""),) if s]
            + list(_ENDPOINT_VARIABLES.get(service, ("AWS_ENDPOINT_URL",))))
        return errors.NotConfiguredError(
            f"{what}: cannot reach the {service} endpoint ({e}). Check {settings} and "
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
            # A table in another region is not found either: say where we looked.
            looked = (f" in {made_by.region} ({made_by.endpoint})" if made_by is not None
                      else "")
            region = ", ".join([s for s in (terms.region,) if s]
                               + ["AWS_REGION", "AWS_DEFAULT_REGION", "the profile's"])
            return errors.TableNotFoundError(
                f"{what}: DynamoDB table {resource!r} was not found{looked} ({msg}). Check "
                f"the table ({terms.table}: the TableName output of your stack) and the "
                f"region ({region}), or deploy the stack (sam deploy)."
            )
        if code == "ResourceNotFoundException" and service == SECRETS:
            return errors.NotConfiguredError(
                f"{what}: secret {resource!r} was not found. Pass the ChainKeySecretArn output "
                "of your stack."
            )
        if code == "NoSuchBucket":
            return errors.BucketNotFoundError(
                f"{what}: S3 bucket {resource.split('/', 1)[0]!r} does not exist. Deploy the "
                f"stack (sam deploy) or give the BucketName output of your stack ({terms.bucket})."
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
        return errors.NotConfiguredError(f"{what}: {no_region_message(terms)}")
    if isinstance(e, botocore.exceptions.ProfileNotFound):
        return errors.NotConfiguredError(f"{what}: {e}: check {terms.profile}")
    return errors.JournalError(f"{what}: unexpected {service} error: {type(e).__name__}: {e}")
