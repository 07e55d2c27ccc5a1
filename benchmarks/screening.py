"""Screening speed, start-up time and memory: `python -m benchmarks.screening`.

Measures, on one core (CPU time of the process), how many ~600-character tickets per second `plugin.screening.screen`
handles, beside the naive keyword scan typical helpdesk automations use, on the same synthetic
tickets (mostly ordinary support text, a few with distress, idioms, HTML or quoted history).
In fresh subprocesses it measures the import (rules loaded and indexed), the compilation of
every rule, and the resident memory of a process that imports the screener and screens.

Prints a short table and writes the figures to benchmarks/results/screening.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "screening.json"
TARGET_LENGTH = 600
BARS = {"tickets_per_second": 5000, "import_and_compile_seconds": 0.5, "resident_memory_mb": 60}

_OPENINGS = [
    "Hi team,", "Hello,", "Good morning,", "Hi there,", "Dear support,", "Hey,",
]
_ORDINARY = [
    "I ordered a pair of running shoes last week (order #{n}) and the tracking page still says label created.",
    "Could you check with the courier? The parcel was due on {day} and nobody has called.",
    "I was charged twice on my card ending {n4}, please refund the duplicate payment.",
    "The app keeps logging me out whenever I try to update my delivery address.",
    "My invoice {n} shows the old company name, can you reissue it with the new VAT number?",
    "Since the last update the dashboard takes ages to load and the export button does nothing.",
    "I would like to change my plan from monthly to yearly and keep my current discount.",
    "The password reset email never arrives, I checked the spam folder too.",
    "Your agent promised a call back on {day} but I haven't heard anything yet.",
    "The coffee machine I bought stopped heating after two weeks; is it still under warranty?",
    "Please cancel my subscription at the end of this billing period, I won't need it anymore.",
    "This update is killing me, the sync fails every single time on my laptop.",
    "The battery is dead after one hour, the replacement unit has the same problem.",
    "Can you shoot me an email when the blue size M is back in stock? I'm dying to try it.",
    "I need to kill the process manually every morning or the printer queue hangs.",
    "We are a small shop and the new fees are a real burden for us this quarter.",
    "The ibuprofen in my pharmacy order #{n} was missing from the box, the rest was fine.",
    "The direct debit on {day} bounced although there was money in the account.",
    "My flight confirmation lists the wrong date of birth, can you correct it before check-in?",
    "The router drops the connection every evening between eight and ten.",
]
_DISTRESS = [
    "Honestly I can't cope anymore with these debts and I'm crying every day.",
    "I feel like a burden to everyone and nothing ever gets better.",
    "Sometimes I wish I could go to sleep and not wake up.",
    "My son told me he wants to kill himself, I don't know what to do.",
    "Please make sure my mother gets the refund, I won't be around after tonight.",
]
_CLOSINGS = [
    "Thanks for your help.", "Kind regards,\nJane", "Best,\nOmar", "Thank you!", "Cheers, Lee",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def synthetic_tickets(count: int, seed: int = 7) -> list[str]:
    """Deterministic ~600-character support tickets: about 2% with distress, 10% HTML,
    10% with quoted e-mail history."""
    rng = random.Random(seed)
    tickets = []
    for index in range(count):
        sentences = [rng.choice(_OPENINGS)]
        if rng.random() < 0.02:
            sentences.append(rng.choice(_DISTRESS))
        while sum(len(s) + 1 for s in sentences) < TARGET_LENGTH - 60:
            sentences.append(rng.choice(_ORDINARY).format(
                n=rng.randint(10000, 99999), n4=rng.randint(1000, 9999), day=rng.choice(_DAYS)))
        sentences.append(rng.choice(_CLOSINGS))
        text = " ".join(sentences)[: TARGET_LENGTH + 40]
        roll = index % 10
        if roll == 3:
            text = "<div>" + text.replace(". ", ".</div><div>") + "</div>"
        elif roll == 7:
            text += "\n\nOn Mon, 3 Mar 2025 at 10:02, Support <help@shop.example> wrote:\n> Thanks for reaching out, we are looking into it."
        tickets.append(text)
    return tickets


def _rate(function, tickets: list[str], repeat: int) -> float:
    """Median tickets per second of CPU time of this process over `repeat` runs (CPU time, not
    wall time, so other busy processes on the machine do not count against one core's figure)."""
    rates = []
    for _ in range(repeat):
        start = time.process_time()
        for ticket in tickets:
            function(ticket)
        elapsed = max(time.process_time() - start, 1e-9)
        rates.append(len(tickets) / elapsed)
    return statistics.median(rates)


def _fresh_python(code: str) -> dict:
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=root, check=True, timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])


_STARTUP_CODE = """
import json, time
start = time.process_time()
import plugin.screening
imported = time.process_time()
from plugin.screening.engine import BOOK
BOOK.compile_all()
compiled = time.process_time()
print(json.dumps({"import_seconds": imported - start, "compile_all_seconds": compiled - imported}))
"""

_MEMORY_CODE = """
import json, resource
from benchmarks.screening import synthetic_tickets
tickets = synthetic_tickets(2000)
from plugin.screening import screen
from plugin.screening.engine import BOOK
BOOK.compile_all()
for ticket in tickets:
    screen(ticket)
rss_kb = 0
with open("/proc/self/status") as status:
    for line in status:
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"resident_memory_mb": rss_kb / 1024, "peak_resident_memory_mb": peak_kb / 1024}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.screening", description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=5000, help="synthetic tickets per run (default 5000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the median is reported (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)

    from plugin.screening import screen
    from plugin.screening.evaluation import naive_keyword_tier

    tickets = synthetic_tickets(args.tickets)
    for ticket in tickets[:200]:  # warm-up: compiles the rules that these tickets need
        screen(ticket)
    screen_rate = _rate(screen, tickets, args.repeat)
    keyword_rate = _rate(naive_keyword_tier, tickets, args.repeat)
    flagged = sum(1 for ticket in tickets if screen(ticket).tier != "none")
    from plugin.screening import rulebook
    from plugin.screening.engine import BOOK

    cache = rulebook.read_literal_cache()
    stale_rules = sum(1 for rule in BOOK.rules if cache.get(rule.id, {}).get("key") != rulebook.rule_key(rule))
    startup = _fresh_python(_STARTUP_CODE)
    memory = _fresh_python(_MEMORY_CODE)

    figures = {
        "tickets": len(tickets),
        "mean_ticket_chars": round(sum(map(len, tickets)) / len(tickets), 1),
        "flagged_share": round(flagged / len(tickets), 4),
        "tickets_per_second": round(screen_rate, 1),
        "naive_keyword_tickets_per_second": round(keyword_rate, 1),
        "import_seconds": round(startup["import_seconds"], 4),
        "compile_all_seconds": round(startup["compile_all_seconds"], 4),
        "import_and_compile_seconds": round(startup["import_seconds"] + startup["compile_all_seconds"], 4),
        "resident_memory_mb": round(memory["resident_memory_mb"], 1),
        "peak_resident_memory_mb": round(memory["peak_resident_memory_mb"], 1),
        "rules": len(BOOK.rules),
        "rules_missing_from_literal_cache": stale_rules,
        "python": sys.version.split()[0],
        "bars": BARS,
    }
    rows = [
        ("screen() tickets/s (1 core)", figures["tickets_per_second"], f">= {BARS['tickets_per_second']}"),
        ("naive keyword scan tickets/s", figures["naive_keyword_tickets_per_second"], "(baseline)"),
        ("import (load + index rules) s", figures["import_seconds"], ""),
        ("compile every rule s", figures["compile_all_seconds"], ""),
        ("import + compile s", figures["import_and_compile_seconds"], f"< {BARS['import_and_compile_seconds']}"),
        ("resident memory MB", figures["resident_memory_mb"], f"< {BARS['resident_memory_mb']}"),
        ("mean ticket length (chars)", figures["mean_ticket_chars"], ""),
        ("share flagged (not none)", figures["flagged_share"], ""),
        ("rules (missing from literals.json)", f"{len(BOOK.rules)} ({stale_rules})", ""),
    ]
    print(f"{'measure':<34} {'value':>12}  bar")
    for name, value, bar in rows:
        print(f"{name:<34} {value:>12}  {bar}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
