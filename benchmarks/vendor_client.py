"""CPU per vendor request: httpx's own pool, httpx over aiohttp (plugin/http_transport.py), aiohttp.

A loopback aiohttp server on core 1 answers a small JSON body; the client on core 0 makes
4,000 GETs at 4 and at 16 concurrent requests and reports CPU microseconds a request (process
time, so waiting costs nothing) and requests per second. This is why the vendor clients send
over aiohttp: a ticket makes 3–4 such calls.

    python -m benchmarks.vendor_client [--requests 4000] [--json benchmarks/results/vendor_client.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import httpx
from aiohttp import web

from plugin.http_transport import AiohttpTransport

RESULTS = Path(__file__).parent / "results"
BODY = {"ticket": {"id": 1, "subject": "x" * 50, "tags": ["billing", "vip"]}}


def _serve(port: int) -> None:
    async def ticket(_request: web.Request) -> web.Response:
        return web.json_response(BODY)

    app = web.Application()
    app.router.add_get("/t", ticket)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _measure(call: Callable[[], Awaitable[None]], count: int, concurrency: int
                   ) -> tuple[float, float]:
    async def worker(share: int) -> None:
        for _ in range(share):
            await call()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))
    done = (count // concurrency) * concurrency
    return (time.process_time() - cpu) / done * 1e6, done / (time.perf_counter() - wall)


async def _run(url: str, count: int, concurrency: int) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}

    async with httpx.AsyncClient(base_url=url) as plain:
        async def via_httpx() -> None:
            (await plain.get("/t")).json()
        cpu, rate = await _measure(via_httpx, count, concurrency)
        figures["httpx"] = {"cpu_us_per_request": round(cpu), "requests_per_second": round(rate)}

    async with httpx.AsyncClient(base_url=url, transport=AiohttpTransport()) as bridged:
        async def via_bridge() -> None:
            (await bridged.get("/t")).json()
        cpu, rate = await _measure(via_bridge, count, concurrency)
        figures["httpx_over_aiohttp"] = {"cpu_us_per_request": round(cpu),
                                         "requests_per_second": round(rate)}

    async with aiohttp.ClientSession(base_url=url) as session:
        async def via_aiohttp() -> None:
            async with session.get("/t") as response:
                await response.json()
        cpu, rate = await _measure(via_aiohttp, count, concurrency)
        figures["aiohttp"] = {"cpu_us_per_request": round(cpu), "requests_per_second": round(rate)}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--json", type=Path, default=RESULTS / "vendor_client.json")
    args = parser.parse_args(argv)
    port = _free_port()
    server = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    server.start()
    try:
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(server.pid, {1})
            os.sched_setaffinity(0, {0})
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        result: dict[str, Any] = {"requests": args.requests}
        for concurrency in (4, 16):
            result[f"concurrency_{concurrency}"] = asyncio.run(_run(url, args.requests, concurrency))
    finally:
        server.terminate()
        server.join(5)
    print("CPU µs per request (lower is better) and requests/s, loopback, client on one core")
    for key in ("concurrency_4", "concurrency_16"):
        row = result[key]
        print(f"  {key:15s} " + "  ".join(
            f"{name} {v['cpu_us_per_request']} µs ({v['requests_per_second']}/s)"
            for name, v in row.items()))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
