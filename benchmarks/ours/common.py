"""Shared by our benchmark scripts: build a run from config overrides, print one JSON line, versions."""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from typing import Any


def emit(result: dict[str, Any]) -> None:
    """The last stdout line of every benchmark script: one JSON object."""
    print(json.dumps(result), flush=True)


def versions(*packages: str) -> dict[str, str]:
    return {p: version(p) for p in packages}


def first_crossing(rows: list[dict[str, Any]], threshold: float, key: str = "eval_return_mean"):
    """The first history row whose ``key`` is at or above ``threshold`` (None if never)."""
    return next((r for r in rows if r[key] == r[key] and r[key] >= threshold), None)


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)
