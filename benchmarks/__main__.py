"""`python -m benchmarks` (`make bench`): every benchmark in one run, then a summary.

Runs screening, ingest, end-to-end, API calls per ticket, vendor-client CPU and memory (the last takes several
minutes: 100,000 tickets through `careroute serve`), each writing benchmarks/results/<name>.json,
then writes benchmarks/results/summary.json with the headline figures, the bars and the machine.

    python -m benchmarks [--skip-memory] [--memory-tickets 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import screening

RESULTS = Path(__file__).parent / "results"


def _load(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


def summary() -> dict[str, Any]:
    scr, ing, end, cal, mem = (_load(n) for n in ("screening", "ingest", "e2e", "calls", "memory"))
    rows: dict[str, Any] = {}
    if ing:
        rows["ingest"] = {"careroute_per_second": ing["careroute"]["saturation"]["per_second"],
                          "bare_per_second": ing["bare"]["saturation"]["per_second"],
                          "ratio_to_bare": ing["ratio_to_bare"],
                          "p50_ms_at_1000": ing["careroute"]["paced"]["p50_ms"],
                          "p99_ms_at_1000": ing["careroute"]["paced"]["p99_ms"],
                          "bars": ing["bars"]}
    if end:
        rows["e2e"] = {k: end["e2e"][k] for k in ("rate_offered", "throughput_per_second",
                                                  "p50_ms", "p95_ms", "ack_p50_ms")}
        rows["e2e"]["bars"] = end["bars"]
    if scr:
        rows["screening"] = {k: scr.get(k) for k in ("tickets_per_second",
                                                     "naive_keyword_tickets_per_second",
                                                     "resident_memory_mb")}
    if mem:
        rows["memory"] = {k: mem["memory"][k] for k in ("tickets", "rss_start_mb", "rss_end_mb",
                                                        "rss_peak_mb",
                                                        "slope_second_half_mb_per_10k")}
        rows["memory"]["bars"] = mem["bars"]
    if cal:
        rows["calls_per_ticket"] = cal["calls_per_ticket"]
    return {"machine": machine(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "results": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--skip-memory", action="store_true", help="leave out the long memory run")
    parser.add_argument("--memory-tickets", type=int, default=100_000)
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parent.parent

    def fresh(module: str, *extra: str):
        # A fresh interpreter per benchmark: the load generators must not carry the heap (and
        # the garbage collector's work) of the benchmarks before them.
        return lambda: subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *extra],
                                      cwd=root).returncode

    steps = [("screening", lambda: screening.main([])), ("ingest", fresh("ingest")),
             ("e2e", fresh("e2e")), ("calls", fresh("calls")),
             ("vendor_client", fresh("vendor_client"))]
    if not args.skip_memory:
        steps.append(("memory", fresh("memory", "--tickets", str(args.memory_tickets))))
    failed = []
    for name, step in steps:
        print(f"\n== {name}", flush=True)
        if step() != 0:
            failed.append(name)
    result = summary()
    (RESULTS / "summary.json").write_text(json.dumps(result, indent=2))
    print("\n== summary (benchmarks/results/summary.json)")
    print(json.dumps(result["results"], indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
