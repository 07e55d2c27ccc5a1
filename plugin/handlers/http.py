"""The aiohttp face of the service: webhooks, health, readiness, metrics, its OpenAPI document.

Webhook bodies are read once, as raw bytes, with a hard size limit; everything else about a
delivery is decided by `plugin.ingest.receive`. Errors never echo the request.
Socket-level limits (`ServerLimits`: slow clients, header sizes, a connection cap) are applied
by `start_server`, which `serve` uses.
"""

from __future__ import annotations

import asyncio
import gc
import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..config import ServiceSettings
from ..ingest import ACCEPTED, DUPLICATE, IGNORED, Delivery
from ..logging import get_logger
from ..service import Service
from ..tenants import TenantDirectory
from .admin import setup_admin
from .guard import guarded
from .api import setup_api
from .onboarding import setup_onboarding

log = get_logger("careroute.http")
SERVICE_KEY: web.AppKey[Service] = web.AppKey("careroute_service", Service)
OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")


@dataclass(frozen=True)
class ServerLimits:
    """What one client may hold: time to send a request head or a body, header sizes, sockets."""

    head_timeout_seconds: float = 10.0  # connection open (or idle keep-alive) → full request head
    body_timeout_seconds: float = 10.0  # reading a webhook body (Zendesk itself gives up at 12 s)
    max_line_size: int = 8190  # request line and each header line
    max_field_size: int = 8190
    max_headers: int = 64
    max_connections: int = 512  # past this a new connection gets 503 + Retry-After and is closed


LIMITS_KEY: web.AppKey[ServerLimits] = web.AppKey("careroute_limits", ServerLimits)

class BodyTooLarge(Exception):
    pass


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read the raw body, refusing more than `limit` bytes without buffering the rest."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    if request.content.is_eof():  # all of it came with the head (nearly every webhook)
        body = request.content.read_nowait()
        if len(body) > limit:
            raise BodyTooLarge
        return body
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


# The answers nearly every webhook gets, encoded once (json_response encodes on every call).
_ENCODED_REPLIES = tuple((reply, json.dumps(reply.body).encode())
                         for reply in (ACCEPTED, DUPLICATE, IGNORED))


async def webhook(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    vendor = request.match_info["vendor"]
    tenant_id = request.match_info["tenant_id"]
    oversize = False
    try:
        if request.content.is_eof():  # the whole body came with the head: no timer needed
            body = await read_body(request, service.settings.body_limit_bytes)
        else:
            async with asyncio.timeout(request.app[LIMITS_KEY].body_timeout_seconds):
                body = await read_body(request, service.settings.body_limit_bytes)
    except BodyTooLarge:
        body, oversize = b"", True
    except TimeoutError:  # a client that stalls mid-body loses its connection, not a worker
        log.info("webhook_body_timeout", vendor=vendor if vendor in ("zendesk", "freshdesk") else None)
        response = web.json_response({"error": "request body timeout"}, status=408)
        response.force_close()
        return response
    # aiohttp's header and query mappings are read-only views: no copy per request, and header
    # look-ups by lower-case name are case-insensitive there.
    delivery = Delivery(vendor=vendor, tenant_id=tenant_id, body=body, headers=request.headers,
                        query=request.query, oversize=oversize)
    reply = await service.receive(delivery)
    for common, encoded in _ENCODED_REPLIES:
        if reply is common:
            return web.Response(body=encoded, status=202, content_type="application/json")
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


async def openapi(_: web.Request) -> web.Response:
    return web.Response(body=OPENAPI_PATH.read_bytes(), content_type="application/yaml")


def create_app(service: Service, *, manage_service: bool = True,
               limits: ServerLimits | None = None) -> web.Application:
    """The web app. With `manage_service`, the app starts and stops the service with itself."""
    app = web.Application(client_max_size=service.settings.body_limit_bytes + 1)
    app[SERVICE_KEY] = service
    app[LIMITS_KEY] = limits or ServerLimits()
    app.router.add_get("/openapi.yaml", guarded(openapi))
    app.router.add_post("/webhooks/{vendor}/{tenant_id}", guarded(webhook))
    app.router.add_get("/healthz", guarded(healthz))
    app.router.add_get("/readyz", guarded(readyz))
    app.router.add_get("/metrics", guarded(metrics))
    setup_api(app, service)
    setup_onboarding(app, service, service.registry)
    setup_admin(app, service)
    if manage_service:
        async def lifecycle(_: web.Application):
            await service.start()
            yield
            await service.stop()

        app.cleanup_ctx.append(lifecycle)
    return app


# ------------------------------------------------------------------ socket-level limits


class _QuietRequestHandler(RequestHandler):
    """aiohttp's own error pages quote up to 100 bytes of a malformed request line or header,
    and its error log carries them in a traceback: answer with a fixed reason instead."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        log.info("http_protocol_error", status=status,
                 error_type=type(exc).__name__ if exc else None)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        reason = "bad request" if status < 500 else "internal error"
        response = web.json_response({"error": reason}, status=status)
        response.force_close()
        return response


_BUSY_BODY = b'{"error": "server is busy"}'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


class _GuardedServer(web.Server):
    """Connections past `max_connections` get a 503 (the vendor retries) and are closed."""

    max_connections = ServerLimits.max_connections

    def __call__(self) -> RequestHandler:
        return _QuietRequestHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if len(self.connections) > self.max_connections:
            transport.write(_BUSY)
            transport.close()


class _GuardedRunner(web.AppRunner):
    def __init__(self, app: web.Application, limits: ServerLimits, **kwargs: Any) -> None:
        super().__init__(app, access_log=None, keepalive_timeout=limits.head_timeout_seconds,
                         max_line_size=limits.max_line_size, max_field_size=limits.max_field_size,
                         max_headers=limits.max_headers,
                         # after an early answer (408, 413) drain the rest for this long, no more
                         lingering_time=limits.body_timeout_seconds, **kwargs)
        self._max_connections = limits.max_connections

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _GuardedServer  # same object, guarded connection handling
        server.max_connections = self._max_connections  # type: ignore[attr-defined]
        return server


async def start_server(app: web.Application, host: str, port: int, *,
                       shutdown_timeout: float = 10.0) -> tuple[web.AppRunner, int]:
    """Start `app` with its ServerLimits on host:port (0: any) → (runner, bound port).

    The keep-alive timeout doubles as the head timeout: aiohttp closes a connection that has not
    delivered a complete request head in that time, whether it is idle or trickling bytes.
    """
    runner = _GuardedRunner(app, app.get(LIMITS_KEY) or ServerLimits(),
                            shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1] if site._server else port  # type: ignore[union-attr]
    return runner, bound


# Container allocations between young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Once started: move everything loaded so far (rules, word and passage models, routes) out
    of the cyclic collector's sight, and collect the young generation less often.

    Every webhook allocates a few dozen short-lived objects; with the default threshold the
    collector ran every ~15 webhooks and, every few thousand, walked the whole screener (about
    10 µs a webhook under load, ~7 % of ingest's CPU). Objects of a request die by reference
    count long before 10,000 allocations, so they are rarely even seen by a collection.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


async def _serve_until_signalled(app: web.Application, settings: ServiceSettings) -> None:
    runner, _ = await start_server(app, settings.host, settings.port,
                                   shutdown_timeout=settings.shutdown_grace_seconds)
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def serve(settings: ServiceSettings, tenants: TenantDirectory,
          limits: ServerLimits | None = None) -> None:
    """Run the service until SIGINT/SIGTERM (graceful: workers finish or hand jobs back)."""
    service = Service(settings, tenants)
    limits = limits or ServerLimits(head_timeout_seconds=settings.head_timeout_seconds,
                                    body_timeout_seconds=settings.body_timeout_seconds,
                                    max_connections=settings.max_connections)
    app = create_app(service, limits=limits)
    log.info("listening", host=settings.host, port=settings.port)
    with asyncio.Runner(loop_factory=_fast_loop_factory()) as runner:
        runner.run(_serve_until_signalled(app, settings))


def _fast_loop_factory():
    """uvloop's event loop where it is installed (Linux, macOS): the same asyncio API with about
    a third less overhead per callback, which is most of a ticket's CPU outside its own work."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
