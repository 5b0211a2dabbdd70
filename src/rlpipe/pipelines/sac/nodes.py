"""SAC pipeline nodes: unpack the config, call the library, return artifacts."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from kedro.io.core import generate_timestamp

from rlpipe.rl import parallel, policies
from rlpipe.rl.checkpoint import CheckpointManager
from rlpipe.rl.config import SACConfig, load_sac_config, parse, to_dict
from rlpipe.rl.envs import make_env, scenarios_to_batch
from rlpipe.rl.envs import generate_scenarios as sample_scenarios
from rlpipe.rl.evaluation import summarize_returns
from rlpipe.rl.sac import train as sac
from rlpipe.stages.monitoring import project_path, training_monitor

logger = logging.getLogger(__name__)


def load_config(params: dict[str, Any]) -> SACConfig:
    """Validate ``params:sac``; any bad key stops the run here, before any work."""
    config = load_sac_config(params, parallel.device_count())
    logger.info("SAC on %s, seed %d, %d env steps, %d device(s)", config.env.id, config.seed,
                config.train.total_env_steps, parallel.device_count())
    return config


def generate_scenarios(config: SACConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Disjoint training and evaluation scenario tables."""
    s = config.scenarios
    return sample_scenarios(make_env(config.env.id), s.ranges, s.num_train, s.num_eval, config.seed)


def init_agent(config: SACConfig) -> sac.TrainingState:
    """Fresh actor, twin critics, targets, optimizers and temperature."""
    return sac.init_training_state(config, make_env(config.env.id), sac.stage_key(config.seed, "init"))


def prefill_buffer(config: SACConfig, scenarios_train: pd.DataFrame) -> dict[str, np.ndarray]:
    """Transitions of uniformly random actions on training scenarios."""
    spec = make_env(config.env.id)
    batch = scenarios_to_batch(scenarios_train, spec, "sac.scenarios_train")
    return sac.collect_random(config, spec, batch, sac.stage_key(config.seed, "prefill"))


def train(config: SACConfig, initial_state: sac.TrainingState, replay_buffer: dict[str, np.ndarray],
          scenarios_train: pd.DataFrame, scenarios_eval: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame]:
    """Train to ``total_env_steps`` with periodic checkpoints and evaluations; the final full state is the agent."""
    spec = make_env(config.env.id)
    train_batch = scenarios_to_batch(scenarios_train, spec, "sac.scenarios_train")
    eval_batch = scenarios_to_batch(scenarios_eval, spec, "sac.scenarios_eval")
    meta = {"algorithm": "sac", "config": to_dict(config), "num_devices": parallel.device_count()}
    run_name = generate_timestamp()
    checkpoints = CheckpointManager(project_path(config.train.checkpoint_dir) / run_name, config.train.keep_checkpoints)

    def save_checkpoint(env_steps: int, state: dict[str, Any]) -> None:
        path = checkpoints.save(env_steps, state, meta)
        logger.info("checkpoint at %d env steps: %s", env_steps, path)

    with training_monitor("sac.train", config, run_name) as monitor:
        final, history = sac.train(config, spec, train_batch, initial_state, replay_buffer,
                                   sac.stage_key(config.seed, "train"), eval_scenarios=eval_batch,
                                   on_progress=monitor, on_checkpoint=save_checkpoint)
    meta["env_steps"] = int(history[-1]["env_steps"])
    return {"state": final, "meta": meta}, pd.DataFrame(history)


def export_policy(config: SACConfig, agent: dict[str, Any]) -> dict[str, Any]:
    """The deterministic policy alone, self-described, for serving (MLflow model) and inspection."""
    agent_config = parse(SACConfig, agent["meta"]["config"], "sac.agent.meta.config")
    return policies.bundle("sac", make_env(agent_config.env.id), agent_config.network.hidden_sizes,
                           agent_config.network.activation, agent["state"]["training"]["actor_params"],
                           registered_model_name=config.tracking.registered_model_name,
                           env_steps=agent["meta"]["env_steps"])


def evaluate(config: SACConfig, agent: dict[str, Any], scenarios_eval: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Every eval scenario once with the deterministic policy; per-scenario table and summary."""
    spec = make_env(config.env.id)
    batch = scenarios_to_batch(scenarios_eval, spec, "sac.scenarios_eval")
    agent_config = parse(SACConfig, agent["meta"]["config"], "sac.agent.meta.config")
    max_steps = int(np.max(batch.params.max_steps_in_episode))
    returns, lengths = sac.evaluate_policy(agent_config, spec, batch, agent["state"]["training"]["actor_params"],
                                           max_steps)
    episodes = pd.DataFrame({"scenario_id": scenarios_eval["scenario_id"].to_numpy(), "return": returns,
                             "length": lengths})
    summary = {**summarize_returns(returns, lengths), "env_id": config.env.id,
               "agent_env_steps": int(agent["meta"].get("env_steps", -1))}
    logger.info("evaluation on %d held-out scenarios: mean return %.1f +- %.1f (min %.1f, max %.1f)",
                summary["num_episodes"], summary["return_mean"], summary["return_std"], summary["return_min"],
                summary["return_max"])
    return episodes, summary


