"""Instructions per webhook, per server thread, counted by callgrind (user space only).

The host this project is measured on drifts by tens of per cent within minutes, which swamps a
10 % change in `benchmarks.ingest`'s timings. Instruction counts do not drift: this runs one server
(`careroute` or `bare`, as in benchmarks.ingest) under `valgrind --tool=callgrind`, zeroes the
counters once it has started and taken a warm-up burst, sends `--requests` signed webhooks, dumps,
and prints thousands of instructions per webhook for each thread (the loop thread, and for
careroute the store thread). Kernel work (the fsync, the sockets) is not counted: compare like
with like, and keep `benchmarks.ingest` for the rate and the CPU time.

    python -m benchmarks.ingest_instructions [--server careroute|bare] [--requests 2000]

Needs valgrind (Debian: `apt install valgrind`); about two minutes per run. Session 6's figures
(README → Performance): careroute 352k loop + 88.5k store, bare 232k.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import ingest

_TOTAL = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def instructions_in(dump_text: str) -> int:
    """The instruction total of one callgrind dump file (0 if it has none)."""
    found = _TOTAL.search(dump_text)
    return int(found.group(1)) if found else 0


def per_thread(dumps: dict[str, str], requests: int) -> dict[str, float]:
    """Thousands of instructions per request for each thread's dump that did any work."""
    return {name: round(instructions_in(text) / requests / 1000, 1)
            for name, text in sorted(dumps.items()) if instructions_in(text)}


def measure(server: str, requests: int) -> dict[str, float]:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind (with callgrind_control) is not installed")
    with tempfile.TemporaryDirectory() as data_dir, tempfile.TemporaryDirectory() as out_dir:
        port = ingest._free_port()
        out = Path(out_dir) / "callgrind.%p"
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--separate-threads=yes",
             sys.executable, "-m", "benchmarks.ingest", f"--serve-{server}", str(port), data_dir],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 300  # start-up under valgrind takes a while
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        raise SystemExit("the server did not start under valgrind") from None
                    time.sleep(0.5)
            batch = ingest.build_requests(requests + 400, port)
            asyncio.run(ingest.saturate(port, batch[:200], 60, connections=8, depth=4))  # warm up
            time.sleep(1)
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True, check=False)
            sent = asyncio.run(ingest.saturate(port, batch[300:300 + requests], 300,
                                               connections=16, depth=4))
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=False)
            time.sleep(1)
        finally:
            proc.kill()
            proc.wait()
        dumps = {path.name: path.read_text(errors="replace")
                 for path in Path(out_dir).glob(f"callgrind.{proc.pid}*")}
        return per_thread(dumps, sent["requests"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest_instructions",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("careroute", "bare"), default="careroute")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    figures = measure(args.server, args.requests)
    print(f"{args.server}: thousands of instructions per webhook, per thread dump: {figures}")
    print(f"  total {sum(figures.values()):.1f}k")
    return 0


if __name__ == "__main__":
    sys.exit(main())
