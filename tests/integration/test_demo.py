"""`careroute demo --once` as a new user runs it: a real process, a results table, exit 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_once_prints_the_results_table(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREROUTE_")}
    done = subprocess.run([sys.executable, "-m", "plugin.cli", "demo", "--once",
                           "--data-dir", str(tmp_path / "demo")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    # Progress is visible while it starts, before the table.
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in out
    assert "12/12 tickets screened" in out
    rows = {int(m.group(1)): line for line in out.splitlines()
            if (m := re.match(r"^(\d+)\s{2,}(zendesk|freshdesk)\s", line))}
    assert sorted(rows) == list(range(1, 13))
    untouched = [n for n, line in rows.items() if "(left untouched)" in line]
    # Ordinary tickets, idioms and negation are left alone …
    for n in (1, 2, 3, 9, 10):
        assert n in untouched, rows[n]
    # … crisis tickets get tags, priority, group and a note that says why.
    for n, expected in ((5, "careroute_high"), (6, "careroute_high"), (7, "careroute_imminent"),
                        (8, "careroute_high")):
        assert expected in rows[n] and "careroute_screened" in rows[n], rows[n]
        assert "CareRoute: possible" in rows[n], rows[n]
    # The demo never prints a secret.
    assert "sandbox-webhook-secret" not in out
