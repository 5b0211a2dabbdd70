"""Learning curves a reader can trust: a row per finished training episode (its own return, recorded inside the
compiled chunk), and the default SAC run evaluated often enough to show its trend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rlpipe.reporting import plots
from rlpipe.rl import loop, run
from rlpipe.rl.algorithm import for_config
from rlpipe.rl.schedule import plan
from rlpipe.rl.training_run import history_table
from tests.support import train

DEFAULT_SAC = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf/base/parameters_sac.yml").read_text())["sac"]


def _episodes_and_points(result) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.DataFrame(result.episodes, columns=list(loop.EPISODE_ROW)), pd.DataFrame(result.curve)


def test_every_finished_episode_is_a_row_with_its_own_return():
    from tests.test_ppo import TINY_PPO  # CartPole: episodes of every length, several per env in an iteration

    result, _ = train("ppo", TINY_PPO)
    episodes, points = _episodes_and_points(result)
    chunks = pd.DataFrame(result.history)
    assert len(episodes) == chunks["episodes"].sum() == points["episodes"].sum() > 20
    # each chunk's mean return, as the chunk summed it, is the mean of its episodes' rows
    bounds = [0, *chunks["env_steps"]]
    for (start, end), row in zip(zip(bounds, bounds[1:]), chunks.itertuples()):
        own = episodes[(episodes["env_steps"] > start) & (episodes["env_steps"] <= end)]
        assert len(own) == row.episodes
        np.testing.assert_allclose(own["episode_return"].mean(), row.episode_return, rtol=1e-5)
    # CartPole pays 1 a step: a return is the episode's length, whole, at most the time limit
    assert np.all(episodes["episode_return"] == np.round(episodes["episode_return"]))
    assert episodes["episode_return"].between(1, 500).all() and episodes["env_steps"].is_monotonic_increasing
    table = history_table(result.history, result.curve, result.episodes)
    assert len(table) == len(points) + len(episodes)
    # the table's returns are the episodes' own, not also the points' means of them
    assert table["episode_return"].notna().sum() == len(episodes)
    assert table.dropna(subset=["grad_steps"])["env_steps"].is_unique  # one row per point, as before

    fig = plots.learning_curve(table, "CartPole-v1 · PPO")
    dots = next(line for line in fig.axes[0].get_lines() if line.get_label().startswith("training episodes ("))
    assert len(dots.get_xdata()) == len(episodes)


def test_the_default_sac_run_is_evaluated_at_least_ten_times_on_its_grid():
    config = run.validated_config("sac", DEFAULT_SAC)
    schedule = plan(for_config(config), config)
    state = {"iterations": 0}

    def chunk(state, n):  # the loop's view of a chunk: how many iterations, and what they report
        return {"iterations": state["iterations"] + n}, {"episodes": 0.0, "episode_return": 0.0}

    _, history, _, _, _ = loop.run(schedule, state, chunk, evaluate=lambda state: (np.zeros(4), np.zeros(4)))
    evaluated = [row["env_steps"] for row in history if np.isfinite(row["eval_return_mean"])]
    assert len(evaluated) >= 10 and evaluated[-1] == config.train.total_env_steps
    assert np.diff(evaluated).max() <= config.train.total_env_steps / 10  # spread over the run, not bunched


@pytest.mark.slow
def test_the_default_sac_curve_has_a_point_per_finished_episode():
    # the default config cut to 3,000 env steps: 1,000 random prefill steps, then 250 iterations of 8 envs;
    # Pendulum's 200-step episodes, started together, all end at 2,600 env steps
    raw = {**DEFAULT_SAC, "train": {**DEFAULT_SAC["train"], "total_env_steps": 3000}}
    result, _ = train("sac", raw)
    episodes, _ = _episodes_and_points(result)
    assert list(episodes["env_steps"]) == [2600] * 8
    assert pd.DataFrame(result.history)["episodes"].sum() == 8
    np.testing.assert_allclose(episodes["episode_return"].mean(),
                               next(r["episode_return"] for r in result.history if r["episodes"]), rtol=1e-5)
    assert episodes["episode_return"].nunique() == 8  # each env's own episode, not their mean eight times
