"""Where offloaded values live in the blob bucket, how they are encoded, and the S3 I/O.

``blobs/{thread hash}/{namespace hash}/{incarnation}/{digest}``:

- the hashes keep thread ids out of object keys (they may be personal data) and give
  every thread, and namespace, its own prefix, so ``delete_thread`` removes a thread's
  blobs with a prefix listing;
- the incarnation is the time of the namespace's latest tombstone (0 before any):
  after a delete and a reuse of the thread id, new blobs land under a new prefix, so
  cleaning up the deleted incarnation can never remove a blob the new one points to;
- the digest is the SHA-256 of the value's serde type and bytes: a value unchanged
  between checkpoints is one object, written once.

The object body is the value's bytes, zstd-compressed when that makes them smaller.
Everything but :class:`BlobStore` is pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from checkpoint_journal import errors
from checkpoint_journal._core import aws
from checkpoint_journal.schemas import squeeze, unsqueeze

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "blobs/"
# Values of 350 KiB or more, as stored, always go to S3 (DESIGN §1).
OFFLOAD_ALWAYS_BYTES = 350 * 1024
# Default for the projector's INLINE_LIMIT_BYTES: a value this large or larger, as
# stored, is kept in S3 rather than repeated inside every view item that shows it.
DEFAULT_INLINE_LIMIT_BYTES = 32 * 1024
# The tag the projector puts on objects no view needs any more (after prune or
# delete_for_runs); the bucket's lifecycle rule expires them (template.yaml,
# expire-orphan-blobs).
ORPHAN_TAG = "orphan"
# DeleteObjects takes at most 1,000 keys (S3 limit).
DELETE_OBJECTS_MAX = 1000


def _h(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def thread_prefix(thread_id: str) -> str:
    return f"{PREFIX}{_h(thread_id, 32)}/"


def namespace_prefix(thread_id: str, checkpoint_ns: str) -> str:
    return f"{thread_prefix(thread_id)}{_h(checkpoint_ns, 16)}/"


def incarnation_prefix(thread_id: str, checkpoint_ns: str, incarnation: int) -> str:
    return f"{namespace_prefix(thread_id, checkpoint_ns)}{incarnation:015d}/"


def digest(type_: str, data: bytes) -> str:
    h = hashlib.sha256(type_.encode())
    h.update(b"\0")
    h.update(data)
    return h.hexdigest()


def object_key(thread_id: str, checkpoint_ns: str, incarnation: int, value_digest: str) -> str:
    return incarnation_prefix(thread_id, checkpoint_ns, incarnation) + value_digest


def incarnation_of(key: str) -> int:
    """The incarnation part of an object key (raises ValueError if it has none)."""
    return int(key.split("/")[3])


def pack(data: bytes) -> tuple[bytes, str]:
    """The object body for a value's bytes and its codec (the journal's own rule)."""
    return squeeze(data)


def unpack(body: bytes, codec: str, expected_digest: str, type_: str) -> bytes:
    data = unsqueeze(body, codec, f"blob {expected_digest[:12]}")
    if digest(type_, data) != expected_digest:
        raise errors.CorruptRecordError(f"blob {expected_digest[:12]}: content does not match its digest")
    return data


class BlobStore:
    """The blob bucket's objects: every request through ``aws.call``, so that a failure
    reaches the caller as a JournalError naming S3, the bucket and the key."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def _where(self, key: str = "") -> str:
        return f"{self.bucket}/{key}" if key else self.bucket

    def check(self) -> None:
        """Raise BucketNotFoundError (or another JournalError) unless the bucket is there
        and reachable."""
        try:
            aws.call(lambda: self.client.head_bucket(Bucket=self.bucket), service=aws.S3,
                     resource=self.bucket, what=f"check bucket {self.bucket!r}")
        except errors.ObjectNotFoundError as e:  # HeadBucket answers a bare 404
            raise errors.BucketNotFoundError(
                f"S3 bucket {self.bucket!r} was not found. Deploy the stack (sam deploy) or "
                "pass the BucketName output of your stack (--bucket, bucket=)."
            ) from e

    def get(self, key: str, what: str) -> bytes | None:
        """The object's bytes; None when the object (or the bucket) does not exist."""
        try:
            body: bytes = aws.call(
                lambda: self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read(),
                service=aws.S3, resource=self._where(key), what=what)
        except (errors.ObjectNotFoundError, errors.BucketNotFoundError):
            return None
        return body

    def put(self, key: str, body: bytes) -> None:
        # Content-addressed keys: putting the same key again writes the same bytes.
        aws.call(lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=body),
                 service=aws.S3, resource=self._where(key), what="offload a value",
                 denied_hint="The projector's role needs s3:PutObject on blobs/*.")

    def keys(self, prefix: str) -> Iterator[str]:
        """Every object key under ``prefix``, in key order."""
        for page in aws.paginate(
            self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                   Prefix=prefix),
            service=aws.S3, resource=self._where(prefix), what="list offloaded values",
        ):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def tag_orphan(self, key: str) -> None:
        aws.call(lambda: self.client.put_object_tagging(
            Bucket=self.bucket, Key=key,
            Tagging={"TagSet": [{"Key": ORPHAN_TAG, "Value": "true"}]},
        ), service=aws.S3, resource=self._where(key), what="tag an unreferenced value")

    def delete(self, keys: Sequence[str]) -> None:
        for i in range(0, len(keys), DELETE_OBJECTS_MAX):
            batch = keys[i : i + DELETE_OBJECTS_MAX]
            resp = aws.call(lambda: self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            ), service=aws.S3, resource=self._where(), what="delete a thread's values")
            if resp.get("Errors"):
                raise errors.TransientError(
                    f"S3 {self.bucket!r}: {len(resp['Errors'])} of {len(batch)} deletes of a "
                    "thread's values failed; the stream batch is retried")
