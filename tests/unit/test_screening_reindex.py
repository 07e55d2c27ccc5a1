"""`python -m plugin.screening.reindex` writes the same literals.json whatever the hash seed:
choosing between near-equal sets of prefilter strings once depended on set iteration order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_DOCUMENT = ("import json, sys; from plugin.screening import reindex; "
             "sys.stdout.write(json.dumps(reindex.literal_cache_document(), sort_keys=True))")


def _document(seed: str) -> str:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    return subprocess.run([sys.executable, "-c", _DOCUMENT], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True, timeout=300).stdout


def test_the_literal_cache_does_not_depend_on_the_hash_seed():
    first, second = _document("1"), _document("2")
    assert first and first == second
