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

    written_at_ms: int | None = None
    """When the existing item was written (ms), when known."""


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


class StaleWriteOwnerError(JournalError):
    """A write through a writer of ``JournalSaver.claim_write_ownership`` whose ownership
    of the thread was superseded (by a later claim, or by ``delete_thread``) was refused.

    Nothing of the refused write is stored. ``is_stale_write_owner_error`` is the marker
    LangGraph's write-ownership contract recognises a refusal by (duck-typed: no import
    of the conformance package needed). ``thread_id`` names the thread."""

    is_stale_write_owner_error = True

    def __init__(self, thread_id: str, detail: str | None = None) -> None:
        super().__init__(
            f"write refused: this writer no longer owns thread {thread_id!r}"
            + (f" ({detail})" if detail else "")
            + ". Nothing was written. Another worker claimed the thread after this one "
            "(or the thread was deleted): stop working on it and report the run as lost. "
            "To take the thread back, claim it again (claim_write_ownership) and reload "
            "its state before writing."
        )
        self.thread_id = thread_id
        self.detail = detail

    def __reduce__(self) -> tuple[type[StaleWriteOwnerError], tuple[str, str | None]]:
        # Rebuilt from its fields (the default would pass the message as thread_id).
        return (type(self), (self.thread_id, self.detail))


class MissingExtraError(JournalError, ImportError):
    """A part of checkpoint-journal was used without the extra that installs what it needs.

    ``pip install checkpoint-journal`` is an agent's install; the embedded deployment,
    the Lambda handlers and reading the sealed audit archive need ``[local]``,
    ``[lambda]`` and ``[audit]``. ``what`` names the part, ``extra`` the extra, and
    ``name`` (as on any ImportError) the module that was missing, when known; the
    message is one line saying what to install. Raised ``from`` the original ImportError.
    """

    def __init__(self, what: str, extra: str, missing: str | None = None) -> None:
        super().__init__(
            f"{what} needs the [{extra}] extra: pip install 'checkpoint-journal[{extra}]'",
            name=missing,
        )
        self.what = what
        self.extra = extra

    def __reduce__(self) -> tuple[type[MissingExtraError], tuple[str, str, str | None]]:
        # Rebuilt from its fields (the default would pass the message as ``what``).
        return (type(self), (self.what, self.extra, self.name))
