"""Acting in a batch of environments: policy and random steps, scenario resets, unrolls, evaluation.

Every function here is pure JAX and runs inside jit/pmap. Actions handled here are *normalized* to [-1, 1]
per dimension (what a tanh-squashed policy emits); they are mapped to the env's Box bounds only when stepping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
from flax import struct

from rlpipe.rl.envs import EnvSpec, ScenarioBatch
from rlpipe.rl.envs.scenarios import take


class Policy(Protocol):
    def __call__(self, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Normalized actions [B, action_dim] in [-1, 1] for observations [B, obs_dim]."""


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array  # normalized
    reward: jax.Array
    discount: jax.Array  # 0 where the episode terminated (not where it was only truncated)
    next_obs: jax.Array  # the true next observation, also at the end of an episode


class EpisodeStats(NamedTuple):
    """Sums over the episodes that ended during an unroll (sums, so they add across calls and devices)."""

    return_sum: jax.Array
    length_sum: jax.Array
    count: jax.Array

    @staticmethod
    def zero() -> EpisodeStats:
        return EpisodeStats(jnp.float32(0.0), jnp.float32(0.0), jnp.float32(0.0))

    def __add__(self, other: EpisodeStats) -> EpisodeStats:  # type: ignore[override]
        return EpisodeStats(*(a + b for a, b in zip(self, other)))


@struct.dataclass
class EnvBatchState:
    env_state: Any  # the env's own state, leading [num_envs] axis
    obs: jax.Array  # [num_envs, obs_dim]
    params: Any  # env params of each env's current scenario
    episode_return: jax.Array  # [num_envs] running return of the current episode
    episode_length: jax.Array  # [num_envs]


def scale_to_bounds(action: jax.Array, low: jax.Array, high: jax.Array) -> jax.Array:
    """Normalized [-1, 1] actions -> [low, high]."""
    return low + (action + 1.0) * 0.5 * (high - low)


def scale_action(spec: EnvSpec, action: jax.Array) -> jax.Array:
    """Normalized [-1, 1] actions -> the env's Box bounds."""
    return scale_to_bounds(action, jnp.asarray(spec.action_low), jnp.asarray(spec.action_high))


def _flat_obs(obs: jax.Array, num: int) -> jax.Array:
    return jnp.reshape(obs, (num, -1)).astype(jnp.float32)


def reset_envs(spec: EnvSpec, scenarios: ScenarioBatch, key: jax.Array, num_envs: int) -> EnvBatchState:
    """Start ``num_envs`` episodes on uniformly sampled scenarios."""
    index = jax.random.randint(key, (num_envs,), 0, scenarios.size)
    params, reset_keys = take(scenarios, index)
    obs, env_state = jax.vmap(spec.env.reset_env)(reset_keys, params)
    zeros = jnp.zeros((num_envs,), jnp.float32)
    return EnvBatchState(env_state, _flat_obs(obs, num_envs), params, zeros, zeros)


def step_envs(spec: EnvSpec, scenarios: ScenarioBatch, state: EnvBatchState, action: jax.Array,
              key: jax.Array) -> tuple[EnvBatchState, Transition, EpisodeStats]:
    """One step of every env; an env whose episode ended restarts on a freshly sampled scenario."""
    num_envs = state.obs.shape[0]
    step_key, pick_key = jax.random.split(key)
    step_keys = jax.random.split(step_key, num_envs)
    env_action = scale_action(spec, action)
    obs, env_state, reward, terminated, _ = jax.vmap(spec.env.step_env)(step_keys, state.env_state, env_action,
                                                                       state.params)
    truncated = jax.vmap(spec.env.is_truncated)(env_state, state.params)
    done = jnp.logical_or(terminated, truncated)
    reward = reward.astype(jnp.float32)
    next_obs = _flat_obs(obs, num_envs)
    episode_return = state.episode_return + reward
    episode_length = state.episode_length + 1.0

    fresh = reset_envs(spec, scenarios, pick_key, num_envs)
    restart = lambda new, old: jnp.where(jnp.reshape(done, done.shape + (1,) * (new.ndim - 1)), new, old)  # noqa: E731
    keep_running = jnp.logical_not(done)
    new_state = EnvBatchState(
        env_state=jax.tree.map(restart, fresh.env_state, env_state),
        obs=restart(fresh.obs, next_obs),
        params=jax.tree.map(restart, fresh.params, state.params),
        episode_return=episode_return * keep_running,
        episode_length=episode_length * keep_running,
    )
    transition = Transition(state.obs, action, reward, 1.0 - terminated.astype(jnp.float32), next_obs)
    done_f = done.astype(jnp.float32)
    stats = EpisodeStats(jnp.sum(episode_return * done_f), jnp.sum(episode_length * done_f), jnp.sum(done_f))
    return new_state, transition, stats


def random_policy(spec: EnvSpec) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Uniformly random normalized actions (for the buffer prefill)."""

    def act(obs: jax.Array, key: jax.Array) -> jax.Array:
        return jax.random.uniform(key, (obs.shape[0], spec.action_dim), minval=-1.0, maxval=1.0)

    return act


def unroll(spec: EnvSpec, scenarios: ScenarioBatch, policy: Policy, state: EnvBatchState, key: jax.Array,
           length: int) -> tuple[EnvBatchState, Transition, EpisodeStats]:
    """``length`` steps of every env under ``policy`` (lax.scan); transitions come stacked [length, num_envs]."""

    def body(carry, step_key):
        env_batch, stats = carry
        act_key, env_key = jax.random.split(step_key)
        action = policy(env_batch.obs, act_key)
        env_batch, transition, step_stats = step_envs(spec, scenarios, env_batch, action, env_key)
        return (env_batch, stats + step_stats), transition

    (state, stats), transitions = jax.lax.scan(body, (state, EpisodeStats.zero()), jax.random.split(key, length))
    return state, transitions, stats


def evaluate(spec: EnvSpec, scenarios: ScenarioBatch, policy: Callable[[jax.Array], jax.Array],
             max_steps: int) -> tuple[jax.Array, jax.Array]:
    """Run every scenario once, from its own reset seed, until its episode ends (at most ``max_steps``).

    ``policy`` maps observations to normalized actions deterministically. Returns per-scenario return and length.
    """
    n = scenarios.size
    obs, env_state = jax.vmap(spec.env.reset_env)(scenarios.reset_keys, scenarios.params)
    # Env dynamics may use their key (stochastic transitions): a fixed per-scenario stream keeps evaluation
    # a pure function of the scenario table.
    step_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(scenarios.reset_keys)

    def body(carry, t):
        obs, env_state, total, length, running = carry
        action = policy(_flat_obs(obs, n))
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(step_keys, t)
        obs, env_state, reward, terminated, _ = jax.vmap(spec.env.step_env)(keys, env_state, scale_action(spec, action),
                                                                           scenarios.params)
        truncated = jax.vmap(spec.env.is_truncated)(env_state, scenarios.params)
        total = total + reward.astype(jnp.float32) * running
        length = length + running
        running = running * (1.0 - jnp.logical_or(terminated, truncated).astype(jnp.float32))
        return (obs, env_state, total, length, running), None

    init = (obs, env_state, jnp.zeros(n), jnp.zeros(n), jnp.ones(n))
    (_, _, total, length, _), _ = jax.lax.scan(body, init, jnp.arange(max_steps))
    return total, length.astype(jnp.int32)


def trajectory(spec: EnvSpec, params: Any, reset_key: jax.Array, policy: Callable[[jax.Array], jax.Array],
               steps: int) -> tuple[Any, jax.Array, jax.Array]:
    """One episode of one scenario for inspection: env states [steps+1], rewards [steps], alive mask [steps].

    ``policy`` maps an observation batch [1, obs_dim] to *env* actions (as a policy bundle's function does).
    """
    obs, state = spec.env.reset_env(reset_key, params)
    step_key = jax.random.fold_in(reset_key, 1)

    def body(carry, t):
        obs, state, alive = carry
        action = policy(_flat_obs(obs, 1))[0]
        obs, next_state, reward, terminated, _ = spec.env.step_env(jax.random.fold_in(step_key, t), state, action,
                                                                   params)
        done = jnp.logical_or(terminated, spec.env.is_truncated(next_state, params))
        return (obs, next_state, alive * (1.0 - done)), (next_state, reward * alive, alive)

    _, (states, rewards, alive) = jax.lax.scan(body, (obs, state, jnp.float32(1.0)), jnp.arange(steps))
    states = jax.tree.map(lambda first, rest: jnp.concatenate([jnp.asarray(first, rest.dtype)[None], rest]), state,
                          states)
    return states, rewards, alive
