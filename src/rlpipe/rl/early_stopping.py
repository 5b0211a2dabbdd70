"""Convergence monitoring: stop once the windowed mean return has reached a target for ``patience`` checks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EarlyStopping:
    """Fed one history row per log interval; rows without the monitored value (NaN) are skipped.

    ``monitor="eval"`` watches the deterministic evaluation on held-out scenarios, ``"train"`` the mean return of
    training episodes finished in the interval. The windowed mean is the mean of the last ``window`` values; it
    must be >= ``target_return`` at ``patience`` consecutive checks. The best windowed mean is always recorded.
    """

    target_return: float | None
    monitor: str = "eval"
    window: int = 1
    patience: int = 1
    values: list[float] = field(default_factory=list)
    hits: int = 0
    best: float = -math.inf
    stopped_at: int | None = None

    def update(self, row: dict[str, Any]) -> bool:
        value = row["eval_return_mean" if self.monitor == "eval" else "episode_return"]
        if value is None or math.isnan(value):
            return False
        self.values.append(float(value))
        windowed = sum(self.values[-self.window:]) / len(self.values[-self.window:])
        self.best = max(self.best, windowed)
        if self.target_return is None:
            return False
        reached = len(self.values) >= self.window and windowed >= self.target_return
        self.hits = self.hits + 1 if reached else 0
        if self.hits >= self.patience:
            self.stopped_at = int(row["env_steps"])
            return True
        return False

    def status(self) -> dict[str, float]:
        return {"best_return": self.best, "early_stopped": float(self.stopped_at is not None)}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps so a resumed run stops exactly where an uninterrupted one would."""
        return {"values": list(self.values), "hits": self.hits, "best": self.best, "stopped_at": self.stopped_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.values = [float(v) for v in state["values"]]
        self.hits, self.best, self.stopped_at = int(state["hits"]), float(state["best"]), state["stopped_at"]
