"""The parts of checkpoint-journal that need an extra, and the one check they all use.

``pip install checkpoint-journal`` is an agent's install: the saver and the reading
commands. The rest comes with an extra (pyproject.toml ``[project.optional-dependencies]``):

==========  ==============================================================================
``local``   ``checkpoint_journal.local``, ``checkpoint-journal local`` and ``demo``
``lambda``  ``checkpoint_journal.stream_handlers`` (the Lambda handlers), ``rebuild``
``audit``   sealing or opening the audit archive (the archiver; ``verify``'s archive
            check; ``export``)
==========  ==============================================================================

A part calls :func:`require` when it is imported (or a command starts), which looks for
the extra's modules without importing them, and wraps its later imports in :func:`guard`;
either raises :class:`~checkpoint_journal.errors.MissingExtraError`, whose message is one
line naming the extra to install, never a bare ModuleNotFoundError.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

from checkpoint_journal.errors import MissingExtraError

_PACKAGE = "checkpoint_journal"

MODULES: Final[Mapping[str, tuple[str, ...]]] = {
    # aws-lambda-powertools[tracer] (its Tracer imports the X-Ray SDK even when disabled),
    # cryptography (the archiver seals what it archives) and fastavro (it writes Avro
    # object container files; the journal's own records need no fastavro).
    "lambda": ("aws_lambda_powertools", "aws_xray_sdk", "cryptography", "fastavro"),
    "audit": ("cryptography", "fastavro"),
    # moto[server] (flask and flask_cors serve its HTTP endpoint), PyYAML for
    # template.yaml, and the handlers the deployment runs: [lambda] as well.
    "local": ("moto", "flask", "flask_cors", "yaml",
              "aws_lambda_powertools", "aws_xray_sdk", "cryptography", "fastavro"),
}
"""The top-level modules each extra installs that its parts import (a unit test keeps
this in step with pyproject.toml)."""


def missing(extra: str) -> str | None:
    """The first module of ``extra`` that is not installed, or None. Finds, never imports
    (a few file-system lookups: cheap enough for import time); a module set to None in
    ``sys.modules`` counts as missing, as ``import`` would treat it."""
    for module in MODULES[extra]:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):  # ValueError: in sys.modules without a __spec__
            return module
    return None


def require(extra: str, what: str) -> None:
    """Raise MissingExtraError (``what`` needs ``extra``) unless all of ``extra`` is
    installed."""
    absent = missing(extra)
    if absent is None:
        return
    # Only on the way to failing: the import's own error is the cause to chain.
    with guard(extra, what):
        importlib.import_module(absent)


@contextmanager
def guard(extra: str, what: str) -> Iterator[None]:
    """Within the block, an ImportError of another distribution's module (one of the
    extra's, or one of theirs, missing or too old) becomes MissingExtraError, chained
    from it. An ImportError of our own modules is a bug and is left alone."""
    try:
        yield
    except MissingExtraError:
        raise
    except ImportError as e:
        name = e.name or ""
        if not name or name.split(".")[0] == _PACKAGE:
            raise
        raise MissingExtraError(what, extra, name) from e
