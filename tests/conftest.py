"""Shared fixtures: the embedded local deployment, started once per backend per session.

The behaviour suite runs against both backends through the ``deployment`` fixture's
parameter, the way langgraph runs its conformance suite against each saver. Only
tests/integration asks for a deployment: tests/unit has no network at all (its
conftest refuses connections), and tests/e2e talks to a real account.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from checkpoint_journal.local import LocalDeployment

BACKENDS = ["moto", "dynamodb-local"]

# The e2e tier needs a real AWS account: it is not collected unless asked for.
collect_ignore = [] if os.environ.get("CHECKPOINT_JOURNAL_E2E") == "1" else ["e2e"]


class _Deployments:
    """One running deployment per backend, started on first use, stopped at the end."""

    def __init__(self) -> None:
        self.running: dict[str, LocalDeployment] = {}

    def get(self, backend: str) -> LocalDeployment:
        if backend not in self.running:
            self.running[backend] = LocalDeployment(backend=backend).start()  # type: ignore[arg-type]
        return self.running[backend]

    def stop(self) -> None:
        for dep in self.running.values():
            dep.stop()


@pytest.fixture(scope="session")
def deployments() -> Iterator[_Deployments]:
    registry = _Deployments()
    yield registry
    registry.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def deployment(request: pytest.FixtureRequest, deployments: _Deployments) -> LocalDeployment:
    return deployments.get(request.param)


@pytest.fixture(scope="session")
def moto_deployment(deployments: _Deployments) -> LocalDeployment:
    return deployments.get("moto")


@pytest.fixture(scope="session")
def ddb_local_deployment(deployments: _Deployments) -> LocalDeployment:
    return deployments.get("dynamodb-local")


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach a real account by accident: no ambient profile or token."""
    if os.environ.get("CHECKPOINT_JOURNAL_E2E") != "1":
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(var, raising=False)
