"""Static figures of a run. Figures are built without pyplot, so nothing global is touched and any backend works."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def learning_curve(history: pd.DataFrame, title: str) -> Figure:
    """Training episode return and periodic deterministic evaluations against env steps."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    train = history.dropna(subset=["episode_return"])
    ax.plot(train["env_steps"], train["episode_return"], label="training episodes (stochastic policy)", lw=1.5)
    if "eval_return_mean" in history:
        ev = history.dropna(subset=["eval_return_mean"])
        if len(ev):
            ax.errorbar(ev["env_steps"], ev["eval_return_mean"], yerr=ev["eval_return_std"], fmt="o-", capsize=3,
                        label="evaluation on held-out scenarios (deterministic, mean ± std)")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
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
