"""Shared fixtures: the embedded local deployment, once per backend per session.

The behaviour suite runs against both backends through the ``deployment`` fixture's
parameter, the way langgraph runs its conformance suite against each saver.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from checkpoint_journal.local import LocalDeployment

BACKENDS = ["moto", "dynamodb-local"]


@pytest.fixture(scope="session", params=BACKENDS)
def deployment(request: pytest.FixtureRequest) -> Iterator[LocalDeployment]:
    with LocalDeployment(backend=request.param) as dep:
        yield dep


@pytest.fixture(scope="session")
def moto_deployment() -> Iterator[LocalDeployment]:
    with LocalDeployment(backend="moto") as dep:
        yield dep


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach a real account by accident: no ambient credentials."""
    if os.environ.get("CHECKPOINT_JOURNAL_E2E") != "1":
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(var, raising=False)
