"""Stages every algorithm pipeline shares: scenario generation and deterministic evaluation of a policy bundle."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from kedro.pipeline import Node, Pipeline

from rlpipe.rl import parallel, policies
from rlpipe.rl.acting import make_evaluator
from rlpipe.rl.config import load_ppo_config, load_sac_config
from rlpipe.rl.envs import generate_scenarios as sample_scenarios
from rlpipe.rl.envs import make_env, max_episode_steps, scenarios_to_batch
from rlpipe.rl.evaluation import summarize_returns
from rlpipe.rl.policies import jax_policy

logger = logging.getLogger(__name__)


_LOADERS = {"sac": load_sac_config, "ppo": load_ppo_config}


def validated_config(algorithm: str, params: dict[str, Any]) -> Any:
    """``params:<algorithm>`` as a typed config; any bad key stops the run here, before any work."""
    config = _LOADERS[algorithm](params, parallel.device_count(), key=algorithm)
    logger.info("%s on %s, seed %d, %d env steps, %d device(s)", algorithm.upper(), config.env.id, config.seed,
                config.train.total_env_steps, parallel.device_count())
    return config


def generate_scenarios(config: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Disjoint training and evaluation scenario tables."""
    s = config.scenarios
    return sample_scenarios(make_env(config.env.id), s.ranges, s.num_train, s.num_eval, config.seed)


def exported_policy(config: Any, agent: dict[str, Any], meta: dict[str, Any], params: Any) -> dict[str, Any]:
    """A policy bundle (``rlpipe.rl.policies``) for the ``<algo>.policy`` entry: the algorithm's ``meta``, the
    registry name it is served under and the env steps it was trained for."""
    return {"meta": {**meta, "registered_model_name": config.tracking.registered_model_name,
                     "env_steps": int(agent["meta"]["env_steps"])}, "params": policies.bundle_params(params)}


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


def algorithm_pipeline(algorithm: str, load_config: Any, specific: list[Node]) -> Pipeline:
    """An algorithm's pipeline in namespace ``algorithm``: the shared head (config, scenarios), the algorithm's own
    nodes (which must produce ``policy`` and ``training_history``), the shared evaluation and reporting."""
    from rlpipe.stages.reporting import reporting_pipeline

    head = [
        Node(load_config, f"params:{algorithm}", "config", name="load_config"),
        Node(generate_scenarios, "config", ["scenarios_train", "scenarios_eval"], name="generate_scenarios"),
    ]
    tail = [Node(evaluate, ["config", "policy", "scenarios_eval"], ["eval_episodes", "eval_summary"], name="evaluate")]
    return Pipeline(Pipeline(head + specific + tail) + reporting_pipeline(), namespace=algorithm,
                    parameters={f"params:{algorithm}"}, prefix_datasets_with_namespace=True)
