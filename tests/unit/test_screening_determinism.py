"""Same input, same output — across processes too, whose string hashes (and so the iteration
order of every set of words) differ: screening results, and the literals.json that
`python -m plugin.screening.reindex` writes (choosing between near-equal sets of prefilter
strings once followed set order; the word model once summed floats in set order)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_DOCUMENT = ("import json, sys; from plugin.screening import reindex; "
             "sys.stdout.write(json.dumps(reindex.literal_cache_document(), sort_keys=True))")


def _output(code: str, seed: str) -> str:
    """What `code` prints in a fresh interpreter with string hashing seeded by `seed`."""
    env = dict(os.environ, PYTHONHASHSEED=seed)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True, timeout=300).stdout


def test_the_literal_cache_does_not_depend_on_the_hash_seed():
    first, second = _output(_DOCUMENT, "1"), _output(_DOCUMENT, "2")
    assert first and first == second


_SCREEN_ALL = """
import glob, json, sys
from plugin.screening import engine, learned, passages, screen
out = []
for path in sorted(glob.glob("tests/unit/screening_cases/*.jsonl")):
    for line in open(path, encoding="utf-8"):
        if line.strip():
            case = json.loads(line)
            a = screen(case["text"], locale=case.get("locale"))
            canonical = engine.canonical_text(case["text"])
            view = learned.opinion(engine.MODEL, canonical)  # unrounded: ulps would show
            passage = passages.strongest_passage(engine.PASSAGES, engine.MODEL, canonical)
            out.append([case["id"], a.tier, repr(a.score), sorted(a.flags),
                        [[s.rule, s.start, s.end, repr(s.weight)] for s in a.signals],
                        repr(view.at_risk), repr(view.imminent),
                        passage and [repr(passage.probability), repr(passage.word_model)]])
sys.stdout.write(json.dumps(out))
"""


def test_screening_results_do_not_depend_on_the_hash_seed():
    first, second = _output(_SCREEN_ALL, "3"), _output(_SCREEN_ALL, "4")
    assert len(first) > 100_000 and first == second
