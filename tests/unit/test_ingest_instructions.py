"""benchmarks/ingest_instructions.py: reading callgrind's dumps (the run itself needs valgrind and
takes minutes, so it is a benchmark, not a test)."""

from __future__ import annotations

from benchmarks.ingest_instructions import instructions_in, per_thread

DUMP = """# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  python -m benchmarks.ingest --serve-careroute 5555 /tmp/x
part: 1
thread: 2
events: Ir
summary: 177000000
fn=(1) main
"""


def test_the_total_of_a_dump_is_read_and_spread_over_the_requests() -> None:
    assert instructions_in(DUMP) == 177_000_000
    assert instructions_in(DUMP.replace("summary:", "totals:")) == 177_000_000
    assert instructions_in("# callgrind format\nversion: 1\n") == 0
    dumps = {"callgrind.4242.1-02": DUMP, "callgrind.4242.1-01": DUMP.replace("177", "704"),
             "callgrind.4242.1-03": "version: 1\n"}  # an idle thread: left out
    assert per_thread(dumps, 2000) == {"callgrind.4242.1-01": 352.0, "callgrind.4242.1-02": 88.5}
