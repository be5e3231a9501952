"""The command line's own errors: what a request asked for does not exist, or cannot be
answered as given. Everything else a command meets is a
:class:`~checkpoint_journal.errors.JournalError` from the journal's core; ``main``
turns both into exit statuses (``main.exit_status``)."""

from __future__ import annotations

from checkpoint_journal.errors import JournalError


class NotFoundError(JournalError):
    """The thread, namespace or checkpoint asked for does not exist (exit status 3)."""


class UsageError(JournalError):
    """The request cannot be answered as given: a missing table, an ambiguous id prefix,
    an unreadable chain key (exit status 2)."""
