"""The one wrapper every route's handler runs in: an unexpected error becomes a short JSON 500
(never a traceback or an echo of the request), and with debug logging on, each request is one
`http_request` line with the route's template, never its raw path (a Freshdesk URL token lives
in the query).

A wrapper, not an aiohttp middleware: with any middleware, aiohttp builds a chain of two more
coroutine layers around every request (its own `_fix_request_current_app` and ours), about 5 µs
of a webhook's CPU; a request for no route gets aiohttp's plain 404 / 405.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Awaitable, Callable

from aiohttp import web

from ..logging import get_logger

log = get_logger("careroute.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guarded(handler: Handler) -> Handler:
    """`handler`, answering 500 {"error": "internal error"} for anything it did not expect."""

    @functools.wraps(handler)
    async def guarded_handler(request: web.Request) -> web.StreamResponse:
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
            if log.is_enabled_for(logging.DEBUG):  # every request passes here: no work when off
                route = request.match_info.route.resource
                template = route.canonical if route is not None else "unmatched"
                log.debug("http_request", method=request.method, route=template, status=status,
                          ms=round((time.perf_counter() - started) * 1000, 2))

    return guarded_handler
