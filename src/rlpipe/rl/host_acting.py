"""Acting on host envs (``gymnasium:<id>``, see ``rlpipe.rl.envs.host``): evaluation and single trajectories run on
the host directly, with actions from the compiled deterministic policy. The same results as ``rlpipe.rl.acting``
gives for JAX envs (``make_evaluator`` picks this evaluator for a host env).

Policies here come in the stateful form (``rlpipe.rl.acting.StatefulPolicy``: ``state_size`` and ``step(obs, state)``);
the callers convert a stateless one with ``as_stateful``, so this module needs nothing of ``acting``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlpipe.rl.envs.host import HostEnvs
from rlpipe.rl.envs.host_workers import EnvGroup, ScenarioEnv, observation_rows, scenario_values


def _scenario_rows(host: HostEnvs, scenarios) -> tuple[np.ndarray, list[tuple]]:
    keys = np.asarray(jax.device_get(scenarios.reset_keys))
    seeds = keys[:, -1]
    params = tuple(np.asarray(jax.device_get(getattr(scenarios.params, name))) for name in host.param_names)
    return seeds, scenario_values(params, np.arange(len(seeds)))


class HostEvaluator:
    """``evaluator(params, scenarios) -> (returns, lengths)``: every scenario once on host envs (reset with its
    seed and values, stepped until its episode ends), actions from the compiled deterministic policy. The same
    interface as ``rlpipe.rl.acting.Evaluator``; info values named in ``metrics`` are collected per scenario.
    ``policy_of(params)`` gives the policy in the stateful form (``rlpipe.rl.acting.make_evaluator`` converts)."""

    def __init__(self, host: HostEnvs, policy_of: Callable[[Any], Any], max_steps: int,
                 metrics: tuple[str, ...] = ()):
        self.host, self.max_steps, self.metrics = host, max_steps, metrics
        self._policy_of = policy_of  # params -> a policy in the stateful form (state_size, step)
        self._act = jax.jit(lambda params, obs, state: self._policy_of(params).step(obs, state))
        self._group: EnvGroup | None = None
        self.last_metrics: dict[str, np.ndarray] = {}

    def _state(self, params: Any, n: int) -> jax.Array:
        return jnp.zeros((n, self._policy_of(params).state_size), jnp.float32)

    def precompile(self, params: Any, scenarios) -> None:
        n = scenarios.size
        self._act.lower(params, jnp.zeros((n, self.host.obs_dim), jnp.float32), self._state(params, n)).compile()

    def __call__(self, params: Any, scenarios):
        host = self.host
        seeds, values = _scenario_rows(host, scenarios)
        n = len(seeds)
        if self._group is None or self._group.count != n:
            if self._group is not None:
                self._group.close()
            self._group = EnvGroup(host.env_id, host.kwargs, host.param_names, n, "sync", 1)
        group = self._group
        rows = np.arange(n)
        obs = observation_rows(group.reset(rows, seeds, values), host.obs_dim)
        total, length = np.zeros(n, np.float64), np.zeros(n, np.int32)
        running = np.ones(n, bool)
        sums = {m: np.zeros(n) for m in self.metrics}
        last = {m: np.full(n, np.nan) for m in self.metrics}
        envs = group.local_envs  # a sync group: step only the envs still running
        state = self._state(params, n)
        for _ in range(self.max_steps):
            if not running.any():
                break
            actions, state = self._act(params, jnp.asarray(obs), state)
            actions = np.asarray(actions)
            for i in np.flatnonzero(running):
                action = actions[i] if host.continuous else int(actions[i])
                o, r, term, trunc, info = envs[i].step(action)
                obs[i] = np.ravel(o)
                total[i] += float(r)
                length[i] += 1
                for m in self.metrics:
                    if m in info:
                        value = float(np.asarray(info[m], np.float64).mean())
                        sums[m][i] += value
                        last[m][i] = value
                if term or trunc:
                    running[i] = False
        self.last_metrics = {m: sums[m] / np.maximum(length, 1) for m in self.metrics}
        self.last_metrics.update({f"{m}_final": last[m] for m in self.metrics})
        return total.astype(np.float32), length


def host_trajectory(host: HostEnvs, params: Any, reset_seed: int, policy: Any, steps: int
                    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """One episode on a host env, as ``rlpipe.rl.acting.trajectory`` gives it for JAX envs: "states" [steps+1]
    (here the observation components ``obs[i]``), rewards [steps] and the alive mask [steps]. ``policy``: a
    ``rlpipe.rl.acting.StatefulPolicy`` (``step(obs [1, obs_dim], state) -> (env actions, next state)``, its state
    carried from zeros; ``as_stateful`` gives a stateless policy that form)."""
    memory = jnp.zeros((1, policy.state_size), jnp.float32)
    values = tuple(np.asarray(getattr(params, name)).item() for name in host.param_names)
    env = ScenarioEnv(host.env_id, host.kwargs, host.param_names)
    try:
        obs = [np.ravel(env.reset(reset_seed, values)).astype(np.float32)]
        rewards, alive = [], []
        done = False
        for _ in range(steps):
            if done:
                obs.append(obs[-1])
                rewards.append(0.0)
                alive.append(0.0)
                continue
            action, memory = policy.step(jnp.asarray(obs[-1])[None], memory)
            action = np.asarray(action)[0]
            o, r, term, trunc, _ = env.step(action if host.continuous else int(action))
            obs.append(np.ravel(o).astype(np.float32))
            rewards.append(float(r))
            alive.append(1.0)
            done = bool(term or trunc)
    finally:
        env.close()
    stacked = np.stack(obs)
    states = {f"obs[{i}]": stacked[:, i] for i in range(stacked.shape[1])}
    return states, np.asarray(rewards, np.float32), np.asarray(alive, np.float32)
