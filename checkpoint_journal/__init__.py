"""checkpoint-journal: an event-sourced LangGraph checkpointer on DynamoDB.

    from checkpoint_journal import JournalSaver
    graph = builder.compile(checkpointer=JournalSaver("my-table", bucket="my-bucket"))

``pip install checkpoint-journal`` installs what an agent needs: the saver and the
reading commands. The embedded local deployment, the Lambda handlers and reading the
audit archive need an extra each (``[local]``, ``[lambda]``, ``[audit]``); using one
without it raises :class:`checkpoint_journal.errors.MissingExtraError` naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from checkpoint_journal.saver import JournalSaver

__all__ = ["JournalSaver"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The saver (LangGraph, langchain-core, pydantic, boto3: ~0.3 s) loads on first use,
    # not with the package: the Lambda handlers and the command line import
    # checkpoint_journal.* modules that never need it.
    if name == "JournalSaver":
        from checkpoint_journal.saver import JournalSaver

        globals()[name] = JournalSaver  # later lookups skip this function
        return JournalSaver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
