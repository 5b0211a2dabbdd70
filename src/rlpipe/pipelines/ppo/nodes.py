"""PPO pipeline nodes: unpack the config, call the library, return artifacts."""

from __future__ import annotations

from typing import Any

import pandas as pd
from flax import serialization

from rlpipe.rl.config import PPOConfig, parse
from rlpipe.rl.envs import make_env
from rlpipe.rl.ppo import train as ppo
from rlpipe.stages import common
from rlpipe.stages.monitoring import monitored_training


def load_config(params: dict[str, Any]) -> PPOConfig:
    """Validate ``params:ppo``; any bad key stops the run here, before any work."""
    return common.validated_config("ppo", params)


def init_agent(config: PPOConfig) -> ppo.TrainingState:
    """Fresh actor-critic, optimizer and observation statistics."""
    return ppo.init_training_state(config, make_env(config.env.id), ppo.stage_key(config.seed, "init"))


def train(config: PPOConfig, initial_state: ppo.TrainingState, scenarios_train: pd.DataFrame,
          scenarios_eval: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame]:
    """Train until the budget is spent or early stopping fires, with periodic checkpoints and evaluations."""
    return monitored_training("ppo", config, ppo.train, scenarios_train, scenarios_eval, initial_state)


def export_policy(config: PPOConfig, agent: dict[str, Any]) -> dict[str, Any]:
    """The deterministic policy (argmax or Gaussian mean, with its observation statistics), self-described."""
    agent_config = parse(PPOConfig, agent["meta"]["config"], "ppo.agent.meta.config")
    spec = make_env(agent_config.env.id)
    training = serialization.to_state_dict(agent["state"]["training"])  # as loaded (dicts) or in memory (dataclass)
    params = {"network": training["params"], "obs_norm": {k: training["obs_norm"][k] for k in ("mean", "var")}}
    return common.exported_policy(config, agent, ppo.policy_meta(agent_config, spec), params)
