"""Evaluate (and film) any stored agent: the ``<algo>_eval`` pipelines.

``kedro run --pipelines=sac_eval`` evaluates the newest ``sac.agent``; ``--load-versions sac.agent:<version>``
any other. The ``evaluation`` parameters choose the scenarios: the agent's own held-out eval scenarios
(regenerated exactly from its config: the same table its training run evaluated) or fresh ones.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from kedro.pipeline import Node, Pipeline

from rlpipe.rl.agents import policy_of_agent
from rlpipe.rl.config import EvaluationConfig, parse
from rlpipe.rl.errors import ConfigError
from rlpipe.rl.eval_tables import eval_scenarios, evaluate_policy, scenarios_seed

logger = logging.getLogger(__name__)


def load_agent(algorithm: str, agent: Any, evaluation: dict[str, Any] | None = None
               ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The stored agent's config, its deterministic policy (of a multi-seed agent: ``evaluation.seed_index``'s,
    by default the best seed's), and what identifies it (version, env steps)."""
    e = parse(EvaluationConfig, evaluation, "evaluation")
    meta = agent["meta"]
    if meta.get("algorithm") != algorithm:
        raise ConfigError(f"{algorithm}.agent", f"the loaded agent ({agent.path}) is a {meta.get('algorithm')} agent; "
                                                f"--pipelines={algorithm}_eval evaluates {algorithm} agents")
    policy, config = policy_of_agent(agent, f"{algorithm}.agent", e.seed_index)
    version = agent.path.parent.name
    seed = int(policy["meta"].get("seed", config.seed))
    info = {"algorithm": algorithm, "agent_version": version, "agent_env_steps": int(meta["env_steps"]),
            "env_id": config.env.id, "seed": seed, **({"parent": meta["parent"]} if "parent" in meta else {}),
            **({"seed_index": policy["meta"]["seed_index"]} if "seed_index" in policy["meta"] else {})}
    logger.info("%s agent %s (%d env steps, %s, seed %d)", algorithm.upper(), version, info["agent_env_steps"],
                config.env.id, seed)
    return config, policy, info


def evaluate_agent(config: Any, agent_policy: dict[str, Any], agent_info: dict[str, Any],
                   scenarios_eval: pd.DataFrame, evaluation: dict[str, Any]) -> tuple[pd.DataFrame, dict]:
    """Every scenario once with the stored agent's deterministic policy (the program training's final evaluation
    ran: on the agent's own scenarios the summary is that of its training run, exactly)."""
    e = parse(EvaluationConfig, evaluation, "evaluation")
    episodes, summary = evaluate_policy(config, agent_policy, scenarios_eval,
                                        f"{agent_info['algorithm']}_eval.scenarios_eval")
    summary.update(agent_version=agent_info["agent_version"], scenarios=e.scenarios,
                   scenarios_seed=scenarios_seed(config, e))
    return episodes, summary


def film_agent(config: Any, agent_policy: dict[str, Any], agent_info: dict[str, Any], scenarios_eval: pd.DataFrame,
               evaluation: dict[str, Any]) -> dict[str, bytes]:
    """The episode of ``evaluation.animation_scenario``: ``episode.gif``, and ``episode.mp4`` when an ffmpeg is
    at hand; nothing with ``evaluation.animation: false``."""
    from rlpipe.pipelines.reports import film

    e = parse(EvaluationConfig, evaluation, "evaluation")
    if not e.animation:
        return {}
    row = e.animation_scenario
    scenario_id = int(scenarios_eval["scenario_id"].iloc[row])
    title = f"{config.env.id} scenario {scenario_id}, agent {agent_info['agent_version'][:19]}"
    media = film(config.env, agent_policy, scenarios_eval, row, title, mp4=True)
    return {f"episode.{kind}": data for kind, data in media.items()}


def evaluation_pipeline(algorithm: str) -> Pipeline:
    """``<algorithm>_eval``: a stored ``<algorithm>.agent`` evaluated on its own or fresh scenarios, with its own
    versioned tables, plot and film."""
    from rlpipe.pipelines.reports import plot_eval_returns

    def load(agent: Any, evaluation: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """The stored agent's config, deterministic policy and identity (version, env steps)."""
        return load_agent(algorithm, agent, evaluation)

    nodes = [
        Node(load, ["agent", "params:evaluation"], ["config", "agent_policy", "agent_info"], name="load_agent"),
        Node(eval_scenarios, ["config", "params:evaluation"], "scenarios_eval", name="eval_scenarios"),
        Node(evaluate_agent, ["config", "agent_policy", "agent_info", "scenarios_eval", "params:evaluation"],
             ["eval_episodes", "eval_summary"], name="evaluate"),
        Node(plot_eval_returns, ["config", "eval_episodes"], "eval_returns_plot", name="plot_eval_returns"),
        Node(film_agent, ["config", "agent_policy", "agent_info", "scenarios_eval", "params:evaluation"], "videos",
             name="film_agent"),
    ]
    return Pipeline(nodes, namespace=f"{algorithm}_eval", inputs={"agent": f"{algorithm}.agent"},
                    parameters={"params:evaluation"}, prefix_datasets_with_namespace=True)
