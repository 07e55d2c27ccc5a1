"""Where the workplace's shared reference material is: `../shared` beside the clone (as in CI),
or $CAREROUTE_SHARED."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CAREROUTE_SHARED", REPO.parent / "shared"))
REFERENCE = SHARED / "reference"
EVAL = SHARED / "eval"
