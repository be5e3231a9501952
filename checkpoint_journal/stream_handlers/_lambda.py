"""What every stream handler builds from its Lambda-style environment (pure setup).

The local stream runner calls each handler module's ``make_handler(env)`` with an
explicit environment (two deployments share one test process, so ``os.environ`` is
never touched); Lambda builds it once from ``os.environ``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer


def session(env: Mapping[str, str]) -> boto3.session.Session:
    """A boto3 session on the environment's credentials and region."""
    return boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=env.get("AWS_SESSION_TOKEN"),
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
    )


@dataclass(frozen=True)
class Observability:
    in_lambda: bool
    logger: Logger
    metrics: Metrics
    tracer: Tracer


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
