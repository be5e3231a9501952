"""How the reading commands reach a deployment: one :func:`connect` for every command.

``--table`` and ``--bucket`` default to ``$CHECKPOINT_JOURNAL_TABLE`` and
``$CHECKPOINT_JOURNAL_BUCKET`` (the export lines ``checkpoint-journal local`` prints);
``--endpoint-url`` is DynamoDB's, and S3 keeps boto3's own endpoint resolution
(``AWS_ENDPOINT_URL_S3``); ``--region`` and credentials default to boto3's. Clients come
from ``aws.clients`` only, so every AWS failure reaches the command as a
``JournalError`` naming the service.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

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

    @classmethod
    def of(cls, clients: aws.Clients, table: str, bucket: str | None) -> Connection:
        """A connection over clients made elsewhere (the demo's, on its deployment)."""
        return cls(
            table=table, bucket=bucket, store=DynamoJournalStore(clients.dynamodb, table),
            blobs=BlobStore(clients.s3, bucket) if bucket else None,
            dynamodb=clients.dynamodb, s3=clients.s3, region=clients.region,
        )

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
    return Connection.of(_clients(getattr(args, "endpoint_url", None),
                                  getattr(args, "region", None)), table, bucket)


def _clients(endpoint_url: str | None, region: str | None) -> aws.Clients:
    # --endpoint-url is DynamoDB's; S3 keeps boto3's own resolution (AWS_ENDPOINT_URL_S3).
    return aws.clients(endpoint_url=endpoint_url, region_name=region,
                       max_attempts=MAX_ATTEMPTS, s3_follows_endpoint_url=False)
