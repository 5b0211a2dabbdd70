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


def use_compilation_cache(argv: list[str]) -> None:
    """``--cache-dir DIR`` turns on JAX's persistent compilation cache there, as the project's Kedro hook does for
    every ``kedro run`` (by default in ``.jax_cache``). Without it, everything compiles from scratch."""
    if "--cache-dir" in argv:
        from rlpipe.rl.compilation_cache import use_compilation_cache

        use_compilation_cache(argv[argv.index("--cache-dir") + 1])


class ThresholdWatch:
    """The ``on_progress`` of a threshold run: logs every row and notes the process time (since ``started``) at
    the first evaluation at or above ``threshold``."""

    def __init__(self, label: str, threshold: float, started: float):
        self.label, self.threshold, self.started = label, threshold, started
        self.process_seconds: float | None = None

    def __call__(self, row: dict[str, Any]) -> None:
        import time

        log(f"[{self.label}] {row['env_steps']} env steps, eval {row['eval_return_mean']:.1f}")
        if row["eval_return_mean"] >= self.threshold and self.process_seconds is None:
            self.process_seconds = time.perf_counter() - self.started


def train_through_library(algo: str, raw: dict[str, Any], evaluate: bool = True, **callbacks: Any):
    """``raw`` (an algorithm's parameters) validated and trained as its pipeline would (scenarios, initial state, the
    algorithm's prefill if it has one, with ``evaluate`` periodic and final evaluation on the eval scenarios),
    through the run's spine: ``(config, TrainResult, seconds)``, the seconds from the validated config to the end
    of training. ``callbacks`` are the training core's (e.g. ``on_progress``)."""
    import time

    from rlpipe.rl import run

    config = run.validated_config(algo, raw)
    started = time.perf_counter()
    result = run.train_in_memory(config, evaluate=evaluate, **callbacks)
    return config, result, time.perf_counter() - started
