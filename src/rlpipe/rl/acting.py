"""Acting in a batch of environments: stepping with scenario resets, unrolls, evaluation, single trajectories.

Every function here is pure JAX and runs inside jit and shard_map. Two kinds of actions meet here: the *learning*
action a policy emits and the agent learns from (SAC: normalized to [-1, 1]; PPO: the raw Gaussian sample or the
discrete index), and the *env* action the environment receives. ``to_env`` maps one to the other when stepping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
from flax import struct

from rlpipe.rl.envs import EnvSpec, ScenarioBatch
from rlpipe.rl.envs.scenarios import draw, take
from rlpipe.rl.host_acting import HostEvaluator

ActionMap = Callable[[jax.Array], jax.Array]


class Policy(Protocol):
    def __call__(self, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, Any]:
        """(learning actions [B, ...], extras pytree with leading [B] axis) for observations [B, obs_dim]."""


class StatefulPolicy(NamedTuple):
    """A deterministic policy with memory: ``step(obs [B, obs_dim], state [B, state_size]) -> (env actions, next
    state)``; every episode starts from zeros."""

    state_size: int
    step: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def as_stateful(policy: ActionMap | StatefulPolicy) -> StatefulPolicy:
    """Any deterministic policy in the stateful form (a stateless one carries an empty state)."""
    if isinstance(policy, StatefulPolicy):
        return policy
    return StatefulPolicy(0, lambda obs, state: (policy(obs), state))


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array  # the learning action
    reward: jax.Array
    discount: jax.Array  # 0 where the episode terminated (not where it was only truncated)
    next_obs: jax.Array  # the true next observation, also at the end of an episode


class Rollout(NamedTuple):
    transition: Transition
    done: jax.Array  # episode ended here (terminated or truncated): no advantage flows across it
    extras: Any  # whatever the policy returned beside the action (log-probs, values, ...)


class EpisodeStats(NamedTuple):
    """Sums over the episodes that ended during an unroll (sums, so they add across calls and devices), and the
    return of each one: ``ended`` [steps, envs] of an unroll (NaN where no episode ended), for a learning curve with
    a point per episode; sums added up drop it (``()``)."""

    return_sum: jax.Array
    length_sum: jax.Array
    count: jax.Array
    ended: Any = ()

    @staticmethod
    def zero() -> EpisodeStats:
        return EpisodeStats(jnp.float32(0.0), jnp.float32(0.0), jnp.float32(0.0))

    def __add__(self, other: EpisodeStats) -> EpisodeStats:  # type: ignore[override]
        return EpisodeStats(*(a + b for a, b in zip(self[:3], other[:3])))


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


def scale_action(spec: EnvSpec) -> ActionMap:
    """Normalized [-1, 1] actions -> the env's Box bounds."""
    return lambda action: scale_to_bounds(action, jnp.asarray(spec.action_low), jnp.asarray(spec.action_high))


def flat_obs(obs: jax.Array, num: int) -> jax.Array:
    return jnp.reshape(obs, (num, -1)).astype(jnp.float32)


def reset_envs(spec: EnvSpec, scenarios: ScenarioBatch, key: jax.Array, num_envs: int) -> EnvBatchState:
    """Start ``num_envs`` episodes on sampled scenarios (uniformly, or by the curriculum's weights)."""
    index = draw(scenarios, key, num_envs)
    params, reset_keys = take(scenarios, index)
    obs, env_state = spec.reset_batch(reset_keys, params)
    zeros = jnp.zeros((num_envs,), jnp.float32)
    return EnvBatchState(env_state, flat_obs(obs, num_envs), params, zeros, zeros)


def step_envs(spec: EnvSpec, scenarios: ScenarioBatch, state: EnvBatchState, action: jax.Array, to_env: ActionMap,
              key: jax.Array) -> tuple[EnvBatchState, Transition, jax.Array, EpisodeStats]:
    """One step of every env; an env whose episode ended restarts on a freshly sampled scenario.

    Returns the new state, the transition, the per-env ``done`` flags and the stats of episodes that ended.
    """
    num_envs = state.obs.shape[0]
    step_key, pick_key = jax.random.split(key)
    step_keys = jax.random.split(step_key, num_envs)
    obs, env_state, reward, terminated, truncated, _ = spec.step_batch(step_keys, state.env_state, to_env(action),
                                                                       state.params)
    done = jnp.logical_or(terminated, truncated)
    reward = reward.astype(jnp.float32)
    next_obs = flat_obs(obs, num_envs)
    episode_return = state.episode_return + reward
    episode_length = state.episode_length + 1.0

    keep_running = jnp.logical_not(done)
    stepped = EnvBatchState(env_state, next_obs, state.params, episode_return * keep_running,
                            episode_length * keep_running)

    def restart_finished(stepped: EnvBatchState) -> EnvBatchState:
        index = draw(scenarios, pick_key, num_envs)
        params, reset_keys = take(scenarios, index)
        # a host env resets only the finished envs, in place; a JAX env starts all and the finished ones are kept
        obs, env_state = spec.reset_batch(reset_keys, params, stepped.env_state, done, flat_obs(stepped.obs, num_envs))
        fresh = EnvBatchState(env_state, flat_obs(obs, num_envs), params, stepped.episode_return,
                              stepped.episode_length)
        pick = lambda new, old: jnp.where(jnp.reshape(done, done.shape + (1,) * (new.ndim - 1)), new, old)  # noqa: E731
        return stepped.replace(env_state=jax.tree.map(pick, fresh.env_state, stepped.env_state),
                               obs=pick(fresh.obs, stepped.obs), params=jax.tree.map(pick, fresh.params, stepped.params))

    # Most steps end no episode: skip the resets (and their scenario gathers) unless one did.
    new_state = jax.lax.cond(jnp.any(done), restart_finished, lambda stepped: stepped, stepped)
    transition = Transition(state.obs, action, reward, 1.0 - terminated.astype(jnp.float32), next_obs)
    done_f = done.astype(jnp.float32)
    stats = EpisodeStats(jnp.sum(episode_return * done_f), jnp.sum(episode_length * done_f), jnp.sum(done_f),
                         jnp.where(done, episode_return, jnp.nan))
    return new_state, transition, done, stats


def unroll(spec: EnvSpec, scenarios: ScenarioBatch, policy: Policy, to_env: ActionMap, state: EnvBatchState,
           key: jax.Array, length: int) -> tuple[EnvBatchState, Rollout, EpisodeStats]:
    """``length`` steps of every env under ``policy`` (lax.scan); the rollout comes stacked [length, num_envs]."""
    state, _, rollout, stats = unroll_with_memory(spec, scenarios, lambda obs, key, memory: (*policy(obs, key), memory),
                                                  to_env, state, (), key, length)
    return state, rollout, stats


def unroll_with_memory(spec: EnvSpec, scenarios: ScenarioBatch, policy: Callable, to_env: ActionMap,
                       state: EnvBatchState, memory: Any, key: jax.Array,
                       length: int) -> tuple[EnvBatchState, Any, Rollout, EpisodeStats]:
    """``unroll`` for a policy with memory: ``policy(obs, key, memory) -> (action, extras, next memory)``, where
    ``memory`` is a pytree of per-env arrays (leading [num_envs] axis). Each env's memory is set to zeros exactly
    where its episode ended (terminated or truncated), so the next episode starts from zeros. Returns the envs, the
    memory after the last step, the rollout and the episode statistics."""

    def body(carry, step_key):
        env_batch, memory, stats = carry
        act_key, env_key = jax.random.split(step_key)
        action, extras, memory = policy(env_batch.obs, act_key, memory)
        env_batch, transition, done, step_stats = step_envs(spec, scenarios, env_batch, action, to_env, env_key)
        memory = reset_where(done, memory)
        return (env_batch, memory, stats + step_stats), (Rollout(transition, done, extras), step_stats.ended)

    (state, memory, stats), (rollout, ended) = jax.lax.scan(body, (state, memory, EpisodeStats.zero()),
                                                            jax.random.split(key, length))
    return state, memory, rollout, stats._replace(ended=ended)


def reset_where(done: jax.Array, memory: Any) -> Any:
    """``memory`` (per-env leaves, leading [num_envs] axis) with the rows of envs whose episode ended zeroed."""
    return jax.tree.map(lambda x: jnp.where(jnp.reshape(done, done.shape + (1,) * (x.ndim - 1)), 0, x), memory)


def evaluate(spec: EnvSpec, scenarios: ScenarioBatch, policy: ActionMap | StatefulPolicy, max_steps: int,
             metrics: tuple[str, ...] = ()) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """Run every scenario once, from its own reset seed, until its episode ends (at most ``max_steps``).

    ``policy`` maps observations [B, obs_dim] to env actions deterministically (a ``StatefulPolicy`` one carries its
    state through each episode, from zeros). Returns per-scenario return, length and, for each name in ``metrics``
    (keys of the env's step info), its mean over the episode's steps (``<name>``) and its value at the episode's
    last step (``<name>_final``).
    """
    n = scenarios.size
    policy = as_stateful(policy)
    obs, env_state = spec.reset_batch(scenarios.reset_keys, scenarios.params)
    # Env dynamics may use their key (stochastic transitions): a fixed per-scenario stream keeps evaluation
    # a pure function of the scenario table.
    step_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(scenarios.reset_keys)

    def body(carry, t):
        obs, env_state, memory, total, length, running, sums, last = carry
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(step_keys, t)
        action, memory = policy.step(flat_obs(obs, n), memory)
        obs, env_state, reward, terminated, truncated, info = spec.step_batch(keys, env_state, action,
                                                                              scenarios.params)
        total = total + reward.astype(jnp.float32) * running
        length = length + running
        values = {m: jnp.reshape(jnp.asarray(info[m], jnp.float32), (n, -1)).mean(axis=1) for m in metrics}
        sums = {m: sums[m] + values[m] * running for m in metrics}
        last = {m: jnp.where(running > 0, values[m], last[m]) for m in metrics}
        running = running * (1.0 - jnp.logical_or(terminated, truncated).astype(jnp.float32))
        return (obs, env_state, memory, total, length, running, sums, last), None

    zeros = {m: jnp.zeros(n) for m in metrics}
    memory = jnp.zeros((n, policy.state_size), jnp.float32)
    init = (obs, env_state, memory, jnp.zeros(n), jnp.zeros(n), jnp.ones(n), zeros, zeros)
    (_, _, _, total, length, _, sums, last), _ = jax.lax.scan(body, init, jnp.arange(max_steps))
    out = {m: sums[m] / jnp.maximum(length, 1.0) for m in metrics}
    out.update({f"{m}_final": last[m] for m in metrics})
    return total, length.astype(jnp.int32), out


def record(spec: EnvSpec, scenarios: ScenarioBatch, policy: ActionMap | StatefulPolicy,
           max_steps: int) -> dict[str, jax.Array]:
    """Every scenario's deterministic episode (as ``evaluate`` runs it) step by step, for demonstrations: the
    observation, env action, reward, true next observation and termination of each step [max_steps, scenarios,
    ...], and ``alive`` (1 while the scenario's episode was running at that step)."""
    n = scenarios.size
    policy = as_stateful(policy)
    obs, env_state = spec.reset_batch(scenarios.reset_keys, scenarios.params)
    step_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(scenarios.reset_keys)

    def body(carry, t):
        obs, env_state, memory, running = carry
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(step_keys, t)
        seen = flat_obs(obs, n)
        action, memory = policy.step(seen, memory)
        obs, env_state, reward, terminated, truncated, _ = spec.step_batch(keys, env_state, action, scenarios.params)
        step = {"observation": seen, "action": action, "reward": reward.astype(jnp.float32),
                "next_observation": flat_obs(obs, n), "terminated": terminated, "alive": running}
        running = running * (1.0 - jnp.logical_or(terminated, truncated).astype(jnp.float32))
        return (obs, env_state, memory, running), step

    memory = jnp.zeros((n, policy.state_size), jnp.float32)
    _, steps = jax.lax.scan(body, (obs, env_state, memory, jnp.ones(n)), jnp.arange(max_steps))
    return steps


class Evaluator:
    """``evaluator(params, scenarios) -> (returns, lengths)`` as numpy: ``evaluate`` compiled once; the metrics
    of that evaluation (see ``evaluate``) are in ``last_metrics`` afterwards.

    ``policy_of(params)`` gives the deterministic env-action policy. ``precompile`` compiles ahead of the first
    call (e.g. on a background thread while the training step compiles).
    """

    def __init__(self, spec: EnvSpec, policy_of: Callable[[Any], ActionMap], max_steps: int,
                 metrics: tuple[str, ...] = ()):
        self._jit = jax.jit(lambda params, scenarios: evaluate(spec, scenarios, policy_of(params), max_steps,
                                                               metrics))
        self._compiled = None
        self.last_metrics: dict[str, Any] = {}

    def precompile(self, params: Any, scenarios: ScenarioBatch) -> None:
        self._compiled = self._jit.lower(params, scenarios).compile()

    def __call__(self, params: Any, scenarios: ScenarioBatch):
        import numpy as np

        returns, lengths, metrics = (self._compiled or self._jit)(params, scenarios)
        self.last_metrics = {k: np.asarray(v) for k, v in metrics.items()}
        return np.asarray(returns), np.asarray(lengths)


def make_evaluator(spec: EnvSpec, policy_of: Callable[[Any], ActionMap], max_steps: int,
                   metrics: tuple[str, ...] = ()):
    """An ``Evaluator`` for a JAX env; for a host env the host's own evaluator (the same interface)."""
    if spec.host is not None:
        return HostEvaluator(spec.host, lambda params: as_stateful(policy_of(params)), max_steps, metrics)
    return Evaluator(spec, policy_of, max_steps, metrics)


def trajectory(spec: EnvSpec, params: Any, reset_key: jax.Array, policy: ActionMap | StatefulPolicy,
               steps: int) -> tuple[Any, jax.Array, jax.Array]:
    """One episode of one scenario for inspection: env states [steps+1], rewards [steps], alive mask [steps].

    ``policy`` maps an observation batch [1, obs_dim] to env actions (as a policy bundle's function does; a
    ``StatefulPolicy`` one carries its state from zeros).
    """
    policy = as_stateful(policy)
    obs, state = spec.env.reset_env(reset_key, params)
    step_key = jax.random.fold_in(reset_key, 1)

    def body(carry, t):
        obs, state, memory, alive = carry
        action, memory = policy.step(flat_obs(obs, 1), memory)
        obs, next_state, reward, terminated, _ = spec.env.step_env(jax.random.fold_in(step_key, t), state, action[0],
                                                                   params)
        done = jnp.logical_or(terminated, spec.env.is_truncated(next_state, params))
        return (obs, next_state, memory, alive * (1.0 - done)), (next_state, reward * alive, alive)

    memory = jnp.zeros((1, policy.state_size), jnp.float32)
    _, (states, rewards, alive) = jax.lax.scan(body, (obs, state, memory, jnp.float32(1.0)), jnp.arange(steps))
    states = jax.tree.map(lambda first, rest: jnp.concatenate([jnp.asarray(first, rest.dtype)[None], rest]), state,
                          states)
    return states, rewards, alive
