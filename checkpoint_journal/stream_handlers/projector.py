"""The projector Lambda (work in progress: being written in this session)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def make_handler(env: Mapping[str, str]) -> Handler:
    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"batchItemFailures": []}

    return handle


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    import os

    return make_handler(os.environ)(event, context)
