"""Every route's handler runs inside `guarded` (plugin/handlers/guard.py): over real HTTP, an
unexpected error is a short JSON 500 that echoes nothing, HTTP errors pass through, and with
debug logging on each request is one line naming the route's template, never its path."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from plugin import logging as cr_logging
from plugin.handlers.guard import guarded

CANARY = "canary-ticket-text-do-not-log 4111 1111 1111 1111"


async def broken(request: web.Request) -> web.Response:
    raise ValueError(CANARY)  # a bug whose message carries customer data


async def missing(request: web.Request) -> web.Response:
    raise web.HTTPNotFound(text='{"error": "not found"}', content_type="application/json")


async def fine(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@pytest.fixture
async def server():
    app = web.Application()
    app.router.add_get("/broken/{secret}", guarded(broken))
    app.router.add_get("/missing", guarded(missing))
    app.router.add_get("/fine/{token}", guarded(fine))
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
def logs():
    stream = io.StringIO()
    cr_logging.configure(level="debug", fmt="json", stream=stream)
    yield stream
    cr_logging.configure(level="info", fmt="json")


async def test_an_unexpected_error_is_a_short_500_that_echoes_nothing(server, logs):
    async with httpx.AsyncClient(base_url=str(server.make_url(""))) as http:
        response = await http.get(f"/broken/{CANARY.split()[0]}?q={CANARY.split()[1]}")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error"}
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    unhandled = [line for line in lines if line["event"] == "http_unhandled"]
    assert unhandled and unhandled[0]["error_type"] == "ValueError"
    assert "canary" not in logs.getvalue() and "4111" not in logs.getvalue()


async def test_http_errors_pass_through_and_each_request_logs_its_route_template(server, logs):
    async with httpx.AsyncClient(base_url=str(server.make_url(""))) as http:
        assert (await http.get("/missing")).status_code == 404
        assert (await http.get("/fine/tok-secret-123")).json() == {"ok": True}
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    requests = {line["route"]: line["status"] for line in lines if line["event"] == "http_request"}
    assert requests == {"/missing": 404, "/fine/{token}": 200}
    assert "tok-secret-123" not in logs.getvalue()


async def test_nothing_is_logged_per_request_when_debug_is_off(server):
    stream = io.StringIO()
    cr_logging.configure(level="info", fmt="json", stream=stream)
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url(""))) as http:
            await http.get("/fine/x")
    finally:
        cr_logging.configure(level="info", fmt="json")
    assert "http_request" not in stream.getvalue()


def test_every_route_of_the_service_is_guarded(tmp_path):
    from plugin.config import ServiceSettings
    from plugin.handlers.http import create_app
    from plugin.service import Service
    from plugin.tenants import TenantDirectory

    app = create_app(Service(ServiceSettings(data_dir=tmp_path), TenantDirectory([])),
                     manage_service=False)
    routes = [route for route in app.router.routes() if route.method != "HEAD"]
    assert len(routes) >= 15
    unguarded = [route.resource.canonical for route in routes
                 if route.handler.__code__ is not guarded(fine).__code__]
    assert unguarded == []
    assert not app.middlewares  # a middleware would put aiohttp's chain back on every request
