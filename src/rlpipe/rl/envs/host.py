"""Gymnasium environments (``gymnasium:<id>``), stepped on the host from inside the compiled training program.

The training chunk stays one compiled program: where it steps or resets its envs, a ``jax.experimental.io_callback``
hands the actions to a Gymnasium vector env on the host (sync: in this process; async: one worker process per env)
and returns observations, rewards and episode ends as arrays. Action selection and every update stay compiled. Each
device shard of the mesh has its own group of envs; the envs' state on the device is only their address
(``[group, index]`` per env), so results flow through data dependencies and the callbacks run in program order.

Scenarios keep their meaning: an env starts an episode with its scenario's reset seed, and numeric keyword arguments
of the env's constructor (Pendulum's ``g``, a MuJoCo task's ``reset_noise_scale``...) and ``max_steps_in_episode``
are scenario parameters, so ``scenarios.ranges`` can draw them; an env is rebuilt when a reset brings it a scenario
with other values. Evaluation and films run on the host directly (``rlpipe.rl.host_acting``).

This module is the bridge between compiled code and the host (``HostEnvs``); the envs themselves are in
``host_workers``, and what an env id offers is found by ``host_describe``.

A host env cannot be snapshotted: a checkpoint holds everything but the envs' internal state, and a resumed run
starts fresh episodes (``rlpipe.rl.training`` says so).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlpipe.rl.envs.host_describe import PREFIX, EnvUnavailable
from rlpipe.rl.envs.host_workers import EnvGroup, HostEnvError, observation_rows, scenario_values

__all__ = ["PREFIX", "EnvUnavailable", "HostEnvError", "HostEnvs", "reraise_host_failures"]


class HostEnvs:
    """A Gymnasium env id as the batched env interface ``EnvSpec`` offers (``reset_batch``, ``step_batch``),
    through io_callbacks; groups of envs live in a table of this process."""

    def __init__(self, env_id: str, kwargs: Mapping[str, Any], param_names: tuple[str, ...], obs_dim: int,
                 continuous: bool, vector: str = "sync", workers: int = 2):
        self.env_id, self.kwargs, self.param_names = env_id, dict(kwargs), param_names
        self.obs_dim, self.continuous = obs_dim, continuous
        self.vector, self.workers = vector, workers
        self._groups: dict[int, EnvGroup] = {}
        self._next = itertools.count(1)
        self._table_lock = threading.Lock()
        self.failure: HostEnvError | None = None  # the last error a callback raised (XLA reports it as text)

    # ------------------------------------------------------------------ host side
    def _rows(self, observations: list) -> np.ndarray:
        return observation_rows(observations, self.obs_dim)

    def _open_unguarded(self, seeds, *params):
        seeds, params = np.asarray(seeds), tuple(np.asarray(p) for p in params)
        n = len(seeds)
        group = EnvGroup(self.env_id, self.kwargs, self.param_names, n, self.vector, self.workers)
        with self._table_lock:
            gid = next(self._next)
            self._groups[gid] = group
        rows = np.arange(n)
        with group.lock:
            obs = self._rows(group.reset(rows, seeds, scenario_values(params, rows)))
        state = np.stack([np.full(n, gid, np.int32), rows.astype(np.int32)], axis=1)
        return obs, state

    def _group(self, state: np.ndarray) -> EnvGroup:
        gids = np.unique(state[:, 0])
        if len(gids) != 1 or not np.array_equal(state[:, 1], np.arange(len(state))):
            raise HostEnvError(f"{PREFIX}{self.env_id}: a batch of host envs must be one whole group, in order")
        group = self._groups.get(int(gids[0]))
        if group is None:
            raise HostEnvError(f"{PREFIX}{self.env_id}: env group {int(gids[0])} is not open in this process (a host "
                               "env's state cannot be restored from a checkpoint)")
        return group

    def _reset_where_unguarded(self, state, mask, obs, seeds, *params):
        state, mask, obs = np.asarray(state), np.asarray(mask), np.array(obs, np.float32)
        seeds, params = np.asarray(seeds), tuple(np.asarray(p) for p in params)
        group = self._group(state)
        rows = np.flatnonzero(mask)
        if rows.size:
            with group.lock:
                obs[rows] = self._rows(group.reset(rows, seeds[rows], scenario_values(params, rows)))
        return obs, state

    def _step_unguarded(self, state, actions):
        state, actions = np.asarray(state), np.asarray(actions)
        group = self._group(state)
        if not self.continuous:
            actions = actions.astype(np.int64)
        with group.lock:
            results = group.step(actions)
        obs = self._rows([r[0] for r in results])
        reward = np.asarray([r[1] for r in results], np.float32)
        terminated = np.asarray([r[2] for r in results], bool)
        truncated = np.asarray([r[3] for r in results], bool)
        return obs, state, reward, terminated, truncated

    def _guarded(self, method: Callable, shapes: tuple) -> Callable:
        """``method`` for io_callback: an exception is kept in ``failure`` and the program gets zeros instead, as
        it does from every later call: a device whose env failed must still reach the program's collectives, or
        the other devices wait for it until XLA aborts the process. The host raises the failure when the program
        returns (``raise_failure``), before anything of it is checkpointed."""
        def call(*args):
            if self.failure is None:
                try:
                    return method(*args)
                except HostEnvError as exc:
                    self.failure = exc
                except Exception as exc:  # noqa: BLE001 - any env error is reported by raise_failure
                    self.failure = HostEnvError(f"{PREFIX}{self.env_id}: {type(exc).__name__}: {exc}")
            return tuple(np.zeros(s.shape, s.dtype) for s in shapes)
        return call

    def raise_failure(self) -> None:
        """Raise (and clear) the error an env raised inside a compiled program, if one did."""
        failure, self.failure = self.failure, None
        if failure is not None:
            raise failure

    def close_all(self) -> None:
        """Close every group of envs this process opened (their worker processes too)."""
        with self._table_lock:
            groups, self._groups = list(self._groups.values()), {}
        for group in groups:
            group.close()

    # ------------------------------------------------------------------ device side
    def _param_leaves(self, params) -> list[jax.Array]:
        return [jnp.asarray(getattr(params, name)) for name in self.param_names]

    def reset_batch(self, keys: jax.Array, params: Any, current: Any = None, mask: jax.Array | None = None,
                    obs: jax.Array | None = None) -> tuple[jax.Array, Any]:
        from jax.experimental import io_callback

        n = keys.shape[0]
        seeds = jax.random.key_data(keys)[:, -1] if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) else keys[:, -1]
        shapes = (jax.ShapeDtypeStruct((n, self.obs_dim), jnp.float32), jax.ShapeDtypeStruct((n, 2), jnp.int32))
        if current is None:
            return io_callback(self._guarded(self._open_unguarded, shapes), shapes, seeds, *self._param_leaves(params))
        return io_callback(self._guarded(self._reset_where_unguarded, shapes), shapes, current, mask, obs, seeds,
                           *self._param_leaves(params))

    def step_batch(self, state: jax.Array, action: jax.Array):
        from jax.experimental import io_callback

        n = state.shape[0]
        shapes = (jax.ShapeDtypeStruct((n, self.obs_dim), jnp.float32), jax.ShapeDtypeStruct((n, 2), jnp.int32),
                  jax.ShapeDtypeStruct((n,), jnp.float32), jax.ShapeDtypeStruct((n,), bool),
                  jax.ShapeDtypeStruct((n,), bool))
        return io_callback(self._guarded(self._step_unguarded, shapes), shapes, state, action)


class reraise_host_failures:  # noqa: N801 - used as a context manager, like contextlib's
    """Compiled programs run inside it that stepped host envs: an env's error is raised at the end as that env's
    ``HostEnvError`` (env id, step, the exception's message), in place of what the program's zeros led to."""

    def __init__(self, host: HostEnvs | None):
        self.host = host

    def __enter__(self):
        if self.host is not None:
            self.host.failure = None
        return self

    def __exit__(self, kind, exc, tb):
        if self.host is not None and not isinstance(exc, HostEnvError) and self.host.failure is not None:
            self.host.raise_failure()
        return False
