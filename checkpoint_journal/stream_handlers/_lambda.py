"""What every stream handler builds from its Lambda-style environment (pure setup).

The local stream runner calls each handler module's ``make_handler(env)`` with an
explicit environment (two deployments share one test process, so ``os.environ`` is
never touched); Lambda builds it once from ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from aws_lambda_powertools import Logger, Metrics, Tracer

from checkpoint_journal._core import keys as _keys


@dataclass(frozen=True)
class Observability:
    in_lambda: bool
    logger: Logger
    metrics: Metrics
    tracer: Tracer

    def publish(self) -> None:
        """Send the invocation's metrics (EMF) in Lambda; drop them locally, where there
        is no CloudWatch and the lines would only be noise."""
        if self.in_lambda:
            self.metrics.flush_metrics()
        else:
            self.metrics.clear_metrics()


class JournalKey(NamedTuple):
    pk: str
    sk: str
    thread_id: str
    key: _keys.ParsedKey


def journal_key(record: Mapping[str, Any]) -> JournalKey | None:
    """The item a Lambda DynamoDB-stream record names, or None when its keys are not a
    journal item's (views and chunks count; heads and index entries do not)."""
    keys = (record.get("dynamodb") or {}).get("Keys") or {}
    pk, sk = (keys.get("PK") or {}).get("S"), (keys.get("SK") or {}).get("S")
    if not isinstance(pk, str) or not isinstance(sk, str):
        return None
    try:
        return JournalKey(pk, sk, _keys.thread_from_pk(pk), _keys.parse_sk(sk))
    except ValueError:
        return None


def observability(env: Mapping[str, str], service: str, local_level_var: str) -> Observability:
    """Powertools logger, metrics and tracer for a handler.

    Outside Lambda (the local stream runner) a per-batch INFO line would drown the user's
    own output: warnings only, unless ``local_level_var`` asks for more; no X-Ray.
    """
    in_lambda = bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))
    level = (env.get("POWERTOOLS_LOG_LEVEL", "INFO") if in_lambda
             else env.get(local_level_var, "WARNING"))
    return Observability(
        in_lambda=in_lambda,
        logger=Logger(service=service, level=level),
        metrics=Metrics(service=service,
                        namespace=env.get("POWERTOOLS_METRICS_NAMESPACE", "CheckpointJournal")),
        tracer=Tracer(service=service, disabled=not in_lambda),
    )


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def entry_point(make_handler: Callable[[Mapping[str, str]], Handler]) -> Handler:
    """A Lambda entry point: the handler is built from ``os.environ`` on the first
    invocation and kept while the container stays warm."""
    built: list[Handler] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not built:
            built.append(make_handler(os.environ))
        return built[0](event, context)

    return handler
