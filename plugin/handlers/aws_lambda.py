"""AWS Lambda entry points (serverless.yml): the same receive() and worker step as `serve`.

    receive_handler   HTTP API (payload 2.0) event → plugin.ingest.receive → API GW response
    worker_handler    SQS batch event → Worker.process per record → {"batchItemFailures": […]}

A container keeps one `LambdaRuntime` (boto3 clients, tenant cache, vendor clients and their
rate budgets, one event loop) across invocations.
"""

from __future__ import annotations

import os
import sys

# Third-party packages ship in the function zip under build/lambda-vendor (serverless.yml);
# put them on the path before anything imports them. No-op outside Lambda.
_TASK_ROOT = os.environ.get("LAMBDA_TASK_ROOT")
if _TASK_ROOT:
    _VENDOR = os.path.join(_TASK_ROOT, "build", "lambda-vendor")
    if os.path.isdir(_VENDOR) and _VENDOR not in sys.path:
        sys.path.insert(0, _VENDOR)

import asyncio  # noqa: E402
import base64  # noqa: E402
import binascii  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any, Mapping  # noqa: E402
from urllib.parse import parse_qsl  # noqa: E402

from ..aws.audit import DynamoAuditLog  # noqa: E402
from ..aws.batch import BatchRunner  # noqa: E402
from ..aws.enqueue import SqsEnqueuer  # noqa: E402
from ..aws.settings import AwsClients, AwsSettings  # noqa: E402
from ..aws.tenants import DynamoTenantDirectory, DynamoTokenStore  # noqa: E402
from ..config import ServiceSettings  # noqa: E402
from ..errors import StoreUnavailableError  # noqa: E402
from ..ingest import Delivery, Reply, receive  # noqa: E402
from ..logging import configure, get_logger  # noqa: E402
from ..vendors import ClientFactory, client_factory  # noqa: E402
from ..worker import Pipeline, VendorClients, default_pipeline  # noqa: E402

log = get_logger("careroute.lambda")


def delivery_from_event(event: Mapping[str, Any]) -> Delivery | None:
    """An HTTP API v2 event → Delivery (None if the body is not valid base64)."""
    params = event.get("pathParameters") or {}
    raw_body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw_body, validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        body = raw_body.encode("utf-8")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    query: dict[str, str] = {}
    for key, value in parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True):
        query.setdefault(key, value)  # the first value wins, as with aiohttp's request.query
    return Delivery(vendor=str(params.get("vendor", "")),
                    tenant_id=str(params.get("tenant_id", "")),
                    body=body, headers=headers, query=query)


def http_response(reply: Reply) -> dict[str, Any]:
    headers = {"content-type": "application/json"}
    if reply.retry_after:
        headers["retry-after"] = str(reply.retry_after)
    return {"statusCode": reply.status, "headers": headers, "body": json.dumps(reply.body),
            "isBase64Encoded": False}


class LambdaRuntime:
    """What one Lambda container keeps between invocations."""

    def __init__(self, *, settings: ServiceSettings | None = None, aws: AwsSettings | None = None,
                 pipeline: Pipeline | None = None,
                 factory_for: Any = client_factory) -> None:
        self.settings = settings or ServiceSettings()
        self.aws = aws or AwsSettings.from_env()
        if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
            # In Lambda only: JSON lines to stderr, which CloudWatch Logs collects. (Elsewhere,
            # tests for instance, logging belongs to whoever set it up.)
            configure(level=self.settings.log_level, fmt=self.settings.log_format)
        self.clients = AwsClients(self.aws)
        self.tenants = DynamoTenantDirectory(self.aws, self.clients,
                                             budget_shares=self.aws.worker_shares,
                                             cache_seconds=self.aws.tenant_cache_seconds)
        self.enqueue = SqsEnqueuer(self.aws, self.clients)
        self.loop = asyncio.new_event_loop()
        self._pipeline = pipeline
        self._factory_for: ClientFactory | Any = factory_for
        self._runner: BatchRunner | None = None

    # ------------------------------------------------------------- receive

    def receive(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return self.loop.run_until_complete(self._receive(event))

    async def _receive(self, event: Mapping[str, Any]) -> dict[str, Any]:
        delivery = delivery_from_event(event)
        if delivery is None:
            return http_response(Reply(400, {"error": "unreadable payload"}))
        try:
            reply = await receive(delivery, tenants=self.tenants.get, enqueue=self.enqueue,
                                  body_limit=self.settings.body_limit_bytes, metrics=None)
        except StoreUnavailableError:  # the tenant lookup could not reach DynamoDB / SSM
            vendor = delivery.vendor if delivery.vendor in ("zendesk", "freshdesk") else "unknown"
            log.error("webhook_not_stored", vendor=vendor, reason="tenant store")
            reply = Reply(503, {"error": "temporarily unavailable"}, retry_after=5)
        except Exception as exc:  # noqa: BLE001 — never a traceback or an echo to the caller
            log.error("webhook_unhandled", error_type=type(exc).__name__)
            reply = Reply(500, {"error": "internal error"})
        return http_response(reply)

    # -------------------------------------------------------------- worker

    def runner(self) -> BatchRunner:
        if self._runner is None:
            vendor_clients = VendorClients(token_store=DynamoTokenStore(self.aws, self.clients),
                                           timeout_seconds=self.settings.vendor_timeout_seconds,
                                           factory_for=self._factory_for)
            self._runner = BatchRunner(
                settings=self.aws, clients=self.clients, tenants=self.tenants,
                vendor_clients=vendor_clients, audit=DynamoAuditLog(self.aws, self.clients),
                pipeline=self._pipeline or default_pipeline(),
                retry_base_seconds=self.settings.retry_base_seconds,
                retry_max_seconds=self.settings.retry_max_seconds)
        return self._runner

    def work(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            def seconds_left() -> float:
                return context.get_remaining_time_in_millis() / 1000.0
        else:
            deadline = time.monotonic() + 60.0

            def seconds_left() -> float:
                return deadline - time.monotonic()
        records = event.get("Records") or []
        return self.loop.run_until_complete(self.runner().run(records, seconds_left))

    def close(self) -> None:
        if self._runner is not None:
            self.loop.run_until_complete(self._runner.vendor_clients.aclose())
        self.loop.close()


_runtime: LambdaRuntime | None = None


def runtime() -> LambdaRuntime:
    global _runtime
    if _runtime is None:
        _runtime = LambdaRuntime()
    return _runtime


def reset_runtime() -> None:
    """Drop the container's runtime (tests change the environment between cases)."""
    global _runtime
    if _runtime is not None:
        _runtime.close()
    _runtime = None


def receive_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return runtime().receive(event)


def worker_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return runtime().work(event, context)
