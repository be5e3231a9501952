"""LocalDeployment: the stack of ``template.yaml``, embedded, on 127.0.0.1.

    from checkpoint_journal.local import LocalDeployment

    with LocalDeployment() as dep:              # moto server: DynamoDB, Streams, S3
        graph = builder.compile(checkpointer=dep.saver())
        ...
        dep.drain(timeout=30)                   # every stream consumer caught up

``backend="dynamodb-local"`` runs AWS's DynamoDB Local (Java, in memory, telemetry off)
for the table and keeps moto for S3. The table and the bucket are created from the
resource definitions in ``template.yaml``, the file ``sam deploy`` uses.

Everything listens on 127.0.0.1 only and stops with the deployment (or the process).
"""

from __future__ import annotations

import logging
import time
import uuid
from types import TracebackType
from typing import Any, Literal

import boto3

from checkpoint_journal.local._template import (
    bucket_lifecycle_rules,
    load_template,
    table_create_kwargs,
    table_ttl_attribute,
)
from checkpoint_journal.saver import JournalSaver

__all__ = ["LocalDeployment"]

Backend = Literal["moto", "dynamodb-local"]

# moto counts a Binary attribute by its base64 length (4/3 of the bytes DynamoDB
# counts) against a 405,000-byte cap, so on the moto backend the saver chunks at a
# budget that fits moto's arithmetic. DynamoDB Local and AWS use the real 400 KB.
MOTO_ITEM_BYTES = 296 * 1024

# Dummy credentials. DynamoDB Local 2.x accepts only letters and digits in the key id.
LOCAL_ACCESS_KEY = "AKIDLOCAL"
LOCAL_SECRET_KEY = "localsecret"


class LocalDeployment:
    """The embedded local deployment (DESIGN §6).

    Args:
        backend: ``"moto"`` (default) or ``"dynamodb-local"``.
        handlers: whether the stream consumers declared in ``template.yaml`` run. The
            stack declares none yet, so ``drain`` has nothing to wait for.
        region_name: the region the clients sign for.
        name: a prefix for the table and bucket names (a unique suffix is added: moto's
            backends are process-global, so two deployments must not share names).
    """

    def __init__(
        self,
        *,
        backend: Backend = "moto",
        handlers: bool = True,
        region_name: str = "us-east-1",
        name: str = "checkpoint-journal",
    ) -> None:
        if backend not in ("moto", "dynamodb-local"):
            raise ValueError(f"unknown backend {backend!r}: use 'moto' or 'dynamodb-local'")
        self.backend: Backend = backend
        self.handlers = handlers
        self.region_name = region_name
        suffix = uuid.uuid4().hex[:10]
        self.table_name = f"{name}-{suffix}"
        self.bucket = f"{name}-blobs-{suffix}"
        self._moto: Any = None
        self._ddb_local: Any = None
        self.endpoint_url = ""
        """The DynamoDB (and DynamoDB Streams) endpoint."""
        self.s3_endpoint_url = ""
        self._started = False
        # Stream consumers (event source mappings) running for this deployment; the
        # stack declares none yet.
        self._consumers: list[Any] = []

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> LocalDeployment:
        if self._started:
            return self
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO; the deployment is a library, not a server.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        try:
            self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._moto.start()
            host, port = self._moto.get_host_and_port()
            self.s3_endpoint_url = f"http://{host}:{port}"
            if self.backend == "moto":
                self.endpoint_url = self.s3_endpoint_url
            else:
                from checkpoint_journal.local._ddblocal import DynamoDBLocal

                self._ddb_local = DynamoDBLocal()
                self.endpoint_url = self._ddb_local.start()
            self._create_resources()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self._ddb_local is not None:
            self._ddb_local.stop()
            self._ddb_local = None
        self._started = False

    def __enter__(self) -> LocalDeployment:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- clients and savers -----------------------------------------------------------

    def session(self) -> boto3.session.Session:
        """A boto3 session with the local credentials and region."""
        return boto3.session.Session(
            aws_access_key_id=LOCAL_ACCESS_KEY,
            aws_secret_access_key=LOCAL_SECRET_KEY,
            region_name=self.region_name,
        )

    def client(self, service: str, session: boto3.session.Session | None = None) -> Any:
        """A low-level client for ``dynamodb``, ``dynamodbstreams`` or ``s3``."""
        endpoint = self.s3_endpoint_url if service == "s3" else self.endpoint_url
        return (session or self.session()).client(service, endpoint_url=endpoint)  # type: ignore[call-overload]

    def saver(self, **kw: Any) -> JournalSaver:
        """A JournalSaver on this deployment; keyword arguments go to JournalSaver."""
        self._require_started()
        kw.setdefault("boto3_session", self.session())
        kw.setdefault("endpoint_url", self.endpoint_url)
        kw.setdefault("s3_endpoint_url", self.s3_endpoint_url)
        kw.setdefault("bucket", self.bucket)
        if self.backend == "moto":
            kw.setdefault("max_item_bytes", MOTO_ITEM_BYTES)
        return JournalSaver(self.table_name, **kw)

    def env(self) -> dict[str, str]:
        """Environment variables that point a second process at this deployment."""
        self._require_started()
        return {
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
            "AWS_REGION": self.region_name,
            "AWS_DEFAULT_REGION": self.region_name,
            "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint_url,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.s3_endpoint_url,
            "CHECKPOINT_JOURNAL_TABLE": self.table_name,
            "CHECKPOINT_JOURNAL_BUCKET": self.bucket,
        }

    def drain(self, timeout: float = 30.0) -> None:
        """Return once every stream consumer has processed every record written so far.

        Raises TimeoutError if they have not caught up within ``timeout`` seconds.
        """
        self._require_started()
        deadline = time.monotonic() + timeout
        for consumer in self._consumers:
            consumer.drain(deadline)

    # -- internals ---------------------------------------------------------------------

    def _require_started(self) -> None:
        if not self._started and self._moto is None:
            raise RuntimeError("LocalDeployment is not running: use `with LocalDeployment() as dep:`")

    def _create_resources(self) -> None:
        template = load_template()
        ddb = self.client("dynamodb")
        ddb.create_table(**table_create_kwargs(template, self.table_name))
        ddb.get_waiter("table_exists").wait(
            TableName=self.table_name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 600}
        )
        ttl = table_ttl_attribute(template)
        if ttl:
            ddb.update_time_to_live(
                TableName=self.table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl},
            )
        s3 = self.client("s3")
        if self.region_name == "us-east-1":
            s3.create_bucket(Bucket=self.bucket)
        else:
            s3.create_bucket(
                Bucket=self.bucket,
                CreateBucketConfiguration={"LocationConstraint": self.region_name},
            )
        s3.put_public_access_block(
            Bucket=self.bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        rules = bucket_lifecycle_rules(template)
        if rules:
            s3.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": rules}
            )
