"""The ``checkpoint-journal`` command (``pyproject.toml``: ``checkpoint_journal.cli:main``;
also ``python -m checkpoint_journal.cli``).

``parser`` declares every subcommand's arguments and help; ``main`` runs one and maps
what it raised to the exit status; ``connect`` reaches a deployment for the reading
commands (``browse`` and ``detail``: threads, history, show, diff; ``verify``;
``export``), whose output ``render`` prints; ``local`` and ``demo`` run the embedded
deployment.
"""

from checkpoint_journal.cli.main import main
from checkpoint_journal.cli.parser import build_parser

__all__ = ["build_parser", "main"]
