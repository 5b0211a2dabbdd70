"""Stored agents (checkpoints written by a training run): their versions in a store (what ``train.init_from``
picks from), their deterministic policy bundles, the parts a new run inherits, and the best seed of a multi-seed
agent. The algorithm is found through the
registry by the name the agent's meta records."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rlpipe.rl import algorithm as algorithms
from rlpipe.rl import policies
from rlpipe.rl.checkpoint import META_FILE, StoredCheckpoint
from rlpipe.rl.config import parse, registration_target
from rlpipe.rl.envs import env_spec
from rlpipe.rl.errors import ConfigError
from rlpipe.rl.seeds import num_seeds


def policy_of_agent(agent: Any, key: str, seed_index: int | None = None) -> tuple[dict[str, Any], Any]:
    """A stored agent's deterministic policy bundle (built from its own config; the replay buffer is not read)
    and that config. ``key`` names the agent entry in errors. Of a multi-seed agent: seed ``seed_index``'s policy,
    by default the best seed's (the one exported and served)."""
    meta = agent["meta"]
    algorithm = algorithms.get(meta["algorithm"])
    agent_config = parse(algorithm.config_class, meta["config"], f"{key}.meta.config")
    training = agent.part("training") if hasattr(agent, "part") else agent["state"]["training"]
    policy_meta = algorithm.policy_meta(agent_config, env_spec(agent_config.env))
    seeds = num_seeds(agent_config)
    if seed_index is not None and not 0 <= seed_index < seeds:
        raise ConfigError("evaluation.seed_index", f"{seed_index}: the agent has seeds 0..{seeds - 1}")
    if seeds > 1:
        best, by = best_seed(meta, seeds) if seed_index is None else (seed_index, "asked for")
        training = jax.tree.map(lambda x: np.asarray(x)[best], training)
        policy_meta.update(seed_index=best, seed=agent_config.seed + best, num_seeds=seeds, selected_by=by)
    return {"meta": {**policy_meta, "env_steps": int(meta["env_steps"])},
            "params": policies.bundle_params(algorithm.policy_params(training))}, agent_config


def export_seed_policies(config: Any, agent: Any) -> dict[str, bytes]:
    """Every seed's policy bundle (``seed<k>/policy.json`` and ``params.npz`` flattened to ``seed<k>.json`` and
    ``seed<k>.npz``; ``rlpipe.rl.policies.seed_policy`` reads one back). One seed: ``seed0`` only."""
    name = algorithms.for_config(config).name
    files = {}
    for k in range(num_seeds(config)):
        policy, _ = policy_of_agent(agent, f"{name}.agent", k if num_seeds(config) > 1 else None)
        files.update(policies.bundle_files(policy, f"seed{k}"))
    return files


def parent_part(parent: Any, part: str) -> Any:
    """A stored agent's ``training`` or ``device`` part; of a multi-seed agent, its best seed's (the served one)."""
    tree = parent.part(part)
    seeds = int(((parent["meta"].get("config") or {}).get("train") or {}).get("num_seeds", 1))
    if seeds == 1:
        return tree
    best, _ = best_seed(parent["meta"], seeds)
    return jax.tree.map(lambda x: np.asarray(x)[best], tree)


def best_seed(meta: dict[str, Any], seeds: int) -> tuple[int, str]:
    """The index of a multi-seed agent's best seed by its last evaluation (the final one, taken before the final
    checkpoint), and how it was chosen."""
    history = (meta.get("progress") or {}).get("history") or []
    means = np.asarray([float(history[-1].get(f"seed{k}.eval_return_mean", np.nan)) if history else np.nan
                        for k in range(seeds)])
    if not np.isfinite(means).any():
        return 0, "seed 0: no evaluation recorded"
    best = int(np.nanargmax(means))
    return best, f"best mean eval return of {seeds} seeds at {int(history[-1]['env_steps'])} env steps"


def export_policy(config: Any, agent: Any) -> dict[str, Any]:
    """The deterministic policy alone, self-described (``rlpipe.rl.policies``), for evaluation, serving (MLflow
    model) and inspection. Reads only the agent's training state, never its buffers."""
    policy, _ = policy_of_agent(agent, f"{algorithms.for_config(config).name}.agent")
    policy["meta"].update(registered_model_name=config.tracking.registered_model_name,
                          register=config.tracking.register, target_return=registration_target(config))
    return policy


class CheckpointStore:
    """The versions of a versioned checkpoint entry (``<filepath>/<version>/<name>``), oldest first."""

    def __init__(self, filepath: str | os.PathLike):
        self.filepath = Path(filepath)

    def versions(self) -> list[str]:
        if not self.filepath.is_dir():
            return []
        return sorted(v.name for v in self.filepath.iterdir()
                      if (v / self.filepath.name / META_FILE).is_file())

    def open(self, version: str, key: str) -> tuple[StoredCheckpoint, str]:
        """The stored agent of ``version`` ("latest": the newest) and its version; ``key`` names the setting that
        asked for it in the error if there is none."""
        versions = self.versions()
        if not versions:
            raise ConfigError(key, f"{version!r}: there is no stored agent in {self.filepath} yet")
        if version == "latest":
            version = versions[-1]
        elif version not in versions:
            newest = ", ".join(versions[-3:])
            raise ConfigError(key, f"{version!r} is not a stored agent version in {self.filepath} (newest: {newest})")
        return StoredCheckpoint(self.filepath / version / self.filepath.name), version

    def __repr__(self) -> str:
        return f"CheckpointStore({str(self.filepath)!r})"
