"""Where the AWS resources are (environment variables set by serverless.yml) and boto3 clients.

boto3 is imported here, on first use, so nothing outside the AWS deployment needs it.
Any AWS call that fails becomes a StoreUnavailableError whose message names the operation only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

from ..errors import ConfigError, StoreUnavailableError

T = TypeVar("T")

# Dedupe claims and step journals outlive every vendor redelivery window and the queue's message
# retention (4 days), so a retried job still finds its journal.
JOBS_RETENTION_SECONDS = 5 * 86400
AUDIT_RETENTION_SECONDS = 400 * 86400


@dataclass(frozen=True)
class AwsSettings:
    jobs_table: str
    tenants_table: str
    audit_table: str
    tokens_table: str
    queue_url: str
    dlq_url: str
    ssm_prefix: str = "/careroute/dev"
    # A pending dedupe claim older than this was left by an invocation that died: re-send it.
    resend_after_seconds: float = 10.0
    # The queue's redrive maxReceiveCount (serverless.yml); attempts past it go to the DLQ.
    max_receive_count: int = 5
    # Counted attempts across rate-limit re-sends before the worker dead-letters a job itself.
    max_attempts: int = 8
    # Reserved concurrency of the worker: each container takes 1/N of a tenant's budget.
    worker_shares: int = 1
    # How long a container trusts its copy of a tenant (config and SSM secrets): a rotated
    # secret takes effect within this time; shorter means more SSM reads.
    tenant_cache_seconds: float = 300.0
    region: str | None = None
    # Tests point boto3 at moto's server; unset in AWS.
    endpoint_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "AwsSettings":
        env = os.environ if environ is None else environ
        names = {"jobs_table": "CAREROUTE_AWS_JOBS_TABLE",
                 "tenants_table": "CAREROUTE_AWS_TENANTS_TABLE",
                 "audit_table": "CAREROUTE_AWS_AUDIT_TABLE",
                 "tokens_table": "CAREROUTE_AWS_TOKENS_TABLE",
                 "queue_url": "CAREROUTE_AWS_QUEUE_URL", "dlq_url": "CAREROUTE_AWS_DLQ_URL"}
        missing = [var for var in names.values() if not env.get(var)]
        if missing:
            raise ConfigError("AWS deployment: environment variables not set: "
                              + ", ".join(missing))
        try:
            return cls(
                **{field: env[var] for field, var in names.items()},
                ssm_prefix=env.get("CAREROUTE_AWS_SSM_PREFIX", "/careroute/dev").rstrip("/"),
                resend_after_seconds=float(env.get("CAREROUTE_AWS_RESEND_AFTER_SECONDS", "10")),
                max_receive_count=int(env.get("CAREROUTE_AWS_MAX_RECEIVE_COUNT", "5")),
                max_attempts=int(env.get("CAREROUTE_AWS_MAX_ATTEMPTS", "8")),
                worker_shares=max(1, int(env.get("CAREROUTE_AWS_WORKER_SHARES", "1"))),
                tenant_cache_seconds=float(env.get("CAREROUTE_AWS_TENANT_CACHE_SECONDS", "300")),
                region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
                endpoint_url=env.get("CAREROUTE_AWS_ENDPOINT_URL") or None)
        except ValueError:
            raise ConfigError("AWS deployment: a CAREROUTE_AWS_* number is not a number") from None


class AwsClients:
    """One boto3 client per service, created on first use (boto3 clients are thread-safe)."""

    def __init__(self, settings: AwsSettings) -> None:
        self.settings = settings
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            import boto3  # lazily: only the AWS deployment needs it
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "max_attempts": 3},
                            connect_timeout=3, read_timeout=5)
            client = boto3.client(service, region_name=self.settings.region,
                                  endpoint_url=self.settings.endpoint_url, config=config)
            self._clients[service] = client
        return client

    @property
    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    @property
    def sqs(self) -> Any:
        return self._client("sqs")

    @property
    def ssm(self) -> Any:
        return self._client("ssm")


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (None for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


def aws_call(operation: str, call: Callable[[], T]) -> T:
    """Run one AWS call; a failure becomes StoreUnavailableError naming `operation` only."""
    try:
        return call()
    except StoreUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 — botocore errors, timeouts, connection errors
        raise StoreUnavailableError(f"{operation} failed ({type(exc).__name__})") from None
