"""The aiohttp face of the service: webhooks, health, readiness, metrics.

Webhook bodies are read once, as raw bytes, with a hard size limit; everything else about a
delivery is decided by `plugin.ingest.receive`. Errors never echo the request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from aiohttp import web

from ..config import ServiceSettings
from ..ingest import Delivery
from ..logging import get_logger
from ..service import Service
from ..tenants import TenantDirectory

log = get_logger("careroute.http")
SERVICE_KEY: web.AppKey[Service] = web.AppKey("careroute_service", Service)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BodyTooLarge(Exception):
    pass


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read the raw body, refusing more than `limit` bytes without buffering the rest."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


@web.middleware
async def errors_and_access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499
        raise
    except Exception as exc:  # noqa: BLE001 — never a traceback or an echo to the caller
        log.error("http_unhandled", error_type=type(exc).__name__, method=request.method)
        return web.json_response({"error": "internal error"}, status=500)
    finally:
        route = request.match_info.route.resource
        # The route template, never the raw path: a Freshdesk URL token lives in the query.
        template = route.canonical if route is not None else "unmatched"
        log.debug("http_request", method=request.method, route=template, status=status,
                  ms=round((time.perf_counter() - started) * 1000, 2))


async def webhook(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    vendor = request.match_info["vendor"]
    tenant_id = request.match_info["tenant_id"]
    oversize = False
    try:
        body = await read_body(request, service.settings.body_limit_bytes)
    except BodyTooLarge:
        body, oversize = b"", True
    headers = {k.lower(): v for k, v in request.headers.items()}
    delivery = Delivery(vendor=vendor, tenant_id=tenant_id, body=body, headers=headers,
                        query=dict(request.query), oversize=oversize)
    reply = await service.receive(delivery)
    extra = {"Retry-After": str(reply.retry_after)} if reply.retry_after else None
    if reply.status == 413:
        # Don't leave an unread body on a keep-alive connection.
        return web.json_response(reply.body, status=reply.status, headers={"Connection": "close"})
    return web.json_response(reply.body, status=reply.status, headers=extra)


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    ready = await request.app[SERVICE_KEY].ready()
    return web.json_response({"ready": ready}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICE_KEY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def create_app(service: Service, *, manage_service: bool = True) -> web.Application:
    """The web app. With `manage_service`, the app starts and stops the service with itself."""
    app = web.Application(middlewares=[errors_and_access_log],
                          client_max_size=service.settings.body_limit_bytes + 1)
    app[SERVICE_KEY] = service
    app.router.add_post("/webhooks/{vendor}/{tenant_id}", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    if manage_service:
        async def lifecycle(_: web.Application):
            await service.start()
            yield
            await service.stop()

        app.cleanup_ctx.append(lifecycle)
    return app


def serve(settings: ServiceSettings, tenants: TenantDirectory) -> None:
    """Run the service until SIGINT/SIGTERM (graceful: workers finish or hand jobs back)."""
    service = Service(settings, tenants)
    app = create_app(service)
    log.info("listening", host=settings.host, port=settings.port)
    web.run_app(app, host=settings.host, port=settings.port, access_log=None, print=None,
                shutdown_timeout=settings.shutdown_grace_seconds)
