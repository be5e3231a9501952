"""Every ``checkpoint-journal`` subcommand has help with an example, and is tested."""

from __future__ import annotations

import argparse

import pytest

from checkpoint_journal.cli import build_parser, main

SUBCOMMANDS = ["local", "demo", "rebuild", "threads", "history", "show", "diff", "verify",
               "export", "import-dynamodbsaver"]
# local, demo: tests/integration/test_cli_demo.py; rebuild: tests/integration/test_projector.py;
# threads, history, show, diff: tests/integration/test_cli_browse.py; verify: test_verify.py;
# export: test_export.py; import-dynamodbsaver: test_import_dynamodbsaver.py


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_has_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "example:" in text
    assert f"checkpoint-journal {command}" in text


def test_every_subcommand_is_tested() -> None:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert sorted(sub.choices) == sorted(SUBCOMMANDS)
