"""Demonstrations as catalog artifacts: ``record_demonstrations`` rolls a stored agent's deterministic policy out and
writes ``demonstrations`` (one row per step, the source agent's version in its metadata); ``ppo_imitation`` reads a
version of it (checked against its own env) for adversarial imitation. Both pipelines are wired here; which
algorithms have them is declared in ``rlpipe.pipelines.declared``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from kedro.pipeline import Node, Pipeline

from rlpipe.pipelines.training import algorithm_pipeline, train_node
from rlpipe.rl.config import DemonstrationsConfig, parse
from rlpipe.rl.errors import ConfigError

logger = logging.getLogger(__name__)


def load_expert(algorithm: str, agent: Any, settings: dict[str, Any] | None) -> tuple[Any, dict, dict]:
    """The stored agent's config, deterministic policy (a multi-seed agent's ``demonstrations.seed_index``, by
    default its best seed's) and identity (version, env steps), as the evaluation pipelines load it."""
    from rlpipe.pipelines.evaluation import load_agent

    d = parse(DemonstrationsConfig, settings, "demonstrations")
    config, policy, agent_info = load_agent(algorithm, agent, {"seed_index": d.seed_index})
    info = {"source_algorithm": algorithm, "source_version": agent_info["agent_version"],
            "source_env_steps": agent_info["agent_env_steps"], "env_id": config.env.id}
    return config, policy, info


def demonstration_scenarios(config: Any, settings: dict[str, Any] | None) -> pd.DataFrame:
    """``demonstrations.num_episodes`` scenarios drawn like the agent's own (its ``scenarios.ranges``) from
    ``demonstrations.seed`` (default: the agent's scenario seed + 2), sharing no reset seed with the agent's
    training or evaluation scenarios (an imitator with the same seed is never evaluated on a demonstrated episode)."""
    from rlpipe.rl.envs import env_spec
    from rlpipe.rl.envs import generate_scenarios as sample_scenarios
    from rlpipe.rl.keys import scenario_seed
    from rlpipe.rl.eval_tables import without_reset_seeds

    d = parse(DemonstrationsConfig, settings, "demonstrations")
    s = config.scenarios
    spec = env_spec(config.env)
    train, held_out = sample_scenarios(spec, s.ranges, s.num_train, s.num_eval, scenario_seed(config))
    taken = set(train["reset_seed"]) | set(held_out["reset_seed"])
    seed = scenario_seed(config) + 2 if d.seed is None else d.seed
    _, table = sample_scenarios(spec, s.ranges, 1, d.num_episodes + len(taken), seed)
    return without_reset_seeds(table, taken, d.num_episodes)


def record_demonstrations(config: Any, policy: dict[str, Any], info: dict[str, Any], scenarios: pd.DataFrame,
                          settings: dict[str, Any] | None) -> pd.DataFrame:
    """One deterministic episode of the policy per scenario, a row per step: ``scenario_id``, ``step``,
    ``observation``, ``next_observation`` (raw env observations), ``action`` (what the env received), ``reward``,
    ``terminated``. Where it came from (source algorithm, version, env) is in ``table.attrs["rlpipe"]``, which the
    catalog entry keeps in the Parquet file's metadata."""
    import jax

    from rlpipe.rl.acting import record
    from rlpipe.rl.envs import env_spec, max_episode_steps, scenarios_to_batch
    from rlpipe.rl.policies import jax_policy

    d = parse(DemonstrationsConfig, settings, "demonstrations")
    spec = env_spec(config.env)
    if spec.host is not None:
        raise ConfigError("demonstrations", f"{config.env.id} is stepped on the host: recording needs a JAX env")
    batch = scenarios_to_batch(scenarios, spec, "demonstrations.scenarios")
    steps = max_episode_steps(batch) if d.max_steps is None else min(d.max_steps, max_episode_steps(batch))
    act = jax_policy(policy)
    out = jax.device_get(jax.jit(lambda b: record(spec, b, act, steps))(batch))
    alive = np.asarray(out["alive"]) > 0  # [steps, scenarios]
    step_index, column = np.nonzero(alive)
    order = np.lexsort((step_index, column))  # scenario by scenario, steps in order
    step_index, column = step_index[order], column[order]
    rows = lambda name: np.asarray(out[name])[step_index, column]  # noqa: E731
    obs, next_obs, action = rows("observation"), rows("next_observation"), rows("action")
    table = pd.DataFrame({
        "scenario_id": scenarios["scenario_id"].to_numpy()[column].astype(np.int64),
        "step": step_index.astype(np.int64),
        "observation": list(obs.astype(np.float32)),
        "next_observation": list(next_obs.astype(np.float32)),
        "action": list(np.asarray(action, np.float32).reshape(len(step_index), -1)),
        "reward": rows("reward").astype(np.float64),
        "terminated": rows("terminated").astype(bool),
    })
    returns = table.groupby("scenario_id")["reward"].sum()
    table.attrs["rlpipe"] = {**info, "env": dict(config.env.model_dump(mode="json")), "obs_dim": int(spec.obs_dim),
                             "action_dim": int(spec.action_dim), "continuous": bool(spec.continuous),
                             "episodes": int(len(scenarios)), "transitions": int(len(table)),
                             "return_mean": float(returns.mean()), "return_std": float(returns.std(ddof=0))}
    logger.info("demonstrations: %d episodes, %d transitions, mean return %.1f +- %.1f", len(scenarios), len(table),
                returns.mean(), returns.std(ddof=0))
    return table


def recording_pipeline(algorithm: str, name: str) -> Pipeline:
    """``name``: demonstrations of a stored ``<algorithm>.agent`` (the newest, or ``--load-versions``)."""

    def load(agent: Any, settings: dict[str, Any] | None) -> tuple[Any, dict, dict]:
        """The stored agent's config, deterministic policy and identity."""
        return load_expert(algorithm, agent, settings)

    nodes = [
        Node(load, ["agent", "params:demonstrations"], ["expert_config", "expert_policy", "expert_info"],
             name="load_expert"),
        Node(demonstration_scenarios, ["expert_config", "params:demonstrations"], "demonstration_scenarios",
             name="demonstration_scenarios"),
        Node(record_demonstrations, ["expert_config", "expert_policy", "expert_info", "demonstration_scenarios",
                                     "params:demonstrations"], "demonstrations", name="record"),
    ]
    return Pipeline(nodes, namespace=name, inputs={"agent": f"{algorithm}.agent"},
                    outputs={"demonstrations": "demonstrations"}, parameters={"params:demonstrations"},
                    prefix_datasets_with_namespace=True)


# ------------------------------------------------------------------------------------------------- the imitator
IMITATION_NAMESPACE = "ppo_imitation"


def require_imitation(config: Any, key: str) -> None:
    """The ppo_imitation pipeline's rule: its parameters have an ``imitation`` section."""
    if config.imitation is None:
        raise ConfigError(f"{key}.imitation", "null, but this pipeline imitates demonstrations: give "
                                              "{demonstrations, style_weight, task_weight, discriminator}")


def forbid_imitation(config: Any, key: str) -> None:
    """The plain PPO pipeline's rule: no ``imitation`` section (it reads no demonstrations)."""
    if config.imitation is not None:
        raise ConfigError(f"{key}.imitation", "set, but this pipeline reads no demonstrations: run "
                                              "--pipelines=ppo_imitation (parameters ppo_imitation) to imitate")


def imitation_data(config: Any, demonstrations: Any) -> dict[str, np.ndarray]:
    """The (observation, next observation) pairs of the demonstrations version ``imitation.demonstrations`` names
    (``latest``: the one Kedro loaded), checked against this run's env, cut to a multiple of the device count and
    given to every seed of a multi-seed run."""
    from rlpipe.rl import mesh
    from rlpipe.rl.envs import env_spec
    from rlpipe.rl.imitation import transitions
    from rlpipe.rl.seeds import num_seeds

    key = f"{IMITATION_NAMESPACE}.imitation.demonstrations"
    table, meta, version, path = demonstrations.open(config.imitation.demonstrations, key)
    spec = env_spec(config.env)
    if meta.get("env_id") != config.env.id:
        raise ConfigError(key, f"{path} was recorded on {meta.get('env_id')!r}, this run's env is {config.env.id!r}")
    pairs = transitions(table, str(path))
    if pairs["obs"].shape[1] != spec.obs_dim or pairs["next_obs"].shape[1] != spec.obs_dim:
        raise ConfigError(key, f"{path} holds observations of {pairs['obs'].shape[1]} values; {config.env.id} "
                               f"observes {spec.obs_dim}")
    devices = mesh.device_count()
    usable = len(pairs["obs"]) // devices * devices
    if usable == 0:
        raise ConfigError(key, f"{path} has {len(pairs['obs'])} transitions, fewer than the {devices} devices")
    order = np.random.default_rng(config.seed).permutation(len(pairs["obs"]))[:usable]  # every device a mix
    pairs = {k: v[order] for k, v in pairs.items()}
    logger.info("imitating demonstrations %s: %d transitions of %s agent %s (mean return %.1f)", version, usable,
                meta.get("source_algorithm"), meta.get("source_version"), meta.get("return_mean", float("nan")))
    seeds = num_seeds(config)
    return pairs if seeds == 1 else {k: np.stack([v] * seeds) for k, v in pairs.items()}


def imitation_pipeline() -> Pipeline:
    """``ppo_imitation``: the PPO pipeline (parameters ``ppo_imitation``) whose reward comes from a discriminator
    trained on a version of ``demonstrations``."""
    return algorithm_pipeline("ppo", [
        Node(imitation_data, ["config", "demonstrations"], "imitation_data", name="load_demonstrations"),
        train_node("imitation_data"),
    ], namespace=IMITATION_NAMESPACE, inputs={"demonstrations"}, check=require_imitation)
