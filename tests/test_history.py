"""Training histories at full resolution: the points a compiled chunk records inside against a run that wakes the
host after every iteration, evaluations on their regular grid, the history table, and the plots."""

import numpy as np
import pandas as pd
import pytest

from rlpipe.reporting import plots
from rlpipe.rl import mesh
from rlpipe.rl.training_run import history_table
from tests.conftest import TINY_SAC
from tests.support import train

METRICS = ("critic_loss", "actor_loss", "temperature", "entropy", "q_mean")


def run(points: int, log_every: int, evaluate: bool = False, **train_keys):
    raw = {**TINY_SAC, "train": {**TINY_SAC["train"], "log_every_env_steps": log_every,
                                 "history_points_per_log": points, **train_keys}}
    return train("sac", raw, evaluate=evaluate)[0]


@pytest.mark.slow
def test_points_recorded_inside_a_chunk_are_the_values_of_a_run_that_logs_every_iteration():
    every = run(points=0, log_every=4)  # 4 envs x 1 step: a chunk (and a host wake-up) per iteration
    inside = run(points=16, log_every=64)  # 16 iterations a chunk, every one recorded inside it
    coarse = run(points=4, log_every=64)  # 4 points a chunk: each the mean of 4 iterations
    per_iteration = pd.DataFrame(every.history)
    assert len(per_iteration) == 64 and not every.curve
    fine = pd.DataFrame(inside.curve)
    assert list(fine["env_steps"]) == list(per_iteration["env_steps"])  # 68, 72, ..., 320
    assert len(inside.history) == 4  # while the host woke 4 times
    for name in METRICS:
        np.testing.assert_allclose(fine[name], per_iteration[name], rtol=2e-6, err_msg=name)
    np.testing.assert_array_equal(fine["episodes"], per_iteration["episodes"])
    ended = per_iteration["episodes"] > 0
    np.testing.assert_allclose(fine["episode_return"][ended], per_iteration["episode_return"][ended], rtol=1e-6)
    assert fine["episode_return"][~ended].isna().all()  # no episode ended there: no return, not a zero
    means = per_iteration[list(METRICS)].to_numpy().reshape(16, 4, len(METRICS)).mean(axis=1)
    np.testing.assert_allclose(pd.DataFrame(coarse.curve)[list(METRICS)].to_numpy(), means, rtol=2e-6)
    assert list(pd.DataFrame(coarse.curve)["env_steps"]) == list(per_iteration["env_steps"])[3::4]
    for a, b in zip(mesh.host_copy(every.state["training"]).actor_params["params"]["MLP_0"].values(),
                    mesh.host_copy(inside.state["training"]).actor_params["params"]["MLP_0"].values()):
        np.testing.assert_array_equal(a["kernel"], b["kernel"])  # how the host wakes changes nothing trained


def test_evaluations_fall_on_their_grid_and_the_table_joins_points_and_chunks():
    # prefill 64, then 4 env steps an iteration; chunks of 60 env steps would cross 100, 200, 300 mid-chunk
    result = run(points=15, log_every=60, evaluate=True, eval_every_env_steps=100)
    evaluated = [r["env_steps"] for r in result.history if r["eval_return_mean"] == r["eval_return_mean"]]
    assert evaluated == [100, 200, 300, 320]  # the first iteration at or past each multiple, and the end
    table = history_table(result.history, result.curve)
    assert len(table) == len(result.curve) == (320 - 64) // 4
    assert table["env_steps"].is_unique and table["env_steps"].is_monotonic_increasing
    assert list(table.dropna(subset=["eval_return_mean"])["env_steps"]) == evaluated
    assert table["train_seconds"].notna().sum() == len(result.history)  # per-chunk columns on the chunks' rows


def test_the_learning_curve_has_smoothed_returns_evaluations_and_diagnostics():
    from tests.test_ppo import TINY_PPO

    raw = {**TINY_PPO, "train": {**TINY_PPO["train"], "num_steps": 8, "log_every_env_steps": 256,
                                 "history_points_per_log": 8}}  # 32 env steps an iteration: 8 points a chunk
    result, _ = train("ppo", raw)
    table = history_table(result.history, result.curve)
    assert len(table) == len(result.curve) == 1024 // 32 and table["episode_return"].notna().sum() > 10
    fig = plots.learning_curve(table, "CartPole-v1 · PPO · seed 5 · run x", ("value_loss", "policy_loss"),
                               ("approx_kl", "clip_fraction"))
    top = fig.axes[0]
    assert top.get_title() == "CartPole-v1 · PPO · seed 5 · run x"
    labels = [line.get_label() for line in top.get_lines()]
    assert "training episodes (stochastic policy)" in labels  # the raw points (faint)
    assert any(label.startswith("training episodes, smoothed") for label in labels)
    assert any(label.startswith("evaluation on held-out") for label in labels)
    lower = {line.get_label(): (ax, line) for ax in fig.axes[1:] for line in ax.get_lines()}
    assert set(lower) == {"value_loss", "policy_loss", "approx_kl", "clip_fraction"}
    assert lower["value_loss"][0] is not lower["policy_loss"][0]  # two losses of different scales: two axes
    assert len(lower["value_loss"][1].get_xdata()) == len(result.curve)  # every point of the history


@pytest.mark.parametrize("values,window,expected", [
    ([1.0, 2.0, 3.0, 4.0, 5.0], 3, [1.5, 2.0, 3.0, 4.0, 4.5]),
    ([1.0, np.nan, 3.0], 3, [1.0, 2.0, 3.0]),  # a missing point is skipped, not a zero
    ([2.0, 4.0], 1, [2.0, 4.0]),
])
def test_smoothing_by_hand(values, window, expected):
    np.testing.assert_allclose(plots.smooth(np.asarray(values), window), expected)
