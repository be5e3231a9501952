"""The projector Lambda: DynamoDB stream of the journal table -> view, blobs, indexes.

Entry point ``checkpoint_journal.stream_handlers.projector.handler`` (template.yaml,
``ProjectorFunction``). Powertools processes the batch record by record and answers with
a partial batch response, so Lambda retries (and bisects) only from the first failed
record. The work itself is in ``_projector`` and folds a whole namespace at a time: the
first record of a namespace projects it, later records of the same namespace in the same
invocation find it done (their items were in the table before the batch was read).

Environment: ``TABLE_NAME``, ``BUCKET_NAME``, ``INLINE_LIMIT_BYTES`` and boto3's usual
variables (``AWS_ENDPOINT_URL_DYNAMODB``/``AWS_ENDPOINT_URL_S3`` point it at a local
deployment). Logs carry keys, counts and sizes, never payloads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
)

from checkpoint_journal._core import aws
from checkpoint_journal._core import blobs as _blobs
from checkpoint_journal.stream_handlers._lambda import (
    Handler,
    entry_point,
    observability,
)
from checkpoint_journal.stream_handlers._projector import (
    Doorbell,
    Projector,
    Stats,
    doorbell,
    merge,
)

SERVICE = "checkpoint-journal-projector"
# Namespaces of one batch projected at once (each also overlaps its own writes).
NAMESPACE_CONCURRENCY = 8


def make_projector(env: Mapping[str, str], *, terms: aws.Terms = aws.ENVIRONMENT) -> Projector:
    """A Projector configured from a Lambda-style environment; ``terms`` words its AWS
    errors (``rebuild`` gives the command line's)."""
    table = env.get("TABLE_NAME")
    if not table:
        raise RuntimeError("TABLE_NAME is not set: the projector needs the journal table")
    clients = aws.clients_from_env(env, max_attempts=8, terms=terms)
    bucket = env.get("BUCKET_NAME") or None
    ddb, s3 = clients.dynamodb, (clients.s3 if bucket else None)
    return Projector(
        ddb=ddb, s3=s3, table_name=table, bucket=bucket,
        inline_limit=int(env.get("INLINE_LIMIT_BYTES") or _blobs.DEFAULT_INLINE_LIMIT_BYTES),
    )


def make_handler(env: Mapping[str, str], projector: Projector | None = None) -> Handler:
    """The Lambda handler, built from an explicit environment (the local stream runner
    calls this; Lambda calls ``handler``, built from ``os.environ``). Tests may pass a
    ``projector`` of their own (e.g. with instrumented clients)."""
    projector = projector or make_projector(env)
    obs = observability(env, SERVICE, "CHECKPOINT_JOURNAL_PROJECTOR_LOG_LEVEL")
    logger, metrics, tracer = obs.logger, obs.metrics, obs.tracer
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    pool = ThreadPoolExecutor(NAMESPACE_CONCURRENCY, thread_name_prefix="cj-namespaces")

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.monotonic()
        total = Stats()
        records = event.get("Records") or []
        oldest = min(
            (r.get("dynamodb", {}).get("ApproximateCreationDateTime") or time.time()
             for r in records),
            default=time.time(),
        )

        # Every record of the batch was in the table before the projections read it:
        # projecting a namespace once, for the union of what its records ask, covers all
        # of them. Namespaces are independent: they are projected concurrently, and a
        # record fails exactly when its namespace's projection failed.
        wanted = merge(b for r in records if (b := doorbell(r)) is not None)
        outcome: dict[tuple[str, str], BaseException | None] = {}

        def run(key: tuple[str, str]) -> None:
            try:
                total_add(projector.project(wanted[key]))
                outcome[key] = None
            except Exception as e:  # reported per record below
                outcome[key] = e

        lock = threading.Lock()

        def total_add(stats: Stats) -> None:
            with lock:
                total.add(stats)

        list(pool.map(run, list(wanted)))

        @tracer.capture_method(capture_response=False)
        def record_handler(record: DynamoDBRecord) -> None:
            bell = doorbell(record.raw_event)
            if bell is None:
                return
            error = outcome.get((bell.thread_id, bell.checkpoint_ns))
            if error is not None:
                raise error

        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        failed = len(response.get("batchItemFailures", []))
        logger.info(
            "batch projected",
            extra={
                "records": len(records), "failed": failed, "namespaces": total.namespaces,
                "views_written": total.views_written, "blobs_offloaded": total.blobs_offloaded,
                "blob_bytes": total.blob_bytes, "items_deleted": total.items_deleted,
                "blobs_deleted": total.blobs_deleted,
                "ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
        metrics.add_metric("RecordsFolded", MetricUnit.Count, len(records) - failed)
        metrics.add_metric("RecordsFailed", MetricUnit.Count, failed)
        metrics.add_metric("ViewsWritten", MetricUnit.Count, total.views_written)
        metrics.add_metric("BlobsOffloaded", MetricUnit.Count, total.blobs_offloaded)
        metrics.add_metric("BlobBytes", MetricUnit.Bytes, total.blob_bytes)
        metrics.add_metric("BytesWritten", MetricUnit.Bytes, total.bytes_written)
        metrics.add_metric("LagMs", MetricUnit.Milliseconds, max(0.0, (time.time() - oldest) * 1000))
        obs.publish()
        return dict(response)

    return handle


handler = entry_point(make_handler)
"""Lambda entry point (template.yaml's Handler)."""


__all__ = ["Doorbell", "handler", "make_handler", "make_projector"]
