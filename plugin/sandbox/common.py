"""What both vendor emulators share: fault injection, a request log, and their control routes.

Control routes (not part of any vendor API, so they live under `/_sandbox/`):
    GET    /_sandbox/requests        the request log as JSON (method, path, query, status, at, body)
    DELETE /_sandbox/requests        clear it
    GET    /_sandbox/faults          current fault knobs
    PUT    /_sandbox/faults          set knobs: {"error_rate", "rate_limit_rate", "retry_after",
                                      "latency_ms": [lo, hi], "drop_rate", "seed"}
Faults apply to `/api/` paths only, so tests can always read the log.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Faults:
    error_rate: float = 0.0  # share of API requests answered 5xx
    rate_limit_rate: float = 0.0  # share answered 429 + Retry-After
    retry_after: int = 1  # seconds, for injected 429s
    latency_ms: tuple[int, int] = (0, 0)  # uniform extra latency
    drop_rate: float = 0.0  # share whose connection is closed without an answer
    seed: int | None = None
    _random: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def update(self, values: dict[str, Any]) -> None:
        for key in ("error_rate", "rate_limit_rate", "drop_rate"):
            if key in values:
                setattr(self, key, min(1.0, max(0.0, float(values[key]))))
        if "retry_after" in values:
            self.retry_after = max(0, int(values["retry_after"]))
        if "latency_ms" in values:
            lo, hi = values["latency_ms"]
            self.latency_ms = (max(0, int(lo)), max(int(lo), int(hi)))
        if "seed" in values:
            self.seed = values["seed"]
            self._random.seed(self.seed)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_random", None)
        return data

    def roll(self) -> float:
        return self._random.random()


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    status: int
    at: float  # time.time() when the request arrived
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class RequestLog:
    def __init__(self) -> None:
        self.entries: list[LoggedRequest] = []

    def add(self, entry: LoggedRequest) -> None:
        self.entries.append(entry)

    def clear(self) -> None:
        self.entries.clear()

    def as_json(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.entries]


# Headers worth keeping in the log for assertions (never Authorization values).
_LOGGED_HEADERS = ("content-type", "x-zendesk-marketplace-name", "x-zendesk-marketplace-app-id",
                   "x-zendesk-marketplace-organization-id", "user-agent")


def fault_middleware(faults: Faults, log: RequestLog) -> Callable[..., Any]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        arrived = time.time()
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        entry = LoggedRequest(request.method, request.path, dict(request.query), 0, arrived, body,
                              {h: request.headers[h] for h in _LOGGED_HEADERS if h in request.headers})
        log.add(entry)
        lo, hi = faults.latency_ms
        if hi > 0:
            await asyncio.sleep(faults._random.uniform(lo, hi) / 1000.0)
        roll = faults.roll()
        if roll < faults.drop_rate:
            entry.status = -1  # connection dropped, no answer
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError()
        roll -= faults.drop_rate
        if roll < faults.rate_limit_rate:
            entry.status = 429
            return web.Response(status=429, text="<html><body>Too Many Requests</body></html>",
                                content_type="text/html",
                                headers={"Retry-After": str(faults.retry_after)})
        roll -= faults.rate_limit_rate
        if roll < faults.error_rate:
            entry.status = 503
            return web.json_response({"error": "ServiceUnavailable"}, status=503)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            entry.status = exc.status
            raise
        entry.status = response.status
        return response

    return middleware


def add_control_routes(app: web.Application, faults: Faults, log: RequestLog) -> None:
    async def get_requests(_: web.Request) -> web.Response:
        return web.json_response(log.as_json())

    async def clear_requests(_: web.Request) -> web.Response:
        log.clear()
        return web.Response(status=204)

    async def get_faults(_: web.Request) -> web.Response:
        return web.json_response(faults.as_dict())

    async def put_faults(request: web.Request) -> web.Response:
        try:
            faults.update(await request.json())
        except (ValueError, TypeError, KeyError):
            return web.json_response({"error": "bad fault settings"}, status=400)
        return web.json_response(faults.as_dict())

    app.router.add_get("/_sandbox/requests", get_requests)
    app.router.add_delete("/_sandbox/requests", clear_requests)
    app.router.add_get("/_sandbox/faults", get_faults)
    app.router.add_put("/_sandbox/faults", put_faults)
