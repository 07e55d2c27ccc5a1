"""End to end: webhook sent → ticket updated in the Zendesk emulator, at a steady rate.

`careroute serve` runs pinned to core 0 (workers on, SQLite synchronous=FULL); the emulator and
this load generator share core 1. Every ticket is a crisis ticket (so each one is fetched,
screened and written: the heavy path). Latency of one ticket = the emulator's request-log
arrival time of its successful `PUT /api/v2/tickets/{id}` minus the time its webhook was sent
(both clocks are this machine's). Bar (issue 8): p95 < 300 ms at 200 tickets/s.

    python -m benchmarks.e2e [--rate 200] [--seconds 10] [--json benchmarks/results/e2e.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import aiohttp  # noqa: E402
import httpx  # noqa: E402

from integration_support import (  # noqa: E402
    SandboxProcess,
    ServiceProcess,
    create_zendesk_tickets,
    texts_of,
    write_tenants,
    zendesk_delivery,
    zendesk_tenant_table,
)

RESULTS = Path(__file__).parent / "results"
SECRET = "bench-e2e-secret-0123456789"
SERVICE_CORE, LOAD_CORE = {0}, {1}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(share * len(ordered))) - 1))]


def pinned(cores: set[int]) -> set[int] | None:
    return cores if (os.cpu_count() or 1) > max(cores) else None


async def paced_webhooks(url: str, ids: list[int], rate: float) -> tuple[dict[str, float], list[float]]:
    """POST one signed delivery per ticket at `rate`/s → (send time per ticket, ack latencies)."""
    sent: dict[str, float] = {}
    acks: list[float] = []
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    # aiohttp's client, not httpx: it costs a tenth of the CPU a request, and this generator
    # shares its core with the emulator (see plugin/http_transport.py).
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(base_url=url, connector=connector) as http:
        async def sender() -> None:
            while (ticket := await queue.get()) is not None:
                # As our trigger sends it ({{ticket.requester.locale}}, plugin/zendesk/provision.py).
                body, headers = zendesk_delivery(SECRET, ticket, invocation=f"e2e-{ticket}",
                                                 locale="en-US")
                started = time.time()
                sent[str(ticket)] = started
                async with http.post("/webhooks/zendesk/bench", data=body,
                                     headers=headers) as reply:
                    await reply.read()
                    acks.append(time.time() - started)
                    if reply.status != 202:
                        raise RuntimeError(f"webhook answered {reply.status}")

        senders = [asyncio.create_task(sender()) for _ in range(64)]
        start = time.perf_counter()
        for i, ticket in enumerate(ids):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait(ticket)
        for _ in senders:
            queue.put_nowait(None)
        await asyncio.gather(*senders)
    return sent, acks


async def run(rate: float, seconds: float, concurrency: int) -> dict[str, Any]:
    count = int(rate * seconds)
    sandbox = SandboxProcess({"zd": {"vendor": "zendesk"}}, cpus=pinned(LOAD_CORE))
    service = None
    try:
        zd_url = sandbox.urls["zd"]
        crisis = texts_of("distress", "ideation", "third_party", "imminent")
        ids = await create_zendesk_tickets(zd_url, [crisis[i % len(crisis)] for i in range(count)])
        async with httpx.AsyncClient(base_url=zd_url) as http:
            await http.delete("/_sandbox/requests")
        with tempfile.TemporaryDirectory() as tmp:
            tenants = write_tenants(Path(tmp) / "tenants.toml",
                                    [zendesk_tenant_table("bench", zd_url, SECRET)])
            service = ServiceProcess(Path(tmp) / "data", tenants, log_path=Path(tmp) / "svc.log",
                                     cpus=pinned(SERVICE_CORE), env={
                                         "CAREROUTE_LOG_LEVEL": "warning",
                                         "CAREROUTE_WORKER_CONCURRENCY": str(concurrency)}).start()
            began = time.time()
            sent, acks = await paced_webhooks(service.url, ids, rate)
            send_seconds = time.time() - began
            updated: dict[str, float] = {}
            deadline = time.time() + 120
            async with httpx.AsyncClient(base_url=zd_url, timeout=60) as http:
                while len(updated) < count and time.time() < deadline:
                    await asyncio.sleep(0.5)
                    for entry in (await http.get("/_sandbox/requests")).json():
                        if entry["method"] == "PUT" and entry["status"] == 200:
                            updated.setdefault(entry["path"].rsplit("/", 1)[1], entry["at"])
            finished = max(updated.values()) if updated else time.time()
            service.stop()
    finally:
        if service is not None:
            service.stop()
        sandbox.stop()
    latencies = [updated[t] - sent[t] for t in sent if t in updated]
    return {
        "rate_offered": rate, "tickets": count, "updated": len(updated),
        "send_seconds": round(send_seconds, 2),
        "throughput_per_second": round(len(updated) / max(1e-9, finished - began), 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "ack_p50_ms": round(statistics.median(acks) * 1000, 2),
        "ack_p99_ms": round(percentile(acks, 0.99) * 1000, 2),
        "worker_concurrency": concurrency,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4, help="CAREROUTE_WORKER_CONCURRENCY")
    parser.add_argument("--also-rate", type=float, default=40.0,
                        help="a second pass at a rate the service sustains (0: none)")
    parser.add_argument("--json", type=Path, default=RESULTS / "e2e.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if pinned(LOAD_CORE):
        os.sched_setaffinity(0, LOAD_CORE)
    figures = asyncio.run(run(args.rate, args.seconds, args.concurrency))
    result = {"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
              "e2e": figures, "bars": {"p95_ms<300": figures["p95_ms"] < 300,
                                       "all_updated": figures["updated"] == figures["tickets"]}}
    if args.also_rate:
        result["e2e_sustainable"] = asyncio.run(run(args.also_rate, args.seconds, args.concurrency))
    print(f"end to end (webhook → ticket updated), {figures['tickets']} crisis tickets offered at "
          f"{args.rate:.0f}/s, {args.concurrency} workers")
    print(f"  updated {figures['updated']}  throughput {figures['throughput_per_second']}/s  "
          f"p50 {figures['p50_ms']} ms  p95 {figures['p95_ms']} ms  max {figures['max_ms']} ms  "
          f"ack p50 {figures['ack_p50_ms']} ms")
    print(f"  bars: {result['bars']}")
    if args.also_rate:
        low = result["e2e_sustainable"]
        print(f"  at {args.also_rate:.0f}/s: throughput {low['throughput_per_second']}/s  "
              f"p50 {low['p50_ms']} ms  p95 {low['p95_ms']} ms  max {low['max_ms']} ms")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
