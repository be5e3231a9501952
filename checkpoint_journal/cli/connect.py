"""How the reading commands reach a deployment: one :func:`connect` for every command.

``--table`` and ``--bucket`` default to ``$CHECKPOINT_JOURNAL_TABLE`` and
``$CHECKPOINT_JOURNAL_BUCKET`` (the export lines ``checkpoint-journal local`` prints).
The rest resolves as the AWS CLI does: ``--profile``, else ``AWS_PROFILE``; ``--region``,
else ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's; ``--endpoint-url`` (DynamoDB's),
else ``AWS_ENDPOINT_URL_DYNAMODB``, ``AWS_ENDPOINT_URL``, the profile's, while S3 keeps
boto3's own resolution (``AWS_ENDPOINT_URL_S3``). Clients come from ``aws.clients`` only,
with the command line's terms, so every AWS failure reaches the command as a
``JournalError`` naming the service and the flag or variable to fix.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from checkpoint_journal import errors
from checkpoint_journal._core import aws
from checkpoint_journal._core.blobs import BlobStore
from checkpoint_journal._core.store import DynamoJournalStore
from checkpoint_journal.cli.errors import UsageError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

TABLE_ENV = "CHECKPOINT_JOURNAL_TABLE"
BUCKET_ENV = "CHECKPOINT_JOURNAL_BUCKET"
# Attempts per request: a person is waiting, so fail fast (the saver's default is 8).
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Connection:
    """The journal table and blob bucket of one deployment, and the clients that reach
    them. ``close`` when done."""

    table: str
    bucket: str | None
    store: DynamoJournalStore
    blobs: BlobStore | None
    """The bucket's objects; None without a bucket."""
    dynamodb: DynamoDBClient
    """For the archive reader (``iter_archive``), which reads keys and referenced bodies
    with its own requests; everything else goes through ``store``."""
    s3: S3Client
    """For the archive reader, which lists and reads ``archive/``."""
    region: str
    clients: aws.Clients

    @classmethod
    def of(cls, clients: aws.Clients, table: str, bucket: str | None) -> Connection:
        """A connection over clients made elsewhere (the demo's, on its deployment)."""
        return cls(
            table=table, bucket=bucket, store=DynamoJournalStore(clients.dynamodb, table),
            blobs=BlobStore(clients.s3, bucket) if bucket else None,
            dynamodb=clients.dynamodb, s3=clients.s3, region=clients.region, clients=clients,
        )

    def secret(self, secret_id: str) -> str:
        """A Secrets Manager secret's string, read with the same profile and region as the
        table (the ARN's region when ``secret_id`` is one)."""
        return aws.secret_value(secret_id, region_name=self.region,
                                boto3_session=self.clients.session, terms=self.clients.terms)

    def close(self) -> None:
        self.store.close()


def names(args: argparse.Namespace, *, bucket_for: str | None = None) -> tuple[str, str | None]:
    """The table and bucket a command names, by flag or environment.

    ``bucket_for`` says why the command cannot do without a bucket (None: it can).

    Raises:
        UsageError: no table, or no bucket where one is needed.
    """
    bucket = args.bucket or os.environ.get(BUCKET_ENV) or None
    table = args.table or os.environ.get(TABLE_ENV) or None
    if bucket is None and bucket_for is not None:
        raise UsageError(f"no bucket: pass --bucket or set {BUCKET_ENV} (the BucketName "
                         f"output of your stack): {bucket_for}")
    if table is None:
        raise UsageError(f"no table: pass --table or set {TABLE_ENV} (the TableName output "
                         "of your stack; `checkpoint-journal local` prints the export lines)")
    return table, bucket


def connect(args: argparse.Namespace, *, bucket_for: str | None = None) -> Connection:
    """The deployment the command line names (see :func:`names` for the errors)."""
    table, bucket = names(args, bucket_for=bucket_for)
    return Connection.of(_clients(args), table, bucket)


def _clients(args: argparse.Namespace) -> aws.Clients:
    # --endpoint-url is DynamoDB's; S3 keeps boto3's own resolution (AWS_ENDPOINT_URL_S3).
    return aws.clients(
        profile_name=getattr(args, "profile", None), region_name=getattr(args, "region", None),
        endpoint_url=getattr(args, "endpoint_url", None), max_attempts=MAX_ATTEMPTS,
        s3_follows_endpoint_url=False, terms=aws.COMMAND_LINE,
    )


def projector_env(args: argparse.Namespace, table: str, bucket: str | None,
                  env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Lambda-style environment that ``rebuild`` runs the projector's own code with:
    ``env`` (default ``os.environ``) with the table, the bucket, and the connection flags
    as the variables the projector reads (``--region`` as ``AWS_REGION``, ``--profile`` as
    ``AWS_PROFILE``, ``--endpoint-url`` as ``AWS_ENDPOINT_URL_DYNAMODB``).

    The region is resolved here, so that a missing one or a missing profile is reported
    in the command line's terms.

    Raises:
        NotConfiguredError: no region, or no such profile.
    """
    out = {**(os.environ if env is None else env), "TABLE_NAME": table,
           "BUCKET_NAME": bucket or ""}
    profile = getattr(args, "profile", None)
    if profile:
        out["AWS_PROFILE"] = profile
        # As with the AWS CLI, --profile wins over credentials in the environment.
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            out.pop(name, None)
    session = aws.new_session(out.get("AWS_PROFILE") or None, terms=aws.COMMAND_LINE)
    region = aws.region_of(session, region_name=getattr(args, "region", None), env=out)
    if not region:
        raise errors.NotConfiguredError(aws.no_region_message(aws.COMMAND_LINE, session))
    out["AWS_REGION"] = region
    endpoint = getattr(args, "endpoint_url", None)
    if endpoint:
        out["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    return out
