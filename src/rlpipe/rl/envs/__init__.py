"""Environments: the registry (JAX envs, Gymnasium envs on the host, Brax) and the scenarios that parameterize them."""

from rlpipe.rl.envs.registry import EnvSpec, check_env_id, env_spec, make_env
from rlpipe.rl.envs.scenarios import (
    ScenarioBatch,
    ScenarioError,
    check_scenario_ranges,
    generate_scenarios,
    max_episode_steps,
    scenarios_to_batch,
)

__all__ = [
    "EnvSpec", "ScenarioBatch", "ScenarioError", "check_env_id", "env_spec", "check_scenario_ranges", "generate_scenarios",
    "make_env", "max_episode_steps", "scenarios_to_batch",
]
