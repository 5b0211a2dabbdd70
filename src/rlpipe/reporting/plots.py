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


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centered moving average over the finite values (NaN points are skipped, not zeros), ``window`` points wide."""
    values = np.asarray(values, np.float64)
    ok = np.isfinite(values)
    if window <= 1 or ok.sum() < 2:
        return values
    kernel = np.ones(window)
    total = np.convolve(np.where(ok, values, 0.0), kernel, mode="same")
    count = np.convolve(ok.astype(np.float64), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    out[count == 0] = np.nan
    return out


def smoothing_window(points: int) -> int:
    """The moving-average width a training-return curve of ``points`` points is drawn with: 5% of them, at least 3;
    0 below 20 points (few points, e.g. long episodes ending together, are shown as they are)."""
    return max(3, points // 20) if points >= 20 else 0


def episode_trend(steps: np.ndarray, returns: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The line through training episodes' returns: at each env step where episodes ended, their mean (envs that
    start together end together: a run of 8 Pendulum envs ends 8 episodes at every 200th step), and where there
    are many such steps a centered moving average over them (``smoothing_window`` wide, each step weighted by its
    episodes). Returns the steps, the line and the window (0: no smoothing)."""
    order = np.argsort(steps, kind="stable")
    steps, returns = np.asarray(steps)[order], np.asarray(returns, np.float64)[order]
    unique, first, count = np.unique(steps, return_index=True, return_counts=True)
    total = np.add.reduceat(returns, first)
    window = smoothing_window(len(unique))
    if window:
        kernel = np.ones(window)
        total, count = np.convolve(total, kernel, mode="same"), np.convolve(count, kernel, mode="same")
    return unique, total / count, window


def learning_curve(history: pd.DataFrame, title: str, losses: tuple[str, ...] = (),
                   diagnostics: tuple[str, ...] = ()) -> Figure:
    """Above: training episode returns (every finished episode faint, the trend line strong: see
    ``episode_trend``) and the periodic deterministic
    evaluations with their spread over the held-out scenarios; for a multi-seed run every seed's curves (faint)
    and the IQM over the seeds with its 95% bootstrap band. Below, where the history has them: the ``losses``
    (left) and the ``diagnostics`` (right: SAC's entropy temperature, PPO's KL and clip fraction), against env
    steps."""
    lower = [c for c in losses if c in history.columns], [c for c in diagnostics if c in history.columns]
    fig = Figure(figsize=(9, 6.5) if any(lower) else (7, 4), layout="constrained")
    grid = fig.add_gridspec(2 if any(lower) else 1, 2, height_ratios=[1.6, 1] if any(lower) else [1])
    ax = fig.add_subplot(grid[0, :])
    _returns_panel(ax, history)
    _finish(ax, title, 8)
    if any(lower):
        for column, names in enumerate(lower):
            if names:
                _metrics_panel(fig.add_subplot(grid[1, column], sharex=ax), history, names, log=column == 1)
    return fig


def _metrics_panel(ax, history: pd.DataFrame, names: list[str], log: bool) -> None:
    """Metrics against env steps: the first on the left axis, a second on its own right axis (losses of different
    scales, as SAC's critic and actor, stay readable), more beside the first. ``log``: a log scale where all the
    values on an axis are positive (SAC's temperature spans decades)."""
    colors = iter(("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"))
    axes, handles = [], []
    for i, name in enumerate(names):
        target = ax if i != 1 else ax.twinx()
        if target not in axes:
            axes.append(target)
        values = history[["env_steps", name]].dropna()
        color = next(colors)
        handles += target.plot(values["env_steps"], values[name], lw=1, color=color, label=name)
        if i == 1:
            target.set_ylabel(name, color=color)
    ax.set_ylabel(names[0] if len(names) <= 2 else ", ".join(n for i, n in enumerate(names) if i != 1))
    for target in axes:
        shown = [n for n in names if (target is ax) != (names.index(n) == 1)]
        if log and all((history[n].dropna() > 0).all() for n in shown):
            target.set_yscale("log")
    ax.set_xlabel("env steps")
    _steps_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=7)


def _steps_axis(ax) -> None:
    """Env steps in thousands and few enough ticks not to run into each other on a half-width panel."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k" if abs(x) >= 1000 else f"{x:g}"))


def _returns_panel(ax, history: pd.DataFrame) -> None:
    train_seeds, eval_seeds = _seed_columns(history, "episode_return"), _seed_columns(history, "eval_return_mean")
    if train_seeds:
        steps = history["env_steps"].to_numpy()
        for i, column in enumerate(train_seeds):
            ax.plot(steps, history[column], color="tab:blue", alpha=0.25, lw=0.8,
                    label="training episodes, each seed" if i == 0 else None)
        rows = history.dropna(subset=train_seeds)
        mid, low, high = _iqm_band(rows[train_seeds].to_numpy(np.float64))
        ax.plot(rows["env_steps"], mid, color="tab:blue", lw=2, label=f"training episodes, IQM of {len(train_seeds)} "
                                                                       "seeds")
        ax.fill_between(rows["env_steps"], low, high, color="tab:blue", alpha=0.2, label="95% bootstrap CI of the IQM")
        ev = history.dropna(subset=eval_seeds[:1]) if eval_seeds else history.iloc[:0]
        if len(ev):
            for i, column in enumerate(eval_seeds):
                ax.plot(ev["env_steps"], ev[column], "o", color="tab:orange", alpha=0.35, ms=3,
                        label="evaluation, each seed" if i == 0 else None)
            mid, low, high = _iqm_band(ev[eval_seeds].to_numpy(np.float64))
            ax.errorbar(ev["env_steps"], mid, yerr=[mid - low, high - mid], fmt="o-", color="tab:orange", capsize=3,
                        label="evaluation on held-out scenarios, IQM of the seeds' means (95% CI)")
        return
    train = history.dropna(subset=["episode_return"])
    if len(train):  # every episode faint, their trend strong
        ax.plot(train["env_steps"], train["episode_return"], ".", color="tab:blue", alpha=0.45, ms=5,
                label="training episodes (stochastic policy)")
        steps, trend, window = episode_trend(train["env_steps"].to_numpy(), train["episode_return"].to_numpy())
        how = f", then a {window}-point moving average" if window else ""
        ax.plot(steps, trend, "-" if window else ".-", color="tab:blue", lw=2, ms=6,
                label=f"training episodes, smoothed (mean of those ending together{how})")
    if "eval_return_mean" in history:
        ev = history.dropna(subset=["eval_return_mean"])
        if len(ev):
            mean, std = ev["eval_return_mean"].to_numpy(), ev["eval_return_std"].to_numpy()
            ax.fill_between(ev["env_steps"], mean - std, mean + std, color="tab:orange", alpha=0.2)
            ax.plot(ev["env_steps"], mean, "o-", color="tab:orange",
                    label="evaluation on held-out scenarios (deterministic, mean ± std)")


def _finish(ax, title: str, legend_size: int) -> None:
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=legend_size)


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


def compare_curves(histories: list[pd.DataFrame], labels: list[str], title: str) -> Figure:
    """Several runs' learning curves on one axis, a color a run: training return (smoothed where a run has many
    points) as a line, its periodic evaluations as markers joined by a dashed line; the runs named below."""
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(9, 5.5 + 0.22 * len(labels)), layout="constrained")
    ax = fig.add_subplot()
    handles = []
    for i, (history, label) in enumerate(zip(histories, labels)):
        color = f"C{i % 10}"
        if "episode_return" in history:
            train = history.dropna(subset=["episode_return"])
            steps, trend, _ = episode_trend(train["env_steps"].to_numpy(), train["episode_return"].to_numpy())
            ax.plot(steps, trend, color=color, lw=1.6)
        if "eval_return_mean" in history:
            ev = history.dropna(subset=["eval_return_mean"])
            ax.plot(ev["env_steps"], ev["eval_return_mean"], "o--", color=color, ms=5, lw=1)
        handles.append(Line2D([], [], color=color, lw=3, label=label))
    styles = [Line2D([], [], color="gray", lw=1.6, label="training episodes"),
              Line2D([], [], color="gray", ls="--", marker="o", ms=5, lw=1, label="evaluation (held-out scenarios)")]
    ax.legend(handles=styles, fontsize=8, loc="lower right")
    fig.legend(handles=handles, loc="outside lower center", fontsize=7, ncols=1)
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


def compare_eval_returns(episodes: list[pd.DataFrame], labels: list[str], title: str) -> Figure:
    """Each run's final evaluation: a box of its per-scenario returns with every scenario's return as a point."""
    import textwrap

    fig = Figure(figsize=(max(6, 1.8 * len(labels) + 2), 4.5), layout="constrained")
    ax = fig.add_subplot()
    data = [e["return"].to_numpy(np.float64) for e in episodes]
    ax.boxplot(data, showfliers=False, widths=0.5)
    rng = np.random.default_rng(0)  # the jitter only spreads the points sideways
    for i, values in enumerate(data):
        ax.plot(i + 1 + rng.uniform(-0.15, 0.15, len(values)), values, ".", color=f"C{i % 10}", alpha=0.6, ms=4)
        ax.plot([i + 1], [values.mean()], "D", color="black", ms=5, label="mean" if i == 0 else None)
    ax.set_xticks(np.arange(1, len(labels) + 1), ["\n".join(textwrap.wrap(label, 28)) for label in labels],
                  fontsize=7)
    ax.set_ylabel("episode return")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return fig
