"""Stages every algorithm pipeline shares: scenario generation and deterministic evaluation of a policy bundle."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from rlpipe.rl.acting import make_evaluator
from rlpipe.rl.envs import generate_scenarios as sample_scenarios
from rlpipe.rl.envs import make_env, max_episode_steps, scenarios_to_batch
from rlpipe.rl.evaluation import summarize_returns
from rlpipe.rl.policies import jax_policy

logger = logging.getLogger(__name__)


def generate_scenarios(config: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Disjoint training and evaluation scenario tables."""
    s = config.scenarios
    return sample_scenarios(make_env(config.env.id), s.ranges, s.num_train, s.num_eval, config.seed)


def evaluate(config: Any, policy: dict[str, Any], scenarios_eval: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Every eval scenario once with the deterministic policy; per-scenario table and summary."""
    spec = make_env(config.env.id)
    batch = scenarios_to_batch(scenarios_eval, spec, "scenarios_eval")
    evaluator = make_evaluator(spec, lambda params: jax_policy({"meta": policy["meta"], "params": params}),
                               max_episode_steps(batch))
    returns, lengths = evaluator(policy["params"], batch)
    episodes = pd.DataFrame({"scenario_id": scenarios_eval["scenario_id"].to_numpy(), "return": returns,
                             "length": lengths})
    summary = {**summarize_returns(returns, lengths), "env_id": config.env.id,
               "algorithm": policy["meta"]["algorithm"], "agent_env_steps": int(policy["meta"].get("env_steps", -1))}
    logger.info("evaluation on %d held-out scenarios: mean return %.1f +- %.1f (min %.1f, max %.1f)",
                summary["num_episodes"], summary["return_mean"], summary["return_std"], summary["return_min"],
                summary["return_max"])
    return episodes, summary
