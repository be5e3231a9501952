"""LocalDeployment: the stack of ``template.yaml``, embedded, on 127.0.0.1.

    from checkpoint_journal.local import LocalDeployment

    with LocalDeployment() as dep:              # moto server: DynamoDB, Streams, S3
        graph = builder.compile(checkpointer=dep.saver())
        ...
        dep.drain(timeout=30)                   # every stream consumer caught up

``backend="dynamodb-local"`` runs AWS's DynamoDB Local (Java, in memory, telemetry off)
for the table and keeps moto for S3 and SQS. The table, the bucket and the SQS queues are
created from the resource definitions in ``template.yaml``, the file ``sam deploy`` uses,
and a stream runner (``_runner.StreamRunner``) emulates each Lambda event source mapping
declared there: it polls the table's stream and calls the functions' real handlers.

Everything listens on 127.0.0.1 only and stops with the deployment (or the process).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal

import boto3

from checkpoint_journal._core import extras as _extras

# Before the submodules (PyYAML, moto, the handlers): without the [local] extra, one
# MissingExtraError that names it, not a ModuleNotFoundError from deep inside.
_extras.require("local", "checkpoint_journal.local")

from checkpoint_journal.local._cfn import load_template  # noqa: E402
from checkpoint_journal.local._esm import (  # noqa: E402
    StreamEventSource,
    queue_attributes,
    resource_ids,
    stream_event_sources,
)
from checkpoint_journal.local._runner import (  # noqa: E402
    ConsumerStatus,
    Handler,
    HandlerWrapper,
    StreamRunner,
    read_queue,
)
from checkpoint_journal.local._template import (  # noqa: E402
    bucket_lifecycle_rules,
    table_create_kwargs,
    table_ttl_attribute,
)
from checkpoint_journal.saver import JournalSaver  # noqa: E402

__all__ = [
    "ConsumerStatus",
    "Handler",
    "HandlerWrapper",
    "LocalDeployment",
    "StreamEventSource",
    "StreamRunner",
]

# The logical ids whose names the local deployment chooses (Ref gives these locally).
_TABLE_ID = "JournalTable"
_BUCKET_ID = "BlobBucket"

Backend = Literal["moto", "dynamodb-local"]

# The region when nothing names one (no argument, AWS_REGION, AWS_DEFAULT_REGION or
# profile): any works locally, and this is the one boto3 users meet most.
DEFAULT_REGION = "us-east-1"

# Dummy credentials. DynamoDB Local 2.x accepts only letters and digits in the key id.
LOCAL_ACCESS_KEY = "AKIDLOCAL"
LOCAL_SECRET_KEY = "localsecret"


class LocalDeployment:
    """The embedded local deployment (DESIGN §6).

    Args:
        backend: ``"moto"`` (default) or ``"dynamodb-local"``.
        handlers: whether the stream consumers declared in ``template.yaml`` run (every
            DynamoDB event of every ``AWS::Serverless::Function``, with the function's
            real handler). With False, ``drain`` returns at once.
        region_name: the region the deployment's resources live in and its clients sign
            for (moto and DynamoDB Local keep one set of tables per region). None
            (default) resolves it as the AWS tools do: ``AWS_REGION``, then
            ``AWS_DEFAULT_REGION``, then the profile's (``AWS_PROFILE``), else us-east-1;
            so a plain ``JournalSaver(table, endpoint_url=...)`` in the same environment
            finds the table.
        name: a prefix for the table, bucket and queue names (a unique suffix is added:
            moto's backends are process-global, so two deployments must not share names).
        batching_window: seconds that replace every mapping's
            MaximumBatchingWindowInSeconds; None (default) keeps the template's values.
            ``0`` makes each batch go as soon as its records are read. ``drain`` never
            waits for a window in any case (it closes open windows early).
        handler_wrappers: function logical id -> ``wrapper(real_handler) -> handler``,
            for fault injection (see :meth:`StreamRunner.set_handler_wrapper`; also
            settable later through :attr:`runner`).
    """

    def __init__(
        self,
        *,
        backend: Backend = "moto",
        handlers: bool = True,
        region_name: str | None = None,
        name: str = "checkpoint-journal",
        batching_window: float | None = None,
        handler_wrappers: Mapping[str, HandlerWrapper] | None = None,
    ) -> None:
        if backend not in ("moto", "dynamodb-local"):
            raise ValueError(f"unknown backend {backend!r}: use 'moto' or 'dynamodb-local'")
        from checkpoint_journal._core import aws

        self.backend: Backend = backend
        self.handlers = handlers
        self.region_name: str = region_name or aws.default_region() or DEFAULT_REGION
        self.batching_window = batching_window
        self._handler_wrappers = dict(handler_wrappers or {})
        self._name = name
        self._suffix = suffix = uuid.uuid4().hex[:10]
        self.table_name = f"{name}-{suffix}"
        self.bucket = f"{name}-blobs-{suffix}"
        self.queues: dict[str, str] = {}
        """SQS queues of the template: logical id -> local queue URL."""
        self.stream_sources: list[StreamEventSource] = []
        """The template's event source mappings, resolved for this deployment."""
        self._moto: Any = None
        self._moto_sizes = False
        """Whether this deployment holds an install of the moto item-size patch."""
        self._ddb_local: Any = None
        self.endpoint_url = ""
        """The DynamoDB (and DynamoDB Streams) endpoint."""
        self.s3_endpoint_url = ""
        self._started = False
        self._runner: StreamRunner | None = None
        self._client_lock = threading.Lock()
        self._shared_session: boto3.session.Session | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> LocalDeployment:
        if self._started:
            return self
        with _extras.guard("local", "checkpoint_journal.local"):
            from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO; the deployment is a library, not a server.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        try:
            if self.backend == "moto":
                from checkpoint_journal.local import _moto_size

                # moto's own arithmetic refuses items DynamoDB accepts (see _moto_size).
                self._moto_sizes = _moto_size.install()
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
            if self.handlers and self.stream_sources:
                self._runner = StreamRunner(
                    self,
                    self.stream_sources,
                    tables={_TABLE_ID: self.table_name},
                    queues=self.queues,
                    batching_window=self.batching_window,
                    handler_wrappers=self._handler_wrappers,
                ).start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        # Consumers first: they call the servers until they are joined.
        if self._runner is not None:
            self._runner.stop()
            self._runner = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self._ddb_local is not None:
            self._ddb_local.stop()
            self._ddb_local = None
        if self._moto_sizes:
            from checkpoint_journal.local import _moto_size

            _moto_size.uninstall()
            self._moto_sizes = False
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
        """A low-level client for ``dynamodb``, ``dynamodbstreams``, ``s3`` or ``sqs``."""
        endpoint = (
            self.endpoint_url if service in ("dynamodb", "dynamodbstreams") else self.s3_endpoint_url
        )
        if session is not None:
            return session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]
        # One shared session: a new one re-reads botocore's service models (~0.1 s per
        # client). Sessions are not thread-safe, hence the lock; clients are.
        with self._client_lock:
            if self._shared_session is None:
                self._shared_session = self.session()
            return self._shared_session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]

    def saver(self, **kw: Any) -> JournalSaver:
        """A JournalSaver on this deployment, with JournalSaver's defaults (both backends
        take items up to DynamoDB's 400 KB); keyword arguments go to JournalSaver."""
        self._require_started()
        kw.setdefault("boto3_session", self.session())
        kw.setdefault("endpoint_url", self.endpoint_url)
        kw.setdefault("s3_endpoint_url", self.s3_endpoint_url)
        kw.setdefault("bucket", self.bucket)
        return JournalSaver(self.table_name, **kw)

    def aws_env(self) -> dict[str, str]:
        """AWS SDK variables (credentials, region, endpoints) that point at this deployment.

        The stream runner gives them to every handler's ``make_handler(env)``, on top of
        the function's own Environment.
        """
        self._require_started()
        return {
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
            "AWS_REGION": self.region_name,
            "AWS_DEFAULT_REGION": self.region_name,
            "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint_url,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.s3_endpoint_url,
            "AWS_ENDPOINT_URL_SQS": self.s3_endpoint_url,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.s3_endpoint_url,
        }

    def env(self) -> dict[str, str]:
        """Environment variables that point a second process at this deployment."""
        return {
            **self.aws_env(),
            "CHECKPOINT_JOURNAL_TABLE": self.table_name,
            "CHECKPOINT_JOURNAL_BUCKET": self.bucket,
        }

    # -- stream consumers -------------------------------------------------------------

    @property
    def runner(self) -> StreamRunner:
        """The stream runner of the template's event source mappings.

        Raises:
            RuntimeError: not started, or started with ``handlers=False``.
        """
        self._require_started()
        if self._runner is None:
            raise RuntimeError(
                "this LocalDeployment runs no stream consumers (handlers=False, or the "
                "template declares no DynamoDB stream events)"
            )
        return self._runner

    def drain(self, timeout: float = 30.0) -> None:
        """Return once every stream consumer has processed (or sent to its on-failure
        destination) every stream record written before the call.

        Condition-based, never a fixed sleep (see :meth:`StreamRunner.drain`). With
        ``handlers=False`` it returns at once.

        Raises:
            TimeoutError: a consumer has not caught up within ``timeout`` seconds; the
                message says which and what it is doing.
        """
        self._require_started()
        if self._runner is not None:
            self._runner.drain(timeout)

    def failure_messages(
        self, function: str = "ProjectorFunction", *, consume: bool = True
    ) -> list[dict[str, Any]]:
        """What the function's mappings sent to their on-failure SQS queue: the JSON
        bodies Lambda sends (``requestContext``, ``responseContext``,
        ``DDBStreamBatchInfo``, ...). ``consume`` (default) removes them from the queue.

        Raises:
            KeyError: no mapping of ``function`` has an on-failure destination.
        """
        self._require_started()
        urls = sorted(
            {
                self.queues[s.on_failure]
                for s in self.stream_sources
                if s.function == function and s.on_failure is not None
            }
        )
        if not urls:
            raise KeyError(f"no stream event of {function!r} has an on-failure destination")
        sqs = self.client("sqs")
        return [m for url in urls for m in read_queue(sqs, url, consume=consume)]

    # -- internals ---------------------------------------------------------------------

    def _require_started(self) -> None:
        if not self._started and self._moto is None:
            raise RuntimeError("LocalDeployment is not running: use `with LocalDeployment() as dep:`")

    def _create_resources(self) -> None:
        template = load_template()
        # Queues first: the functions' environments and destinations refer to them.
        sqs = self.client("sqs")
        for logical_id in resource_ids(template, "AWS::SQS::Queue"):
            attributes = queue_attributes(template, logical_id)
            # SQS names: at most 80 characters, and ".fifo" for a FIFO queue.
            name = f"{self._name}-{logical_id}"[: 80 - 16] + f"-{self._suffix}"
            if attributes.get("FifoQueue") == "true":
                name += ".fifo"
            self.queues[logical_id] = sqs.create_queue(QueueName=name, Attributes=attributes)[
                "QueueUrl"
            ]
        self.stream_sources = stream_event_sources(
            template,
            refs={_TABLE_ID: self.table_name, _BUCKET_ID: self.bucket, **self.queues},
            table_logical_id=_TABLE_ID,
        )
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
        # As template.yaml's bucket: versioned, with Object Lock (the archiver puts each
        # archive file under a retention; no default retention, so blobs stay deletable).
        lock: dict[str, Any] = {"ObjectLockEnabledForBucket": True}
        if self.region_name == "us-east-1":
            s3.create_bucket(Bucket=self.bucket, **lock)
        else:
            s3.create_bucket(
                Bucket=self.bucket,
                CreateBucketConfiguration={"LocationConstraint": self.region_name}, **lock,
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
