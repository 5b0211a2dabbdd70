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
from rlpipe.rl.acting import StatefulPolicy
from rlpipe.rl.checkpoint import writing_directory
from rlpipe.rl.envs import EnvSpec

META_FILE, PARAMS_FILE = "policy.json", "params.npz"


def describe(algorithm: str, spec: EnvSpec, config: Any, **extra: Any) -> dict[str, Any]:
    """A bundle's meta: algorithm, env, observation and action spaces, network shape (of ``config.network``: the
    MLP's widths and activation, and torsos by name where the config names them), the observation mask of
    ``config.env`` where it has one, and anything ``extra``."""
    from rlpipe.rl.envs.registry import observation_mask

    net = config.network
    meta = {
        "algorithm": algorithm,
        "env_id": spec.id,
        "obs_dim": spec.obs_dim,
        "continuous": spec.continuous,
        "action_dim": spec.action_dim,
        "action_low": None if spec.action_low is None else spec.action_low.tolist(),
        "action_high": None if spec.action_high is None else spec.action_high.tolist(),
        "hidden_sizes": list(net.hidden_sizes),
        "activation": net.activation,
    }
    mask = observation_mask(config.env.observation_mask, spec.id, spec.obs_dim, "env.observation_mask")
    if mask is not None:  # the served policy takes whole observations and keeps these components
        meta["observation_mask"] = list(mask)
    if getattr(net, "init", "lecun_normal") != "lecun_normal":  # how the MLP layers started (SAC's network.init)
        meta["init"] = net.init
    torsos = {role: net.torso(role) for role in ("actor", "critic")}
    if any(torsos.values()):
        meta["torsos"] = torsos
    return {**meta, **extra}


def mask_of(meta: dict[str, Any]) -> tuple[int, ...] | None:
    mask = meta.get("observation_mask")
    return None if mask is None else tuple(mask)


def torso_of(meta: dict[str, Any], role: str) -> dict[str, Any] | None:
    return (meta.get("torsos") or {}).get(role)


def state_size(meta: dict[str, Any]) -> int:
    """Width of the state a bundle's policy carries from step to step per env (0: a stateless policy)."""
    return int(meta.get("policy_state_size", 0))


def bundle_params(params: Any) -> Any:
    """Host (numpy) copies of policy parameters, as a bundle stores them."""
    return jax.tree.map(np.asarray, jax.device_get(params))


def jax_policy(policy: dict[str, Any]) -> Callable[[jax.Array], jax.Array] | StatefulPolicy:
    """The deterministic policy of a bundle as a JAX function: obs [B, obs_dim] -> env actions (traceable); for a
    stateful (recurrent) policy a ``StatefulPolicy`` whose ``step(obs, state) -> (env actions, next state)`` starts an
    episode from zeros [B, state_size]."""
    meta, params = policy["meta"], policy["params"]
    act = algorithms.get(meta["algorithm"]).make_policy(meta)
    if state_size(meta):
        return StatefulPolicy(state_size(meta), lambda obs, state: act(params, obs, state))
    return lambda obs: act(params, obs)


def make_policy_fn(policy: dict[str, Any]) -> Callable[..., Any]:
    """The deterministic policy of a bundle on the host: numpy observations -> numpy env actions.

    A stateful (recurrent) policy's function is ``fn(obs, state=None) -> (actions, next_state)``: pass the
    ``next_state`` it returned with the next observations of the same envs, and None (zeros) or zero rows where
    an episode starts."""
    meta = policy["meta"]
    act = jax.jit(algorithms.get(meta["algorithm"]).make_policy(meta))
    size = state_size(meta)

    def policy_fn(obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32).reshape(-1, meta["obs_dim"])
        return np.asarray(act(policy["params"], jnp.asarray(obs)))

    def stateful_fn(obs: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        obs = np.asarray(obs, np.float32).reshape(-1, meta["obs_dim"])
        state = np.zeros((len(obs), size), np.float32) if state is None else np.asarray(state, np.float32)
        action, next_state = act(policy["params"], jnp.asarray(obs), jnp.asarray(state.reshape(len(obs), size)))
        return np.asarray(action), np.asarray(next_state)

    return stateful_fn if size else policy_fn


def agent_rows(policy: dict[str, Any], rows: np.ndarray) -> np.ndarray:
    """A multi-agent bundle's policy on rows of one agent each: [its observation, its one-hot id] -> its env action
    (how the served model takes agents one by one; joint rows of every agent's observation work as well)."""
    meta = policy["meta"]
    rows = np.asarray(rows, np.float32).reshape(len(rows), -1)
    width = meta["agent_obs_dim"] + meta["num_agents"]
    if rows.shape[1] != width:
        raise ValueError(f"a row of this multi-agent policy is one agent's observation ({meta['agent_obs_dim']} "
                         f"values) followed by its one-hot id ({meta['num_agents']} values): {width} values, or "
                         f"every agent's observation ({meta['obs_dim']} values); got {rows.shape[1]}")
    act = jax.jit(algorithms.get(meta["algorithm"]).make_agent_policy(meta))
    return np.asarray(act(policy["params"], jnp.asarray(rows)))


def stateful_rows(policy_fn: Callable[..., Any], rows: np.ndarray, obs_dim: int, size: int) -> np.ndarray:
    """A stateful policy on rows [observation, state] -> rows [action, next state] (how the served model takes
    and gives its state)."""
    rows = np.asarray(rows, np.float32).reshape(len(rows), -1)
    if rows.shape[1] != obs_dim + size:
        raise ValueError(f"a row of this recurrent policy is its observation ({obs_dim} values) followed by its "
                         f"state ({size} values; zeros at an episode's start): {obs_dim + size} values, got "
                         f"{rows.shape[1]}")
    action, next_state = policy_fn(rows[:, :obs_dim], rows[:, obs_dim:])
    return np.concatenate([np.asarray(action, np.float32).reshape(len(rows), -1), next_state], axis=1)


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
