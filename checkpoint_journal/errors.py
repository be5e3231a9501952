"""One error hierarchy for checkpoint-journal.

Every botocore error is translated once, at the AWS boundary (``_core/aws.py``), into
one of these, raised ``from`` the original so the AWS detail stays in the chain.
Each message says what to do about it.
"""

from __future__ import annotations


class JournalError(Exception):
    """Base class of every error checkpoint-journal raises on purpose."""


class InvalidKeyError(JournalError, ValueError):
    """A thread id, namespace or checkpoint id cannot be stored as a DynamoDB key."""


class PayloadTooLargeError(JournalError):
    """A record exceeds what the journal can hold even when chunked."""


class SerializationError(JournalError, TypeError):
    """The serializer could not encode a value. Nothing was written."""


class CorruptRecordError(JournalError):
    """A stored item cannot be decoded (unknown schema, bad codec, digest mismatch)."""


class ConflictError(JournalError):
    """An immutable journal item already exists with different content."""


class NotConfiguredError(JournalError):
    """A table, bucket or credential the saver needs is missing or unreachable."""


class TableNotFoundError(NotConfiguredError):
    """The DynamoDB table does not exist at the configured endpoint and region."""


class BucketNotFoundError(NotConfiguredError):
    """The S3 bucket does not exist at the configured endpoint and region."""


class CredentialsError(NotConfiguredError):
    """AWS rejected the credentials, or none were found."""


class AccessDeniedError(NotConfiguredError):
    """The credentials are valid but lack a permission the operation needs."""


class ObjectNotFoundError(JournalError):
    """An S3 object the journal or the view points to does not exist."""


class TransientError(JournalError):
    """AWS kept throttling or failing after the bounded retry budget was spent."""


class BlockedTypeError(JournalError):
    """A stored value names a type the serde's allow-list does not admit (or is pickled).

    Stored data never runs code (I7): the value was not deserialized. ``type_name`` is
    the ``module.Name`` it names."""

    def __init__(self, message: str, type_name: str) -> None:
        super().__init__(message)
        self.type_name = type_name
