"""A run's numbers in MLflow's metric-history shape: ``{name: [{"value": v, "step": env_steps}, ...]}``."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

_NOT_METRICS = {"env_steps", "eval_return_mean", "eval_return_std"}


def metric_histories(history: pd.DataFrame, eval_summary: dict[str, Any]) -> dict[str, list[dict[str, float]]]:
    """Training columns as ``train.<column>``, periodic evaluations as ``eval.return_mean``/``eval.return_std``,
    the final evaluation summary as ``eval.final.<key>``; every point stepped by env steps."""
    out: dict[str, list[dict[str, float]]] = {}

    def add(name: str, value: Any, step: int) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out.setdefault(name, []).append({"value": float(value), "step": int(step)})

    for row in history.to_dict("records"):
        step = row["env_steps"]
        for column, value in row.items():
            if column.startswith("seed") and column.endswith(".eval_return_mean"):  # a multi-seed run's seed
                add(f"eval.{column.removesuffix('.eval_return_mean')}.return_mean", value, step)
            elif column not in _NOT_METRICS:
                add(f"train.{column}", value, step)
        add("eval.return_mean", row.get("eval_return_mean"), step)
        add("eval.return_std", row.get("eval_return_std"), step)
    final_step = int(history["env_steps"].iloc[-1]) if len(history) else 0
    for key, value in eval_summary.items():
        add(f"eval.final.{key}", value, final_step)
    return out
