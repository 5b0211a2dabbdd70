"""A failure-weighted curriculum over the training scenarios.

Every ``every_env_steps`` the current deterministic policy runs once on every training scenario; the probability
of drawing a scenario at a reset becomes a softmax of its score (its negative return, or its failure for an env with
a success metric), standardized over the scenarios so the temperature means the same for any reward scale, mixed
with a uniform floor so that no scenario is starved:

    z_i = (s_i - mean(s)) / std(s),    p_i = (1 - floor) * softmax(z / temperature)_i + floor / N

The weights and the returns they came from are part of the run state (checkpointed: a resumed run draws exactly as
the uninterrupted one). Pure numpy: it runs on the host between compiled chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

UNIFORM_RETURN = np.nan  # the "returns" of a curriculum that has not evaluated yet


def initial_state(num_scenarios: int) -> dict[str, np.ndarray]:
    """Uniform weights and no returns yet ([num_scenarios]; a multi-seed run stacks one per seed)."""
    return {"weights": np.full(num_scenarios, 1.0 / num_scenarios, np.float32),
            "returns": np.full(num_scenarios, UNIFORM_RETURN, np.float32)}


def weights(scores: np.ndarray, temperature: float, floor: float) -> np.ndarray:
    """Draw probabilities from per-scenario scores (higher: needs more practice), along the last axis."""
    scores = np.asarray(scores, np.float64)
    spread = scores.std(axis=-1, keepdims=True)
    z = (scores - scores.mean(axis=-1, keepdims=True)) / np.where(spread > 1e-12, spread, 1.0)
    logits = z / temperature
    soft = np.exp(logits - logits.max(axis=-1, keepdims=True))
    soft /= soft.sum(axis=-1, keepdims=True)
    n = scores.shape[-1]
    return ((1.0 - floor) * soft + floor / n).astype(np.float32)


def scores(returns: np.ndarray, metric: np.ndarray | None = None) -> np.ndarray:
    """What the curriculum weighs by: the failure (1 - the success metric's final value) where there is a success
    metric, else the negative return."""
    if metric is not None:
        return 1.0 - np.asarray(metric, np.float64)
    return -np.asarray(returns, np.float64)


def entropy(p: np.ndarray) -> np.ndarray:
    """Entropy (nats) of draw distributions along the last axis; log(N) is uniform."""
    p = np.asarray(p, np.float64)
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


def worst_decile(returns: np.ndarray) -> np.ndarray:
    """Mean of the lowest tenth (at least one) of the returns along the last axis."""
    r = np.sort(np.asarray(returns, np.float64), axis=-1)
    k = max(1, int(np.ceil(0.1 * r.shape[-1])))
    return r[..., :k].mean(axis=-1)


def update(returns: np.ndarray, metric: np.ndarray | None, config: Any) -> tuple[dict[str, np.ndarray], dict]:
    """The new curriculum state from an evaluation on the training scenarios (``returns`` [.., N], ``metric`` the
    success metric's final values or None) and what a history row logs about it (means over seeds)."""
    w = weights(scores(returns, metric), config.temperature, config.floor)
    state = {"weights": w, "returns": np.asarray(returns, np.float32)}
    logged = {"curriculum.entropy": float(np.mean(entropy(w))),
              "curriculum.worst_decile_return": float(np.mean(worst_decile(returns))),
              "curriculum.return_mean": float(np.mean(returns)),
              "curriculum.max_weight_ratio": float(np.mean(w.max(axis=-1) / w.min(axis=-1)))}
    if metric is not None:
        logged["curriculum.success_rate"] = float(np.mean(metric))
    return state, logged
