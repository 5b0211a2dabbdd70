"""Stages every algorithm pipeline shares: config, scenarios, initial state, policy export and evaluation.

The algorithm is found through the registry (by name, or by its config's class): nothing here names one.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from kedro.pipeline import Node, Pipeline

from rlpipe.rl import algorithm as algorithms
from rlpipe.rl import mesh, policies
from rlpipe.rl.config import parse
from rlpipe.rl.envs import generate_scenarios as sample_scenarios
from rlpipe.rl.envs import make_env
from rlpipe.rl.evaluation import summarize_returns
from rlpipe.rl.keys import stage_key

logger = logging.getLogger(__name__)


def validated_config(algorithm: str, params: dict[str, Any]) -> Any:
    """``params:<algorithm>`` as a typed config; any bad key stops the run here, before any work."""
    config = algorithms.load_config(algorithm, params, mesh.device_count())
    logger.info("%s on %s, seed %d, %d env steps, %d device(s) in %d process(es)", algorithm.upper(), config.env.id,
                config.seed, config.train.total_env_steps, mesh.device_count(), mesh.process_count())
    return config


def generate_scenarios(config: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Disjoint training and evaluation scenario tables."""
    s = config.scenarios
    return sample_scenarios(make_env(config.env.id), s.ranges, s.num_train, s.num_eval, config.seed)


def init_agent(config: Any) -> Any:
    """The algorithm's fresh training state: networks, optimizers, counters."""
    algorithm = algorithms.for_config(config)
    return algorithm.init_training_state(config, make_env(config.env.id), stage_key(config.seed, "init"))


def export_policy(config: Any, agent: Any) -> dict[str, Any]:
    """The deterministic policy alone, self-described (``rlpipe.rl.policies``), for evaluation, serving (MLflow
    model) and inspection. Reads only the agent's training state, never its buffers."""
    meta = agent["meta"]
    algorithm = algorithms.get(meta["algorithm"])
    agent_config = parse(algorithm.config_class, meta["config"], f"{algorithm.name}.agent.meta.config")
    training = agent.part("training") if hasattr(agent, "part") else agent["state"]["training"]
    policy_meta = algorithm.policy_meta(agent_config, make_env(agent_config.env.id))
    return {"meta": {**policy_meta, "registered_model_name": config.tracking.registered_model_name,
                     "env_steps": int(meta["env_steps"])},
            "params": policies.bundle_params(algorithm.policy_params(training))}


def evaluate(config: Any, policy: dict[str, Any], scenarios_eval: pd.DataFrame,
             final_evaluation: dict[str, Any]) -> tuple[pd.DataFrame, dict]:
    """Every eval scenario once with the deterministic policy: per-scenario table and summary.

    The episodes were run at the end of training by the same compiled program the policy bundle builds
    (``final_evaluation``), so they are not run twice; this stage checks they belong to this policy and tabulates.
    """
    returns, lengths = final_evaluation["returns"], final_evaluation["lengths"]
    if len(returns) != len(scenarios_eval):
        raise ValueError(f"the final evaluation has {len(returns)} episodes but scenarios_eval {len(scenarios_eval)}")
    episodes = pd.DataFrame({"scenario_id": scenarios_eval["scenario_id"].to_numpy(), "return": returns,
                             "length": lengths})
    summary = {**summarize_returns(returns, lengths), "env_id": config.env.id,
               "algorithm": policy["meta"]["algorithm"], "agent_env_steps": int(policy["meta"].get("env_steps", -1))}
    logger.info("evaluation on %d held-out scenarios: mean return %.1f +- %.1f (min %.1f, max %.1f)",
                summary["num_episodes"], summary["return_mean"], summary["return_std"], summary["return_min"],
                summary["return_max"])
    return episodes, summary


def algorithm_pipeline(algorithm: str, specific: list[Node]) -> Pipeline:
    """An algorithm's pipeline in namespace ``algorithm``: the shared head (config, scenarios, initial state), the
    algorithm's own nodes (which must produce ``agent``, ``training_history`` and ``final_evaluation``), the shared
    export, evaluation and reporting."""
    from rlpipe.stages.reporting import reporting_pipeline

    def load_config(params: dict[str, Any]) -> Any:
        """Validate the algorithm's parameters; any bad key stops the run here, before any work."""
        return validated_config(algorithm, params)

    head = [
        Node(load_config, f"params:{algorithm}", "config", name="load_config"),
        Node(generate_scenarios, "config", ["scenarios_train", "scenarios_eval"], name="generate_scenarios"),
        Node(init_agent, "config", "initial_state", name="init_agent"),
    ]
    tail = [
        Node(export_policy, ["config", "agent"], "policy", name="export_policy"),
        Node(evaluate, ["config", "policy", "scenarios_eval", "final_evaluation"], ["eval_episodes", "eval_summary"],
             name="evaluate"),
    ]
    return Pipeline(Pipeline(head + specific + tail) + reporting_pipeline(), namespace=algorithm,
                    parameters={f"params:{algorithm}"}, prefix_datasets_with_namespace=True)
