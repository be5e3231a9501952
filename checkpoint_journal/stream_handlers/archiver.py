"""The archiver Lambda: DynamoDB stream of the journal table -> Avro files in S3.

Entry point ``checkpoint_journal.stream_handlers.archiver.handler`` (template.yaml,
``ArchiverFunction``), the stream's second and last consumer (DESIGN §1.2). Each
invocation writes its whole batch as one file (layout and schema in ``_archiver``), or
raises: no partial batch response, since a file per batch cannot be half written. Lambda
then retries the batch, bisecting it on each failure, and after MaximumRetryAttempts
sends its description to the function's failure queue. The object key is a function of
the batch, so a retry overwrites what an earlier attempt may have written.

Environment: ``BUCKET_NAME``, ``TABLE_NAME`` (the journal table, which holds the
threads' archive keys), ``ARCHIVE_INLINE_LIMIT_BYTES`` (bodies above it are referenced,
not copied) and boto3's usual variables (``AWS_ENDPOINT_URL_S3`` and
``AWS_ENDPOINT_URL_DYNAMODB`` point it at a local deployment). The stream records carry
every archived field; from the table it reads, creates and deletes archive keys (``K#``
items) and checks that journal events still exist (keys only), as ``_shred`` explains.
The archive keys are cached per warm container (``_shred.KeyCache``). Logs carry counts,
sizes, sequence numbers and object keys, never payloads, keys, thread ids or metadata.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from checkpoint_journal._core import aws
from checkpoint_journal._core.shred import DynamoKeyStore
from checkpoint_journal.errors import JournalError
from checkpoint_journal.stream_handlers._archiver import (
    DEFAULT_INLINE_LIMIT_BYTES,
    Archiver,
    Written,
)
from checkpoint_journal.stream_handlers._lambda import (
    Handler,
    entry_point,
    observability,
)

SERVICE = "checkpoint-journal-archiver"


def make_archiver(env: Mapping[str, str]) -> Archiver:
    """An Archiver configured from a Lambda-style environment."""
    bucket = env.get("BUCKET_NAME")
    if not bucket:
        raise RuntimeError("BUCKET_NAME is not set: the archiver writes to the blob bucket")
    table = env.get("TABLE_NAME")
    if not table:
        # Never archive in clear for want of a setting: delete_thread could not erase it.
        raise RuntimeError("TABLE_NAME is not set: the archiver keeps the threads' archive "
                           "keys in the journal table")
    # A few quick retries inside the invocation; past them Lambda retries the batch.
    clients = aws.clients_from_env(env, max_attempts=4)
    s3, ddb = clients.s3, clients.dynamodb
    return Archiver(
        s3=s3, bucket=bucket, keys=DynamoKeyStore(ddb, table),
        inline_limit=int(env.get("ARCHIVE_INLINE_LIMIT_BYTES") or DEFAULT_INLINE_LIMIT_BYTES),
        lock_mode=env.get("ARCHIVE_OBJECT_LOCK_MODE") or None,
        retention_days=int(env.get("ARCHIVE_RETENTION_DAYS") or 0),
    )


def make_handler(env: Mapping[str, str], archiver: Archiver | None = None) -> Handler:
    """The Lambda handler, built from an explicit environment (the local stream runner
    calls this; Lambda calls ``handler``, built from ``os.environ``). Tests may pass an
    ``archiver`` of their own (e.g. with a failing S3 client)."""
    archiver = archiver or make_archiver(env)
    obs = observability(env, SERVICE, "CHECKPOINT_JOURNAL_ARCHIVER_LOG_LEVEL")
    logger, metrics, tracer = obs.logger, obs.metrics, obs.tracer

    @tracer.capture_method(capture_response=False)
    def archive(records: list[dict[str, Any]]) -> Written:
        return archiver.archive(records)

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.monotonic()
        records = event.get("Records") or []
        sequence = [str(r.get("dynamodb", {}).get("SequenceNumber", "")) for r in records]
        where = {"records": len(records), "first_sequence": sequence[0] if sequence else None,
                 "last_sequence": sequence[-1] if sequence else None}
        try:
            written = archive(records)
        except Exception as e:
            # The whole batch fails: Lambda retries it (bisecting), then records it in the
            # failure queue. Nothing was written, or a file a retry overwrites.
            # Our own errors' messages name no payload; others' (fastavro's) might.
            detail = str(e)[:500] if isinstance(e, JournalError) else None
            logger.error("batch not archived",
                         extra={**where, "error": type(e).__name__, "detail": detail})
            raise
        logger.info(
            "batch archived",
            extra={**where, "archived": written.archived, "referenced": written.referenced,
                   "skipped": written.skipped, "withheld": written.withheld,
                   "keys_created": written.keys_created, "bytes": written.bytes,
                   "key": written.key,
                   "ms": round((time.monotonic() - started) * 1000, 1)},
        )
        metrics.add_metric("RecordsArchived", MetricUnit.Count, written.archived)
        metrics.add_metric("RecordsReferenced", MetricUnit.Count, written.referenced)
        metrics.add_metric("RecordsSkipped", MetricUnit.Count, written.skipped)
        # Events of threads deleted before their batch was archived (content left out).
        metrics.add_metric("RecordsWithheld", MetricUnit.Count, written.withheld)
        metrics.add_metric("ArchiveKeysCreated", MetricUnit.Count, written.keys_created)
        metrics.add_metric("ArchiveFiles", MetricUnit.Count, 1 if written.key else 0)
        metrics.add_metric("ArchiveBytes", MetricUnit.Bytes, written.bytes)
        obs.publish()
        # Lambda ignores the answer of a mapping without ReportBatchItemFailures.
        return {"key": written.key, "archived": written.archived, "skipped": written.skipped,
                "withheld": written.withheld}

    return handle


handler = entry_point(make_handler)
"""Lambda entry point (template.yaml's Handler)."""


__all__ = ["handler", "make_archiver", "make_handler"]
