"""SAC pipeline nodes: unpack the config, call the library, return artifacts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from flax import serialization

from rlpipe.rl.config import SACConfig, parse
from rlpipe.rl.envs import make_env, scenarios_to_batch
from rlpipe.rl.sac import train as sac
from rlpipe.stages import common
from rlpipe.stages.monitoring import monitored_training


def load_config(params: dict[str, Any]) -> SACConfig:
    """Validate ``params:sac``; any bad key stops the run here, before any work."""
    return common.validated_config("sac", params)


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
    return monitored_training("sac", config, sac.train, scenarios_train, scenarios_eval, initial_state, replay_buffer)


def export_policy(config: SACConfig, agent: dict[str, Any]) -> dict[str, Any]:
    """The deterministic policy alone, self-described, for evaluation, serving (MLflow model) and inspection."""
    agent_config = parse(SACConfig, agent["meta"]["config"], "sac.agent.meta.config")
    training = serialization.to_state_dict(agent["state"]["training"])  # as loaded (dicts) or in memory (dataclass)
    meta = sac.policy_meta(agent_config, make_env(agent_config.env.id))
    return common.exported_policy(config, agent, meta, training["actor_params"])
