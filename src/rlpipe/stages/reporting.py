"""Reporting stage: metrics for MLflow, plots, and an animation of the trained policy."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import pandas as pd
from kedro.pipeline import Node, Pipeline
from matplotlib.figure import Figure

from rlpipe.reporting import animation, plots
from rlpipe.reporting.metrics import metric_histories
from rlpipe.rl.acting import trajectory
from rlpipe.rl.envs import make_env, scenarios_to_batch
from rlpipe.rl.envs.scenarios import take
from rlpipe.rl.policies import jax_policy


def track_metrics(training_history: pd.DataFrame, eval_summary: dict[str, Any]) -> dict[str, list[dict]]:
    """Training and evaluation histories, stepped by env steps, for MLflow."""
    return metric_histories(training_history, eval_summary)


def plot_learning_curve(config: Any, training_history: pd.DataFrame) -> Figure:
    """Training return and periodic evaluations against env steps."""
    return plots.learning_curve(training_history, f"{config.env.id}: learning curve (seed {config.seed})")


def plot_eval_returns(config: Any, eval_episodes: pd.DataFrame) -> Figure:
    """Return of every held-out scenario."""
    return plots.eval_returns(eval_episodes, f"{config.env.id}: {len(eval_episodes)} held-out scenarios")


def animate_policy(config: Any, policy: dict[str, Any], scenarios_eval: pd.DataFrame) -> bytes:
    """A GIF of the deterministic policy on one eval scenario."""
    spec = make_env(config.env.id)
    batch = scenarios_to_batch(scenarios_eval, spec, "scenarios_eval")
    row = config.tracking.animation_scenario
    params, reset_key = take(batch, row)
    steps = int(params.max_steps_in_episode)
    run = jax.jit(lambda p, k: trajectory(spec, p, k, jax_policy(policy), steps))
    states, rewards, alive = jax.device_get(run(params, reset_key))
    length = int(np.sum(alive))
    states = {k: np.asarray(v)[: length + 1] for k, v in vars(states).items()}
    scenario_id = int(scenarios_eval["scenario_id"].iloc[row])
    return animation.episode_gif(config.env.id, states, np.asarray(rewards)[:length], params,
                                 f"{config.env.id} scenario {scenario_id}")


def reporting_pipeline() -> Pipeline:
    """The reporting nodes on un-namespaced names; an algorithm pipeline wraps them in its namespace."""
    return Pipeline([
        Node(track_metrics, ["training_history", "eval_summary"], "metrics", name="track_metrics"),
        Node(plot_learning_curve, ["config", "training_history"], "learning_curve", name="plot_learning_curve"),
        Node(plot_eval_returns, ["config", "eval_episodes"], "eval_returns_plot", name="plot_eval_returns"),
        Node(animate_policy, ["config", "policy", "scenarios_eval"], "policy_animation", name="animate_policy"),
    ])
