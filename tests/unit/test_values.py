"""S3 trouble while reading an offloaded value (issue 11, defect 4): a timeout, an
unreachable endpoint, a missing or damaged object each become BlobUnavailable carrying a
JournalError that names S3, the bucket and the key, so the reader answers from the
journal; never an AttributeError or a message about DynamoDB."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.exceptions
import pytest

from checkpoint_journal._core import blobs as _blobs
from checkpoint_journal._core.blobs import BlobStore
from checkpoint_journal._core.fold import BlobRef
from checkpoint_journal._core.serde import StrictSerializer
from checkpoint_journal.errors import (
    CorruptRecordError,
    NotConfiguredError,
    ObjectNotFoundError,
    TransientError,
)
from checkpoint_journal.saver._values import BlobUnavailable, ByteCache, Loader, NoBucketWarning

SERDE = StrictSerializer()
TYPE, DATA = SERDE.dumps_typed({"answer": 42})
BODY, CODEC = _blobs.pack(DATA)
REF = BlobRef("blobs/t/n/000000000000000/d1", TYPE, _blobs.digest(TYPE, DATA), len(DATA),
              len(BODY), CODEC)


class FakeS3:
    """An S3 client whose GetObject answers ``body`` or raises ``error``."""

    def __init__(self, body: bytes | None = None, error: Exception | None = None) -> None:
        self.body, self.error = body, error

    def get_object(self, **kw: Any) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return {"Body": io.BytesIO(self.body or b"")}


def _loader(client: Any) -> Loader:
    return Loader(SERDE, BlobStore(client, "the-bucket"), ByteCache(1 << 20),
                  ThreadPoolExecutor(2), NoBucketWarning())


def _cause(client: Any) -> Exception:
    with pytest.raises(BlobUnavailable) as e:
        _loader(client).fetch([REF])
    return e.value.cause


def test_an_intact_object_is_read() -> None:
    loader = _loader(FakeS3(BODY))
    loader.fetch([REF])
    assert loader.value(REF) == {"answer": 42}


@pytest.mark.parametrize("error, kind", [
    (botocore.exceptions.ReadTimeoutError(endpoint_url="http://s3"), TransientError),
    (botocore.exceptions.ConnectTimeoutError(endpoint_url="http://s3"), TransientError),
    (botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3"), NotConfiguredError),
    (botocore.exceptions.ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}},
                                     "GetObject"), ObjectNotFoundError),
])
def test_s3_failures_name_s3_the_bucket_and_the_key(error: Exception, kind: type) -> None:
    cause = _cause(FakeS3(error=error))
    assert isinstance(cause, kind)
    text = str(cause)
    assert "S3" in text and "the-bucket" in text and REF.key in text
    assert "DynamoDB" not in text


def test_a_damaged_object_is_unavailable_not_fatal() -> None:
    flipped = bytearray(BODY)
    flipped[-1] ^= 1
    cause = _cause(FakeS3(bytes(flipped)))
    assert isinstance(cause, CorruptRecordError)
    assert "the-bucket" in str(cause) and REF.key in str(cause)


def test_no_bucket_is_unavailable_and_says_to_pass_one() -> None:
    loader = Loader(SERDE, None, ByteCache(0), ThreadPoolExecutor(1), NoBucketWarning())
    with pytest.raises(BlobUnavailable) as e:
        loader.fetch([REF])
    assert "bucket=" in str(e.value.cause) and REF.key in str(e.value.cause)
