"""Small helpers shared by the peer benchmark scripts (stdlib only, cheap to import).

Output contract: progress goes to stderr; the JSON result is the LAST line of stdout.
To keep stray library prints (Python or C level) off stdout, ``claim_stdout()``
duplicates the real stdout and points file descriptor 1 at stderr for the rest of
the run; ``emit()`` writes the final JSON line to the saved real stdout.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from importlib import metadata

_REAL_STDOUT_FD: int | None = None


def claim_stdout() -> None:
    """Route everything printed to stdout (fd 1) to stderr until ``emit``."""
    global _REAL_STDOUT_FD
    if _REAL_STDOUT_FD is not None:
        return
    sys.stdout.flush()
    _REAL_STDOUT_FD = os.dup(1)
    os.dup2(2, 1)


def log(msg: str) -> None:
    print(f"[peer {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def versions(*names: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {
        "python": ".".join(map(str, sys.version_info[:3])),
    }
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _clean(obj):
    """Replace non-finite floats by None and numpy scalars by Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (TypeError, ValueError):
            pass
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def emit(result: dict) -> None:
    """Print ``result`` as one JSON line on the real stdout (last line)."""
    line = json.dumps(_clean(result), allow_nan=False, sort_keys=False)
    sys.stdout.flush()
    sys.stderr.flush()
    if _REAL_STDOUT_FD is None:
        print(line, flush=True)
    else:
        os.write(_REAL_STDOUT_FD, (line + "\n").encode())


def first_crossing(evals: list, threshold: float):
    """Return the first [env_steps, mean, train_s, ...] entry with mean >= threshold."""
    for entry in evals:
        if entry[1] >= threshold:
            return entry
    return None
