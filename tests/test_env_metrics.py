"""Env metrics against values computed by hand: an env whose metric's per-step values are known in advance
(``tests.metric_envs:Countdown``) gives each episode's mean and last value, and the training history's evaluation
columns are their mean over the evaluation scenarios."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from rlpipe.rl.acting import make_evaluator
from rlpipe.rl.envs import generate_scenarios, make_env, scenarios_to_batch
from tests.support import train

ENV_ID = "tests.metric_envs:Countdown"


def by_hand(stop_at: np.ndarray, max_steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per scenario: the episode's length, the mean of elapsed^2 over its steps, and its last value."""
    lengths = np.minimum(np.ceil(stop_at), max_steps).astype(np.int64)
    means = np.array([np.mean(np.arange(1, n + 1, dtype=np.float64) ** 2) for n in lengths])
    return lengths, means, lengths.astype(np.float64) ** 2


def test_episode_mean_and_last_value_of_an_env_metric_are_the_hand_computed_ones():
    spec = make_env(ENV_ID)
    table, _ = generate_scenarios(spec, {"stop_at": (1.5, 12.0)}, 6, 1, seed=4)
    table["max_steps_in_episode"] = [3, 8, 8, 12, 12, 5]  # some episodes end truncated, some terminated
    lengths, means, finals = by_hand(table["stop_at"].to_numpy(), table["max_steps_in_episode"].to_numpy())
    assert len(set(lengths.tolist())) >= 3  # episodes of several lengths
    evaluator = make_evaluator(spec, lambda p: (lambda obs: jnp.zeros((obs.shape[0], 1))), 12,
                               ("elapsed_squared",))
    returns, episode_lengths = evaluator(None, scenarios_to_batch(table, spec, "t"))
    np.testing.assert_array_equal(episode_lengths, lengths)
    np.testing.assert_allclose(returns, -lengths, rtol=1e-6)
    np.testing.assert_allclose(evaluator.last_metrics["elapsed_squared"], means, rtol=1e-6)
    np.testing.assert_allclose(evaluator.last_metrics["elapsed_squared_final"], finals, rtol=1e-6)


def test_training_history_reports_the_mean_over_eval_scenarios_of_the_hand_computed_values():
    raw = {"seed": 6, "env": {"id": ENV_ID, "metrics": ["elapsed_squared"]},
           "scenarios": {"num_train": 4, "num_eval": 4, "ranges": {"stop_at": [1.5, 12.0]}},
           "network": {"hidden_sizes": [8]},
           "train": {"total_env_steps": 160, "num_envs": 4, "num_steps": 10, "update_epochs": 1, "num_minibatches": 2,
                     "log_every_env_steps": 80, "eval_every_env_steps": 80, "checkpoint_every_env_steps": 160},
           "early_stopping": {"target_return": None}}
    result, cfg = train("ppo", raw)
    _, eval_table = generate_scenarios(make_env(ENV_ID), {"stop_at": (1.5, 12.0)}, 4, 4, seed=6)
    lengths, means, finals = by_hand(eval_table["stop_at"].to_numpy(),
                                     eval_table["max_steps_in_episode"].to_numpy())
    final = result.final_evaluation
    np.testing.assert_array_equal(final["lengths"], lengths)
    np.testing.assert_allclose(final["metrics"]["elapsed_squared"], means, rtol=1e-6)
    np.testing.assert_allclose(final["metrics"]["elapsed_squared_final"], finals, rtol=1e-6)
    evaluated = [r for r in result.history if not math.isnan(r["eval_return_mean"])]
    assert len(evaluated) == 2  # at 80 and at 160 env steps: the policy does not matter, the values do not change
    for row in evaluated:
        assert row["eval_env.elapsed_squared"] == pytest.approx(means.mean(), rel=1e-6)
        assert row["eval_env.elapsed_squared_final"] == pytest.approx(finals.mean(), rel=1e-6)
