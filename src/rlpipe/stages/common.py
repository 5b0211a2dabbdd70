"""Stages every algorithm pipeline shares: config, scenarios, initial state, policy export and evaluation.

The algorithm is found through the registry (by name, or by its config's class): nothing here names one.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from kedro.pipeline import Node, Pipeline

from rlpipe.rl import algorithm as algorithms
from rlpipe.rl import mesh, policies
from rlpipe.rl.config import parse, registration_target
from rlpipe.rl.errors import ConfigError
from rlpipe.rl.envs import generate_scenarios as sample_scenarios
from rlpipe.rl.envs import env_spec
from rlpipe.rl.evaluation import summarize_returns
from rlpipe.rl.keys import stage_key
from rlpipe.rl.training import inherit

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
    return sample_scenarios(env_spec(config.env), s.ranges, s.num_train, s.num_eval, config.seed)


def init_agent(config: Any, agent_store: Any) -> tuple[Any, dict[str, Any]]:
    """The algorithm's fresh training state (networks, optimizers, counters), or with ``train.init_from`` one that
    starts from a stored agent's parameters (and, if asked, its optimizer state); and the run's lineage: the
    parent agent's version, or an empty dict."""
    algorithm = algorithms.for_config(config)
    spec = env_spec(config.env)
    fresh = algorithm.init_training_state(config, spec, stage_key(config.seed, "init"))
    t = config.train
    if t.init_from is None:
        return fresh, {}
    key = f"{algorithm.name}.train.init_from"
    parent, version = agent_store.open(t.init_from, key)
    parent_algorithm = parent["meta"].get("algorithm")
    if parent_algorithm != algorithm.name:
        raise ConfigError(key, f"{version!r} is a {parent_algorithm} agent; a {algorithm.name} run starts only from "
                               f"a {algorithm.name} agent")
    training = inherit(algorithm, fresh, parent.part("training"), optimizer=t.init_from_optimizer, key=key)
    lineage = {"parent_algorithm": parent_algorithm, "parent_version": version,
               "parent_env_steps": int(parent["meta"]["env_steps"]), "optimizer": t.init_from_optimizer,
               "buffer": t.init_from_buffer}
    logger.info("%s starts from stored agent %s (%d env steps): parameters%s%s", algorithm.name, version,
                lineage["parent_env_steps"], ", optimizer state" if t.init_from_optimizer else "",
                ", replay buffer" if t.init_from_buffer else "")
    return training, lineage


def policy_of_agent(agent: Any, key: str) -> tuple[dict[str, Any], Any]:
    """A stored agent's deterministic policy bundle (built from its own config; the replay buffer is not read)
    and that config. ``key`` names the agent entry in errors."""
    meta = agent["meta"]
    algorithm = algorithms.get(meta["algorithm"])
    agent_config = parse(algorithm.config_class, meta["config"], f"{key}.meta.config")
    training = agent.part("training") if hasattr(agent, "part") else agent["state"]["training"]
    policy_meta = algorithm.policy_meta(agent_config, env_spec(agent_config.env))
    return {"meta": {**policy_meta, "env_steps": int(meta["env_steps"])},
            "params": policies.bundle_params(algorithm.policy_params(training))}, agent_config


def export_policy(config: Any, agent: Any) -> dict[str, Any]:
    """The deterministic policy alone, self-described (``rlpipe.rl.policies``), for evaluation, serving (MLflow
    model) and inspection. Reads only the agent's training state, never its buffers."""
    policy, _ = policy_of_agent(agent, f"{algorithms.for_config(config).name}.agent")
    policy["meta"].update(registered_model_name=config.tracking.registered_model_name,
                          register=config.tracking.register, target_return=registration_target(config))
    return policy


def tabulate_evaluation(returns: Any, lengths: Any, scenarios_eval: pd.DataFrame, env_id: str,
                        policy: dict[str, Any], metrics: dict[str, Any] | None = None) -> tuple[pd.DataFrame, dict]:
    """Per-scenario table and summary of one deterministic episode per eval scenario. The env's own metrics
    (``env.metrics``: per scenario the episode mean ``<name>`` and last value ``<name>_final``) become columns
    ``env.<key>`` and, averaged over the scenarios (a rate, for booleans), summary entries of the same names."""
    if len(returns) != len(scenarios_eval):
        raise ValueError(f"the evaluation has {len(returns)} episodes but scenarios_eval {len(scenarios_eval)}")
    episodes = pd.DataFrame({"scenario_id": scenarios_eval["scenario_id"].to_numpy(), "return": returns,
                             "length": lengths})
    summary = {**summarize_returns(returns, lengths), "env_id": env_id,
               "algorithm": policy["meta"]["algorithm"], "agent_env_steps": int(policy["meta"].get("env_steps", -1))}
    for name, values in (metrics or {}).items():
        episodes[f"env.{name}"] = np.asarray(values, np.float64)
        summary[f"env.{name}"] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    logger.info("evaluation on %d held-out scenarios: mean return %.1f +- %.1f (min %.1f, max %.1f)%s",
                summary["num_episodes"], summary["return_mean"], summary["return_std"], summary["return_min"],
                summary["return_max"], "".join(f", {k} {summary[k]:.3g}" for k in summary if k.startswith("env.")))
    return episodes, summary


def evaluate(config: Any, policy: dict[str, Any], scenarios_eval: pd.DataFrame,
             final_evaluation: dict[str, Any]) -> tuple[pd.DataFrame, dict]:
    """Every eval scenario once with the deterministic policy: per-scenario table and summary.

    The episodes were run at the end of training by the same compiled program the policy bundle builds
    (``final_evaluation``), so they are not run twice; this stage checks they belong to this policy and tabulates.
    """
    episodes, summary = tabulate_evaluation(final_evaluation["returns"], final_evaluation["lengths"], scenarios_eval,
                                            config.env.id, policy, final_evaluation.get("metrics"))
    target = registration_target(config)
    if target is not None:
        summary.update(target_return=target, target_met=bool(summary["return_mean"] >= target))
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
        Node(init_agent, ["config", "agent_store"], ["initial_state", "lineage"], name="init_agent"),
    ]
    tail = [
        Node(export_policy, ["config", "agent"], "policy", name="export_policy"),
        Node(evaluate, ["config", "policy", "scenarios_eval", "final_evaluation"], ["eval_episodes", "eval_summary"],
             name="evaluate"),
    ]
    return Pipeline(Pipeline(head + specific + tail) + reporting_pipeline(), namespace=algorithm,
                    parameters={f"params:{algorithm}"}, prefix_datasets_with_namespace=True)
