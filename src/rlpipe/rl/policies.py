"""Trained policies as self-describing bundles: what a served model, a notebook or an animation needs.

A bundle is ``{"meta": {...}, "params": pytree}``: the meta (JSON-able) names the algorithm, network shape and
action space, so the policy can be rebuilt without the training config or Kedro (by the algorithm the meta names,
through the registry). ``make_policy_fn`` turns a bundle into ``obs [B, obs_dim] -> env actions``
(deterministic), the same function in-process and when served.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from rlpipe.rl import algorithm as algorithms
from rlpipe.rl.checkpoint import writing_directory
from rlpipe.rl.envs import EnvSpec

META_FILE, PARAMS_FILE = "policy.json", "params.npz"


def describe(algorithm: str, spec: EnvSpec, hidden_sizes: tuple[int, ...], activation: str,
             **extra: Any) -> dict[str, Any]:
    """A bundle's meta: algorithm, env, observation and action spaces, network shape, and anything ``extra``."""
    return {
        "algorithm": algorithm,
        "env_id": spec.id,
        "obs_dim": spec.obs_dim,
        "continuous": spec.continuous,
        "action_dim": spec.action_dim,
        "action_low": None if spec.action_low is None else spec.action_low.tolist(),
        "action_high": None if spec.action_high is None else spec.action_high.tolist(),
        "hidden_sizes": list(hidden_sizes),
        "activation": activation,
        **extra,
    }


def bundle_params(params: Any) -> Any:
    """Host (numpy) copies of policy parameters, as a bundle stores them."""
    return jax.tree.map(np.asarray, jax.device_get(params))


def jax_policy(policy: dict[str, Any]) -> Callable[[jax.Array], jax.Array]:
    """The deterministic policy of a bundle as a JAX function: obs [B, obs_dim] -> env actions (traceable)."""
    meta, params = policy["meta"], policy["params"]
    act = algorithms.get(meta["algorithm"]).make_policy(meta)
    return lambda obs: act(params, obs)


def make_policy_fn(policy: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """The deterministic policy of a bundle on the host: numpy observations -> numpy env actions."""
    meta = policy["meta"]
    act = jax.jit(algorithms.get(meta["algorithm"]).make_policy(meta))

    def policy_fn(obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32).reshape(-1, meta["obs_dim"])
        return np.asarray(act(policy["params"], jnp.asarray(obs)))

    return policy_fn


def write_policy(path: str | os.PathLike, policy: dict[str, Any]) -> None:
    """A bundle as a directory: ``policy.json`` (meta) + ``params.npz`` (weights, '/'-joined names; no pickle)."""
    with writing_directory(path) as partial:
        flat = traverse_util.flatten_dict(policy["params"], sep="/")
        np.savez(partial / PARAMS_FILE, **{k: np.asarray(v) for k, v in flat.items()})
        (partial / META_FILE).write_text(json.dumps(policy["meta"], indent=2, sort_keys=True))


def bundle_files(policy: dict[str, Any], stem: str) -> dict[str, bytes]:
    """A bundle as two named files, ``<stem>.json`` (meta) and ``<stem>.npz`` (weights; no pickle)."""
    import io

    buffer = io.BytesIO()
    flat = traverse_util.flatten_dict(policy["params"], sep="/")
    np.savez(buffer, **{k: np.asarray(v) for k, v in flat.items()})
    return {f"{stem}.json": json.dumps(policy["meta"], indent=2, sort_keys=True).encode(),
            f"{stem}.npz": buffer.getvalue()}


def seed_policy(files: dict[str, bytes], seed_index: int) -> dict[str, Any]:
    """Seed ``seed_index``'s bundle from the files ``bundle_files`` wrote (a ``<algo>.seed_policies`` entry)."""
    import io

    meta = json.loads(files[f"seed{seed_index}.json"])
    with np.load(io.BytesIO(files[f"seed{seed_index}.npz"]), allow_pickle=False) as data:
        params = traverse_util.unflatten_dict({k: data[k] for k in data.files}, sep="/")
    return {"meta": meta, "params": params}


def read_policy(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    meta = json.loads((path / META_FILE).read_text())
    with np.load(path / PARAMS_FILE, allow_pickle=False) as data:
        params = traverse_util.unflatten_dict({k: data[k] for k in data.files}, sep="/")
    return {"meta": meta, "params": params}
