"""Running ``checkpoint-journal`` in-process, as a second terminal of
``checkpoint-journal local`` would: ``main()`` with the deployment's export lines in the
environment, its exit code and what it printed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from checkpoint_journal.cli import main
from checkpoint_journal.local import LocalDeployment


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def lines(self) -> list[dict[str, Any]]:
        """stdout as JSON lines."""
        return [json.loads(line) for line in self.out.splitlines()]


def run_cli(dep: LocalDeployment, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str], argv: Sequence[str],
            env: dict[str, str | None] | None = None, unset: Sequence[str] = ()) -> Result:
    """``main(argv)`` with ``dep.env()`` and then ``env`` applied (None unsets), and the
    variables in ``unset`` removed unless ``env`` sets them."""
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**dep.env(), **(env or {})}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    code = main(list(argv))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)
