"""Summaries of evaluation episodes (algorithm-independent)."""

from __future__ import annotations

import numpy as np


def summarize_returns(returns: np.ndarray, lengths: np.ndarray) -> dict[str, float]:
    """Mean, std, min, median, max return and mean length of a set of episodes."""
    returns = np.asarray(returns, np.float64)
    return {
        "num_episodes": int(returns.size),
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "return_min": float(np.min(returns)),
        "return_median": float(np.median(returns)),
        "return_max": float(np.max(returns)),
        "length_mean": float(np.mean(lengths)),
    }
