"""Ingest benchmark: signed Zendesk webhooks per second into the durable queue, on one core.

Two servers are measured in the same run, each in its own process pinned to core 0 and on the
event loop `careroute serve` uses (uvloop), while the load generator runs pinned to core 1
(loopback only):
  - bare:      an aiohttp handler that answers 202 and does nothing else;
  - careroute: the real app (size/type/tenant checks, HMAC verification, parse, SQLite WAL
               enqueue with group commit, synchronous=FULL) — workers off, so only ingest counts.
Phases: (1) saturation — 64 keep-alive connections each pipelining 4 requests, counted by a
protocol with byte searches (so the Python load generator is not the bottleneck): `--rounds`
bursts of `--seconds`, alternating the two servers, medians reported; (2) paced at 1,000/s for
5 s each, reporting p50/p99 ack latency. Bars (issue 8): ≥ 2,000/s,
p99 < 25 ms at 1,000/s, ≥ 0.5× bare. Beside each rate, the server's CPU time per request
(user + system, all threads, from /proc): on a shared machine the rate moves with whatever else
runs on the core, the CPU per request much less, so the ratio is printed both ways.

    python -m benchmarks.ingest [--rounds 5] [--seconds 2] [--rate 1000] [--json benchmarks/results/ingest.json]
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
from typing import Callable

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
    from plugin.handlers.http import create_app, settle_heap
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
        settle_heap()  # as `careroute serve` does once started
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


class _PipelinedClient(asyncio.Protocol):
    """One keep-alive connection of the saturation phase: writes `depth` requests at once and,
    when all their answers are in, the next `depth`. Answers are counted in `data_received`
    with a few byte searches (no StreamReader, no future per answer), so the load generator
    costs a small fraction of what the server spends per request."""

    def __init__(self, take: Callable[[int], list[bytes]], depth: int, deadline: float,
                 finished: asyncio.Future) -> None:
        self.take, self.depth, self.deadline, self.finished = take, depth, deadline, finished
        self.buffer = b""
        self.outstanding = 0
        self.done = 0
        self.bad = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        batch = self.take(self.depth) if time.perf_counter() < self.deadline else []
        if not batch:
            self.transport.close()
            if not self.finished.done():
                self.finished.set_result(None)
            return
        self.outstanding = len(batch)
        self.transport.write(b"".join(batch))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        position = 0
        while True:
            head_end = buffer.find(b"\r\n\r\n", position)
            if head_end < 0:
                break
            length_at = buffer.find(b"Content-Length: ", position, head_end)
            length = 0
            if length_at >= 0:
                line_end = buffer.find(b"\r\n", length_at)
                length = int(buffer[length_at + 16:line_end])
            answer_end = head_end + 4 + length
            if answer_end > len(buffer):
                break
            self.done += 1
            self.bad += buffer[position + 9:position + 12] != b"202"
            self.outstanding -= 1
            position = answer_end
        self.buffer = buffer[position:]
        if self.outstanding == 0:
            self._send()

    def connection_lost(self, exc) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


async def saturate(port: int, requests: list[bytes], seconds: float, connections: int = 64,
                   depth: int = 4) -> dict:
    """As fast as the server answers: `connections` keep-alive connections, each pipelining
    `depth` requests at a time (one write, then `depth` answers), so the load generator's own
    per-request cost stays far below the server's."""
    loop = asyncio.get_running_loop()
    deadline = time.perf_counter() + seconds
    index = 0

    def take(count: int) -> list[bytes]:
        nonlocal index
        batch = requests[index:index + count]
        index += len(batch)
        return batch

    started = time.perf_counter()
    clients = []
    for _ in range(connections):
        finished = loop.create_future()
        _, client = await loop.create_connection(
            lambda f=finished: _PipelinedClient(take, depth, deadline, f), "127.0.0.1", port)
        clients.append(client)
    await asyncio.gather(*(client.finished for client in clients))
    elapsed = time.perf_counter() - started
    done = sum(client.done for client in clients)
    bad = sum(client.bad for client in clients)
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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(seconds: float, rate: float, connections: int = 64, depth: int = 4,
            rounds: int = 5) -> dict:
    """Both servers up side by side; `rounds` saturation bursts of `seconds` each, alternating
    bare → careroute, then a paced phase on each. The host's speed drifts by tens of per cent
    within minutes; alternating short bursts and taking medians keeps that drift out of the
    ratio (each round's ratio compares two bursts a few seconds apart)."""
    with tempfile.TemporaryDirectory() as bare_dir, tempfile.TemporaryDirectory() as our_dir:
        ports = {"bare": _free_port(), "careroute": _free_port()}
        procs = {"bare": _start("bare", ports["bare"], bare_dir),
                 "careroute": _start("careroute", ports["careroute"], our_dir)}
        try:
            bursts: dict[str, list[dict]] = {"bare": [], "careroute": []}
            for round_no in range(rounds):
                for kind in ("bare", "careroute"):
                    # Fresh ids for every burst so no delivery is a duplicate.
                    burst = build_requests(int(seconds * 25000) + 1000, ports[kind],
                                           first_id=100000 + round_no * 1_000_000,
                                           prefix=f"r{round_no}")
                    cpu_before = _cpu_seconds(procs[kind].pid)
                    sat = asyncio.run(saturate(ports[kind], burst, seconds, connections, depth))
                    # CPU the server spent per answer: it moves less than the rate when
                    # something else shares the core.
                    sat["server_cpu_us_per_request"] = round(
                        (_cpu_seconds(procs[kind].pid) - cpu_before) / max(sat["requests"], 1)
                        * 1e6, 1)
                    bursts[kind].append(sat)
                    time.sleep(0.5)  # let the burst's backlog settle
            results = {}
            for kind in ("bare", "careroute"):
                # Fresh tickets, signed as sent (editing signed bytes would make every one a 401).
                steady = build_requests(int(rate * 5), ports[kind], first_id=900000,
                                        prefix="pace")
                runs = bursts[kind]
                results[kind] = {
                    "saturation": {
                        "per_second": round(statistics.median(r["per_second"] for r in runs), 1),
                        "server_cpu_us_per_request": round(statistics.median(
                            r["server_cpu_us_per_request"] for r in runs), 1),
                        "non_202": sum(r["non_202"] for r in runs),
                        "bursts": runs},
                    "paced": asyncio.run(paced(ports[kind], steady, rate, 5.0))}
            ratios = [ours["per_second"] / bare["per_second"]
                      for bare, ours in zip(bursts["bare"], bursts["careroute"])]
            results["round_ratios"] = [round(r, 3) for r in ratios]
            return results
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="length of each saturation burst (one per server per round)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="saturation rounds, alternating the two servers")
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
    measured = measure(args.seconds, args.rate, args.connections, args.depth, args.rounds)
    bare, careroute = measured["bare"], measured["careroute"]
    ratio = statistics.median(measured["round_ratios"])
    cpu_ratio = (bare["saturation"]["server_cpu_us_per_request"]
                 / max(careroute["saturation"]["server_cpu_us_per_request"], 0.1))
    result = {"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
              "bare": bare, "careroute": careroute, "ratio_to_bare": round(ratio, 3),
              "round_ratios": measured["round_ratios"],
              "cpu_ratio_to_bare": round(cpu_ratio, 3),
              "bars": {"per_second>=2000": careroute["saturation"]["per_second"] >= 2000,
                       "p99_ms<25": careroute["paced"]["p99_ms"] < 25,
                       "all_202": careroute["paced"]["non_202"] == 0
                       and careroute["saturation"]["non_202"] == 0,
                       "ratio>=0.5": ratio >= 0.5}}
    print("ingest (server on one core, durable enqueue, workers off)")
    print(f"  {'':10} {'webhooks/s':>11} {'cpu µs/req':>11} {'p50 ms @%d/s' % args.rate:>14} "
          f"{'p99 ms':>8}")
    for name, data in (("bare 202", bare), ("careroute", careroute)):
        print(f"  {name:10} {data['saturation']['per_second']:>11.0f} "
              f"{data['saturation']['server_cpu_us_per_request']:>11.1f} "
              f"{data['paced']['p50_ms']:>14.2f} {data['paced']['p99_ms']:>8.2f}")
    print(f"  ratio careroute/bare: {ratio:.2f} (median of {len(measured['round_ratios'])} rounds: "
          f"{', '.join(f'{r:.2f}' for r in measured['round_ratios'])}), "
          f"{cpu_ratio:.2f} by server CPU per request")
    print(f"  bars: {result['bars']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
