"""Aggregates over independent runs (seeds), after rliable (Agarwal et al. 2021, "Deep RL at the edge of the
statistical precipice"): the interquartile mean and a stratified bootstrap confidence interval.

One task, ``n`` runs: the bootstrap resamples the runs with replacement (rliable's ``StratifiedBootstrap`` with a
single stratum), computes the statistic on each resample, and takes the percentile interval. The resampling
indices are drawn exactly as rliable draws them (``choice(n, (n, 1), replace=True)`` per replication, from a
``RandomState``), but from an explicit seed instead of NumPy's global state, so the figures are reproducible; a test
checks them against rliable's to 1e-6.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as _stats

BOOTSTRAP_REPS = 50_000  # rliable's default
CONFIDENCE = 0.95


def iqm(scores) -> float:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end, as ``scipy.stats.trim_mean``)."""
    return float(_stats.trim_mean(np.asarray(scores, np.float64).ravel(), proportiontocut=0.25, axis=None))


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    return _stats.trim_mean(samples, proportiontocut=0.25, axis=1)


def _mean_rows(samples: np.ndarray) -> np.ndarray:
    return np.mean(samples, axis=1)


STATISTICS = {"iqm": (iqm, _iqm_rows), "mean": (lambda x: float(np.mean(x)), _mean_rows)}


def bootstrap_ci(scores, statistic: str = "iqm", *, seed: int = 0, reps: int = BOOTSTRAP_REPS,
                 confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile bootstrap interval of ``statistic`` ("iqm" or "mean") over the runs' ``scores`` (one number
    per run). A single run has no spread: its interval is the point itself."""
    x = np.asarray(scores, np.float64).ravel()
    if x.size == 0:
        return float("nan"), float("nan")
    point, rows = STATISTICS[statistic]
    if x.size == 1:
        return point(x), point(x)
    rng = np.random.RandomState(seed)
    # reps draws of (n, 1) in a row are draws of (block, n, 1) in a row: the same numbers in the same order
    block = max(1, 2_000_000 // x.size)
    values = np.concatenate([rows(x[rng.choice(x.size, (min(block, reps - done), x.size, 1), replace=True)[..., 0]])
                             for done in range(0, reps, block)])
    alpha = (1.0 - confidence) / 2
    low, high = np.percentile(values, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def aggregate(scores, *, seed: int = 0, reps: int = BOOTSTRAP_REPS) -> dict[str, float]:
    """Mean, IQM, their 95% bootstrap intervals, min and max over the runs' scores."""
    x = np.asarray(scores, np.float64).ravel()
    iqm_low, iqm_high = bootstrap_ci(x, "iqm", seed=seed, reps=reps)
    mean_low, mean_high = bootstrap_ci(x, "mean", seed=seed, reps=reps)
    return {"runs": int(x.size), "mean": float(np.mean(x)), "mean_ci_low": mean_low, "mean_ci_high": mean_high,
            "iqm": iqm(x), "iqm_ci_low": iqm_low, "iqm_ci_high": iqm_high, "min": float(np.min(x)),
            "max": float(np.max(x))}
