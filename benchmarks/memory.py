"""Memory: resident size of `careroute serve` while it handles 100,000 tickets.

The service (pinned to core 0, 8 workers, SQLite synchronous=FULL, log level warning) gets signed
Zendesk webhooks in chunks of 2,000 for tickets created in the emulator (core 1): 95 % ordinary,
5 % crisis (fetched, screened, written). A chunk is sent once the previous one is nearly done,
so the queue stays short and the run measures steady state, not a backlog. VmRSS is read from
/proc/PID/status every second. Bars (issue 8): RSS after 100,000 tickets < 150 MB, and not growing
(the slope over the second half, in MB per 10,000 tickets, stays under 2).

    python -m benchmarks.memory [--tickets 100000] [--json benchmarks/results/memory.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402

from benchmarks.e2e import LOAD_CORE, SERVICE_CORE, pinned  # noqa: E402
from integration_support import (  # noqa: E402
    SandboxProcess,
    ServiceProcess,
    create_zendesk_tickets,
    job_counts,
    texts_of,
    write_tenants,
    zendesk_delivery,
    zendesk_tenant_table,
)

RESULTS = Path(__file__).parent / "results"
SECRET = "bench-memory-secret-0123456789"
CHUNK = 2000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


def slope_per_10k(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of RSS (MB) against tickets done, per 10,000 tickets."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points) or 1.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var * 10_000


async def run(total: int) -> dict[str, Any]:
    sandbox = SandboxProcess({"zd": {"vendor": "zendesk"}}, cpus=pinned(LOAD_CORE))
    ordinary, crisis = texts_of("ordinary", "idiom"), texts_of("ideation", "imminent")
    samples: list[tuple[float, int, float]] = []  # (seconds, tickets done, RSS MB)
    stop = threading.Event()
    service = None
    try:
        url = sandbox.urls["zd"]
        with tempfile.TemporaryDirectory() as tmp:
            tenants = write_tenants(Path(tmp) / "tenants.toml",
                                    [zendesk_tenant_table("bench", url, SECRET)])
            service = ServiceProcess(Path(tmp) / "data", tenants, log_path=Path(tmp) / "svc.log",
                                     cpus=pinned(SERVICE_CORE), env={
                                         "CAREROUTE_LOG_LEVEL": "warning",
                                         "CAREROUTE_WORKER_CONCURRENCY": "8"}).start()
            pid, db, began = service.proc.pid, service.db_path, time.time()

            def sample() -> None:
                while not stop.is_set():
                    try:
                        done = job_counts(db)["done"]
                    except Exception:  # noqa: BLE001 — a busy read: try next second
                        done = samples[-1][1] if samples else 0
                    samples.append((round(time.time() - began, 1), done, round(rss_mb(pid), 1)))
                    stop.wait(1.0)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
            async with httpx.AsyncClient(base_url=service.url, timeout=30, limits=limits) as http, \
                    httpx.AsyncClient(base_url=url, timeout=30) as control:
                sent = 0
                while sent < total:
                    size = min(CHUNK, total - sent)
                    texts = [crisis[i % len(crisis)] if i % 20 == 0 else ordinary[i % len(ordinary)]
                             for i in range(sent, sent + size)]
                    ids = await create_zendesk_tickets(url, texts)
                    gate = asyncio.Semaphore(32)

                    async def one(ticket: int) -> None:
                        async with gate:
                            body, headers = zendesk_delivery(SECRET, ticket, invocation=f"m-{ticket}")
                            reply = await http.post("/webhooks/zendesk/bench", content=body,
                                                    headers=headers)
                            if reply.status_code != 202:
                                raise RuntimeError(f"webhook answered {reply.status_code}")

                    await asyncio.gather(*(one(t) for t in ids))
                    sent += size
                    while True:  # keep the queue short: wait for this chunk to be nearly done
                        counts = job_counts(db)
                        if counts["queued"] + counts["leased"] < CHUNK // 4:
                            break
                        await asyncio.sleep(0.5)
                    # The emulator's own logs would grow without end over 100,000 tickets.
                    await control.delete("/_sandbox/requests")
                    await control.delete("/_integration/ledger")
                    print(f"  {sent} sent, {job_counts(db)['done']} done, "
                          f"RSS {rss_mb(pid):.1f} MB", flush=True)
                while job_counts(db)["done"] < total:
                    await asyncio.sleep(0.5)
            await asyncio.sleep(2.0)
            stop.set()
            sampler.join()
            final_rss = rss_mb(pid)
            elapsed = time.time() - began
            service.stop()
    finally:
        stop.set()
        if service is not None:
            service.stop()
        sandbox.stop()
    half = [(done, rss) for _, done, rss in samples if done >= total // 2]
    at = {}
    for mark in (10_000, 25_000, 50_000, 75_000, 100_000):
        reached = [rss for _, done, rss in samples if done >= min(mark, total)]
        if reached:
            at[str(mark)] = reached[0]
    return {"tickets": total, "seconds": round(elapsed, 1),
            "tickets_per_second": round(total / elapsed, 1),
            "rss_start_mb": samples[0][2], "rss_end_mb": round(final_rss, 1),
            "rss_peak_mb": max(rss for _, _, rss in samples), "rss_at_done": at,
            "slope_second_half_mb_per_10k": round(slope_per_10k(half), 2),
            "samples": samples[:: max(1, len(samples) // 200)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=RESULTS / "memory.json")
    args = parser.parse_args(argv)
    if pinned(LOAD_CORE):
        os.sched_setaffinity(0, LOAD_CORE)
    figures = asyncio.run(run(args.tickets))
    bars = {"rss_end_mb<150": figures["rss_end_mb"] < 150,
            "not_growing(slope<2MB/10k)": figures["slope_second_half_mb_per_10k"] < 2}
    result = {"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
              "memory": figures, "bars": bars}
    print(f"memory of careroute serve over {figures['tickets']} tickets "
          f"({figures['tickets_per_second']}/s): start {figures['rss_start_mb']} MB, "
          f"end {figures['rss_end_mb']} MB, peak {figures['rss_peak_mb']} MB, slope over the "
          f"second half {figures['slope_second_half_mb_per_10k']} MB per 10k   bars: {bars}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
