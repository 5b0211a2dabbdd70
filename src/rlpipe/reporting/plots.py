"""Static figures of a run. Figures are built without pyplot, so nothing global is touched and any backend works."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _seed_columns(history: pd.DataFrame, name: str) -> list[str]:
    found = [c for c in history.columns if re.fullmatch(rf"seed\d+\.{name}", c)]
    return sorted(found, key=lambda c: int(c.split(".")[0][4:]))


def _iqm_band(values: np.ndarray, seed: int = 0, reps: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``values`` [points, seeds]: the IQM over the seeds with its 95% bootstrap interval (NaN rows
    where any seed has no value)."""
    from rlpipe.rl.statistics import bootstrap_ci, iqm

    mid, low, high = (np.full(len(values), np.nan) for _ in range(3))
    for i, row in enumerate(values):
        if np.all(np.isfinite(row)):
            mid[i] = iqm(row)
            low[i], high[i] = bootstrap_ci(row, "iqm", seed=seed, reps=reps)
    return mid, low, high


def learning_curve(history: pd.DataFrame, title: str) -> Figure:
    """Training episode return and periodic deterministic evaluations against env steps; for a multi-seed run
    every seed's curves (faint) and the IQM over the seeds with its 95% bootstrap band."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    train_seeds, eval_seeds = _seed_columns(history, "episode_return"), _seed_columns(history, "eval_return_mean")
    if train_seeds:
        steps = history["env_steps"].to_numpy()
        for i, column in enumerate(train_seeds):
            ax.plot(steps, history[column], color="tab:blue", alpha=0.25, lw=0.8,
                    label="training episodes, each seed" if i == 0 else None)
        mid, low, high = _iqm_band(history[train_seeds].to_numpy(np.float64))
        ax.plot(steps, mid, color="tab:blue", lw=2, label=f"training episodes, IQM of {len(train_seeds)} seeds")
        ax.fill_between(steps, low, high, color="tab:blue", alpha=0.2, label="95% bootstrap CI of the IQM")
        ev = history.dropna(subset=eval_seeds[:1]) if eval_seeds else history.iloc[:0]
        if len(ev):
            for i, column in enumerate(eval_seeds):
                ax.plot(ev["env_steps"], ev[column], "o", color="tab:orange", alpha=0.35, ms=3,
                        label="evaluation, each seed" if i == 0 else None)
            mid, low, high = _iqm_band(ev[eval_seeds].to_numpy(np.float64))
            ax.errorbar(ev["env_steps"], mid, yerr=[mid - low, high - mid], fmt="o-", color="tab:orange", capsize=3,
                        label="evaluation on held-out scenarios, IQM of the seeds' means (95% CI)")
        return _finish(fig, ax, title, 7)
    train = history.dropna(subset=["episode_return"])
    ax.plot(train["env_steps"], train["episode_return"], label="training episodes (stochastic policy)", lw=1.5)
    if "eval_return_mean" in history:
        ev = history.dropna(subset=["eval_return_mean"])
        if len(ev):
            ax.errorbar(ev["env_steps"], ev["eval_return_mean"], yerr=ev["eval_return_std"], fmt="o-", capsize=3,
                        label="evaluation on held-out scenarios (deterministic, mean ± std)")
    return _finish(fig, ax, title, 8)


def _finish(fig: Figure, ax, title: str, legend_size: int) -> Figure:
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=legend_size)
    return fig


def eval_returns(episodes: pd.DataFrame, title: str) -> Figure:
    """Return of every held-out scenario, sorted, with the mean; beside it, in the same scenario order, the env's
    own metrics (``env.<name>`` columns), if the evaluation has any."""
    ordered = episodes.sort_values("return").reset_index(drop=True)
    metrics = [c for c in ordered.columns if c.startswith("env.")]
    fig = Figure(figsize=(7 + 4 * bool(metrics), 4), layout="constrained")
    ax = fig.add_subplot(1, 2 if metrics else 1, 1)
    if metrics:
        side = fig.add_subplot(1, 2, 2)
        for column in metrics:
            mean = float(ordered[column].mean())
            side.plot(np.arange(len(ordered)), ordered[column], marker=".", lw=1,
                      label=f"{column.removeprefix('env.')} (mean {mean:.3g})")
        side.set_xlabel("scenario (same order as the returns)")
        side.set_title("environment metrics")
        side.legend(fontsize=7)
    ax.bar(np.arange(len(ordered)), ordered["return"], color="tab:blue", alpha=0.8)
    mean = float(ordered["return"].mean())
    ax.axhline(mean, color="tab:red", ls="--", label=f"mean {mean:.1f}")
    step = max(1, len(ordered) // 16)
    ax.set_xticks(np.arange(len(ordered))[::step], ordered["scenario_id"].astype(str)[::step], rotation=90, fontsize=7)
    ax.set_xlabel("scenario id (sorted by return)")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig
