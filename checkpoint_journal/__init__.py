"""checkpoint-journal: an event-sourced LangGraph checkpointer on DynamoDB.

    from checkpoint_journal import JournalSaver
    graph = builder.compile(checkpointer=JournalSaver("my-table", bucket="my-bucket"))
"""

from checkpoint_journal.saver import JournalSaver

__all__ = ["JournalSaver"]
__version__ = "0.1.0"
