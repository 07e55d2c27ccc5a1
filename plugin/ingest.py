"""Receiving a webhook, transport-neutral: the same `receive()` serves aiohttp and AWS Lambda.

Order of checks (each answers with a short reason, never an echo of the input):
    unknown vendor / tenant → 404 · too large → 413 · not JSON → 415 · signature → 401 ·
    unreadable → 400 · event we ignore → 202 {"accepted": false} · store down → 503 ·
    stored (or already stored) → 202 {"accepted": true, "duplicate": …}
The job is durable before the 202: `enqueue` returns only after the commit.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Awaitable, Callable, Mapping, NamedTuple

from .config import TenantConfig
from .errors import CareRouteError, PayloadError, StoreUnavailableError
from .logging import get_logger
from .metrics import Metrics
from .model import TicketRef
from .queue import EnqueueResult
from .vendors import webhook_module

log = get_logger("careroute.ingest")

_JSON_TYPE = re.compile(r"^application/([a-z0-9.+-]*\+)?json\s*(;.*)?$", re.IGNORECASE)
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


_NOTHING: Mapping[str, str] = MappingProxyType({})


class Delivery(NamedTuple):
    """One inbound webhook request. Headers are looked up by lower-case name: a dict with
    lower-case keys, or a case-insensitive mapping such as aiohttp's `request.headers`.
    (A named tuple: one is built per webhook, and a frozen dataclass costs ~4× as much.)"""

    vendor: str
    tenant_id: str
    body: bytes
    headers: Mapping[str, str] = _NOTHING
    query: Mapping[str, str] = _NOTHING
    # The transport stopped reading at the size limit: the body is incomplete.
    oversize: bool = False


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, object]
    retry_after: int | None = None


# The answers nearly every webhook gets, one shared object each (a transport may keep their
# bodies encoded: see handlers/http.py).
ACCEPTED = Reply(202, {"accepted": True, "duplicate": False})
DUPLICATE = Reply(202, {"accepted": True, "duplicate": True})
IGNORED = Reply(202, {"accepted": False, "ignored": True})

Enqueue = Callable[[TicketRef, float], Awaitable[EnqueueResult]]
TenantLookup = Callable[[str], TenantConfig | None]


def _reject(metrics: Metrics | None, vendor: str, reason: str, status: int, message: str,
            tenant_id: str | None = None) -> Reply:
    if metrics is not None:
        metrics.rejected.labels(vendor, reason).inc()
    log.info("webhook_rejected", vendor=vendor, reason=reason, status=status,
             tenant=tenant_id if tenant_id and _SAFE_ID.match(tenant_id) else None)
    return Reply(status, {"error": message})


def _verify_any(webhook, delivery: Delivery, tenant: TenantConfig, now: float) -> None:
    """Accept the tenant's secret or one of its other secrets; otherwise the primary's error."""
    try:
        webhook.verify(delivery.headers, delivery.body, tenant.webhook_secret.get_secret_value(),
                       now, query=delivery.query)
        return
    except CareRouteError as primary_error:
        for secret in tenant.other_webhook_secrets:  # a secret being rotated in or out
            try:
                webhook.verify(delivery.headers, delivery.body, secret.get_secret_value(), now,
                               query=delivery.query)
                return
            except CareRouteError:
                pass
        raise primary_error


async def receive(delivery: Delivery, *, tenants: TenantLookup, enqueue: Enqueue,
                  body_limit: int, metrics: Metrics | None = None,
                  now: Callable[[], float] = time.time) -> Reply:
    started = time.perf_counter()
    vendor = delivery.vendor if delivery.vendor in ("zendesk", "freshdesk") else "unknown"
    if metrics is not None:
        metrics.received.labels(vendor).inc()
    if vendor == "unknown":
        return _reject(metrics, vendor, "unknown_vendor", 404, "not found")
    if delivery.oversize or len(delivery.body) > body_limit:
        return _reject(metrics, vendor, "too_large", 413, "payload too large")
    content_type = delivery.headers.get("content-type", "")
    if not _JSON_TYPE.match(content_type.strip()):
        return _reject(metrics, vendor, "media_type", 415, "content type must be application/json")
    tenant = tenants(delivery.tenant_id) if _SAFE_ID.match(delivery.tenant_id) else None
    if tenant is None or tenant.vendor != vendor or not tenant.enabled:
        return _reject(metrics, vendor, "unknown_tenant", 404, "not found")

    webhook = webhook_module(vendor)
    ignorable = getattr(webhook, "IgnorableEvent", None)
    received_at = now()
    try:
        _verify_any(webhook, delivery, tenant, received_at)
        ref = webhook.parse(delivery.body, tenant_id=tenant.id, headers=delivery.headers,
                            query=delivery.query)
    except CareRouteError as exc:
        reason = "signature" if exc.http_status == 401 else "payload"
        return _reject(metrics, vendor, reason, exc.http_status, exc.reason, tenant.id)
    except Exception as exc:  # noqa: BLE001
        if ignorable is not None and isinstance(exc, ignorable):
            if metrics is not None:
                metrics.ignored.labels(vendor).inc()
            return IGNORED
        # A parser bug must not become a 500 that Zendesk never retries; say 400, log the type.
        log.error("webhook_parse_failed", vendor=vendor, tenant=tenant.id,
                  error_type=type(exc).__name__)
        return _reject(metrics, vendor, "payload", 400, PayloadError.reason, tenant.id)

    try:
        result = await enqueue(ref, received_at)
    except StoreUnavailableError:
        if metrics is not None:
            metrics.rejected.labels(vendor, "store_unavailable").inc()
        log.error("webhook_not_stored", vendor=vendor, tenant=tenant.id, ticket=ref.ticket_id)
        return Reply(503, {"error": "temporarily unavailable"}, retry_after=5)

    if metrics is not None:
        metrics.accepted.labels(vendor, "true" if result.duplicate else "false").inc()
        metrics.ack_seconds.labels(vendor).observe(time.perf_counter() - started)
    log.info("webhook_accepted", vendor=vendor, tenant=tenant.id, ticket=ref.ticket_id,
             delivery=ref.delivery_id, job=result.job_id, duplicate=result.duplicate,
             kind=ref.event)
    return DUPLICATE if result.duplicate else ACCEPTED
