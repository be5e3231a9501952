"""Lambda entry points on the journal table's DynamoDB stream (projector, archiver).

They need the ``[lambda]`` extra (Powertools, the X-Ray SDK, cryptography): without it,
importing any of them raises MissingExtraError naming it, before a submodule loads.
"""

from checkpoint_journal._core import extras as _extras

_extras.require("lambda", "checkpoint_journal.stream_handlers (the Lambda handlers)")
