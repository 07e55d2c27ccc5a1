"""Ingest benchmark: signed Zendesk webhooks per second into the durable queue, on one core.

Two servers are measured in the same run, each in its own process pinned to core 0 and on the
event loop `careroute serve` uses (uvloop), while the load generator runs pinned to core 1
(loopback only):
  - bare:      an aiohttp handler that answers 202 and does nothing else;
  - careroute: the real app (size/type/tenant checks, HMAC verification, parse, SQLite WAL
               enqueue with group commit, synchronous=FULL) — workers off, so only ingest counts.
Phases: (1) saturation — 64 keep-alive connections each pipelining 4 requests (so the Python
load generator is not the bottleneck), for `--seconds`; (2) paced at 1,000/s,
reporting p50/p99 ack latency. Bars (issue 8): ≥ 2,000/s, p99 < 25 ms at 1,000/s, ≥ 0.5× bare.

    python -m benchmarks.ingest [--seconds 5] [--rate 1000] [--json benchmarks/results/ingest.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

SECRET = "bench-webhook-secret-0123456789"
RESULTS = Path(__file__).parent / "results"


# ------------------------------------------------------------------ servers

def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > core:
        os.sched_setaffinity(0, {core})


def _loop():
    """The event loop `careroute serve` runs on (uvloop where installed), for both servers: the
    comparison is between handlers, on the same loop."""
    from plugin.handlers.http import _fast_loop_factory

    factory = _fast_loop_factory()
    return factory() if factory is not None else asyncio.new_event_loop()


def serve_bare(port: int) -> None:
    from aiohttp import web

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"accepted": True, "duplicate": False}, status=202)

    app = web.Application()
    app.router.add_post("/webhooks/{vendor}/{tenant_id}", accept)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=_loop())


def serve_careroute(port: int, data_dir: str) -> None:
    from aiohttp import web

    from plugin.config import ServiceSettings, tenant_from_dict
    from plugin.handlers.http import create_app
    from plugin.logging import configure
    from plugin.service import Service
    from plugin.tenants import TenantDirectory

    configure(level="warning", fmt="json")
    tenant = tenant_from_dict({"id": "bench", "vendor": "zendesk", "subdomain": "bench",
                               "base_url": "http://127.0.0.1:9", "webhook_secret": SECRET,
                               "auth": {"kind": "api_token", "email": "b@bench.test",
                                        "token": "bench-token"}})
    settings = ServiceSettings(data_dir=Path(data_dir), port=port)
    service = Service(settings, TenantDirectory([tenant]))
    app = create_app(service, manage_service=False)

    async def lifecycle(_: web.Application):
        await service.start(run_worker=False)
        yield
        await service.stop()

    app.cleanup_ctx.append(lifecycle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=_loop())


# -------------------------------------------------------------- load driver

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_requests(count: int, port: int, *, first_id: int = 100000,
                   prefix: str = "inv") -> list[bytes]:
    from plugin.zendesk.webhook import sign

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    requests = []
    for i in range(count):
        body = json.dumps({"ticket_id": str(first_id + i), "requester_locale": "en-US"}).encode()
        head = (f"POST /webhooks/zendesk/bench HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"X-Zendesk-Webhook-Signature: {sign(SECRET, stamp, body)}\r\n"
                f"X-Zendesk-Webhook-Signature-Timestamp: {stamp}\r\n"
                f"X-Zendesk-Webhook-Invocation-Id: {prefix}-{i}\r\n\r\n")
        requests.append(head.encode() + body)
    return requests


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    return await _read_answer(reader)


async def _read_answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def saturate(port: int, requests: list[bytes], seconds: float, connections: int = 64,
                   depth: int = 4) -> dict:
    """As fast as the server answers: `connections` keep-alive connections, each pipelining
    `depth` requests at a time (one write, then `depth` answers), so the load generator's own
    per-request cost stays far below the server's."""
    deadline = time.perf_counter() + seconds
    index = 0
    done = 0
    bad = 0

    async def conn() -> None:
        nonlocal index, done, bad
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline and index < len(requests):
                batch = requests[index:index + depth]
                index += len(batch)
                writer.write(b"".join(batch))
                for _ in batch:
                    status = await _read_answer(reader)
                    done += 1
                    bad += status != 202
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(conn() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return {"requests": done, "non_202": bad, "seconds": round(elapsed, 3),
            "per_second": round(done / elapsed, 1), "connections": connections,
            "pipeline_depth": depth}


async def paced(port: int, requests: list[bytes], rate: float, seconds: float,
                connections: int = 32) -> dict:
    total = int(rate * seconds)
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    latencies: list[float] = []
    bad = 0

    async def conn() -> None:
        nonlocal bad
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                due, request = await queue.get()
                if not request:
                    return
                status = await _one(reader, writer, request)
                latencies.append(time.perf_counter() - due)  # includes any queueing delay
                bad += status != 202
        finally:
            writer.close()

    workers = [asyncio.create_task(conn()) for _ in range(connections)]
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((due, requests[i % len(requests)]))
    for _ in workers:
        queue.put_nowait((0.0, b""))
    await asyncio.gather(*workers)
    latencies.sort()
    return {"requests": len(latencies), "non_202": bad, "rate": rate,
            "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2)}


def _start(kind: str, port: int, data_dir: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "benchmarks.ingest", f"--serve-{kind}", str(port), data_dir]
    proc = subprocess.Popen(args, cwd=Path(__file__).resolve().parent.parent)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def measure(kind: str, seconds: float, rate: float, connections: int = 64, depth: int = 4) -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        port = _free_port()
        proc = _start(kind, port, data_dir)
        try:
            # Fresh ids for each phase so no delivery is a duplicate.
            burst = build_requests(int(seconds * 8000) + 1000, port)
            sat = asyncio.run(saturate(port, burst, seconds, connections, depth))
            time.sleep(1.0)  # let the saturation backlog settle before the paced phase
            # Fresh tickets, signed as sent (editing signed bytes would make every one a 401).
            steady = build_requests(int(rate * seconds), port, first_id=900000, prefix="pace")
            pace = asyncio.run(paced(port, steady, rate, seconds))
        finally:
            proc.terminate()
            proc.wait(10)
    return {"saturation": sat, "paced": pace}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--connections", type=int, default=64,
                        help="keep-alive connections in the saturation phase (both servers)")
    parser.add_argument("--depth", type=int, default=4, help="requests pipelined per connection")
    parser.add_argument("--json", type=Path, default=RESULTS / "ingest.json")
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-careroute", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        _pin(0)
        serve_bare(int(args.serve_bare[0]))
        return 0
    if args.serve_careroute:
        _pin(0)
        serve_careroute(int(args.serve_careroute[0]), args.serve_careroute[1])
        return 0

    _pin(1)
    bare = measure("bare", args.seconds, args.rate, args.connections, args.depth)
    careroute = measure("careroute", args.seconds, args.rate, args.connections, args.depth)
    ratio = careroute["saturation"]["per_second"] / bare["saturation"]["per_second"]
    result = {"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
              "bare": bare, "careroute": careroute, "ratio_to_bare": round(ratio, 3),
              "bars": {"per_second>=2000": careroute["saturation"]["per_second"] >= 2000,
                       "p99_ms<25": careroute["paced"]["p99_ms"] < 25,
                       "all_202": careroute["paced"]["non_202"] == 0
                       and careroute["saturation"]["non_202"] == 0,
                       "ratio>=0.5": ratio >= 0.5}}
    print("ingest (server on one core, durable enqueue, workers off)")
    print(f"  {'':10} {'webhooks/s':>11} {'p50 ms @%d/s' % args.rate:>14} {'p99 ms':>8}")
    for name, data in (("bare 202", bare), ("careroute", careroute)):
        print(f"  {name:10} {data['saturation']['per_second']:>11.0f} "
              f"{data['paced']['p50_ms']:>14.2f} {data['paced']['p99_ms']:>8.2f}")
    print(f"  ratio careroute/bare: {ratio:.2f}   bars: {result['bars']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
