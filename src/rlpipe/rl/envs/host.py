"""Gymnasium environments (``gymnasium:<id>``), stepped on the host from inside the compiled training program.

The training chunk stays one compiled program: where it steps or resets its envs, a ``jax.experimental.io_callback``
hands the actions to a Gymnasium vector env on the host (sync: in this process; async: one worker process per env)
and returns observations, rewards and episode ends as arrays. Action selection and every update stay compiled. Each
device shard of the mesh has its own group of envs; the envs' state on the device is only their address
(``[group, index]`` per env), so results flow through data dependencies and the callbacks run in program order.

Scenarios keep their meaning: an env starts an episode with its scenario's reset seed, and numeric keyword arguments
of the env's constructor (Pendulum's ``g``, a MuJoCo task's ``reset_noise_scale``...) and ``max_steps_in_episode``
are scenario parameters, so ``scenarios.ranges`` can draw them; an env is rebuilt when a reset brings it a scenario
with other values. Evaluation and films run on the host directly (``HostEvaluator``, ``host_trajectory``).

A host env cannot be snapshotted: a checkpoint holds everything but the envs' internal state, and a resumed run
starts fresh episodes (``rlpipe.rl.training`` says so).
"""

from __future__ import annotations

import difflib
import inspect
import itertools
import threading
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

PREFIX = "gymnasium:"
EXTRAS = {"mujoco": "mujoco", "box2d": "box2d"}  # gymnasium module folder -> the project's extra that installs it


class EnvUnavailable(ValueError):
    """The env cannot be made; the message says why and, for a missing optional extra, which install fixes it."""


class HostEnvError(RuntimeError):
    """A host env raised inside ``reset`` or ``step``: the message names the env id, the call, the env's step count
    and the exception."""


def _gymnasium():
    try:
        import gymnasium
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise EnvUnavailable("gymnasium is not installed: pip install -e .") from exc
    return gymnasium


def _missing_extra(exc: BaseException) -> str:
    text = str(exc)
    for folder, extra in EXTRAS.items():
        if folder in text.lower():
            return f"{text.strip()} (in this project: pip install -e '.[{extra}]')"
    return text.strip()


_MUJOCO_QUIETED = False


def _quiet_mujoco(env_id: str) -> None:
    """MuJoCo prints a warning about the XML of Gymnasium's own tasks ('settotalmass' is deprecated) to stderr for
    every env built (64 per evaluation), and appends it to MUJOCO_LOG.TXT in the working directory: its warnings go
    to the ``mujoco`` logger instead, at DEBUG (``kedro run -v`` shows them)."""
    global _MUJOCO_QUIETED
    if _MUJOCO_QUIETED:
        return
    entry = getattr(_gymnasium().spec(registered_name(env_id)), "entry_point", "")
    if "mujoco" not in str(entry):
        return
    import logging

    import mujoco

    log = logging.getLogger("mujoco")
    mujoco.set_mju_user_warning(lambda message: log.debug("%s", message))
    _MUJOCO_QUIETED = True


def registered_name(env_id: str) -> str:
    """The registry name of ``env_id``; ``module:Env-v0`` first imports the module that registers it (as
    ``gymnasium.make`` does)."""
    if ":" not in env_id:
        return env_id
    import importlib

    module, _, name = env_id.partition(":")
    importlib.import_module(module)
    return name


def constructor_params(env_id: str, kwargs: Mapping[str, Any]) -> dict[str, int | float]:
    """The env's scenario parameters: numeric keyword arguments of its constructor (registered and ``kwargs``
    values over the constructor's defaults; booleans excluded) and ``max_steps_in_episode``."""
    gymnasium = _gymnasium()
    from gymnasium.envs.registration import load_env_creator

    spec = gymnasium.spec(registered_name(env_id))
    creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    values: dict[str, Any] = {}
    try:
        signature = inspect.signature(creator)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        for name, p in signature.parameters.items():
            if p.default is not inspect.Parameter.empty:
                values[name] = p.default
    values.update(spec.kwargs or {})
    values.update(kwargs)
    params = {name: value for name, value in values.items()
              if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))}
    params.pop("max_episode_steps", None)
    params["max_steps_in_episode"] = int(kwargs.get("max_episode_steps") or spec.max_episode_steps or 1000)
    return params


def params_struct(env_id: str, values: Mapping[str, int | float]):
    """A flax struct of the scenario parameters, its fields defaulting to ``values`` (ints stay ints)."""
    defaults = {name: int(v) if isinstance(v, (int, np.integer)) else float(v) for name, v in values.items()}
    namespace = {"__annotations__": {name: type(v) for name, v in defaults.items()}, **defaults}
    return struct.dataclass(type("GymnasiumParams", (), namespace))()


class ScenarioEnv:
    """One Gymnasium env that is rebuilt when a reset brings it a scenario with other constructor values."""

    def __init__(self, env_id: str, kwargs: Mapping[str, Any], param_names: tuple[str, ...]):
        self.env_id, self.kwargs, self.param_names = env_id, dict(kwargs), param_names
        self.values: tuple | None = None
        self.env = None
        self.steps = 0

    def _build(self, values: tuple) -> None:
        if self.env is not None:
            self.env.close()
        scenario = dict(zip(self.param_names, values))
        max_steps = int(scenario.pop("max_steps_in_episode"))
        _quiet_mujoco(self.env_id)
        self.env = _gymnasium().make(self.env_id, **{**self.kwargs, **scenario}, max_episode_steps=max_steps)
        self.values = values

    def reset(self, seed: int, values: tuple) -> np.ndarray:
        if values != self.values:
            self._build(values)
        self.steps = 0
        try:
            obs, _ = self.env.reset(seed=int(seed))
        except Exception as exc:
            raise HostEnvError(f"{PREFIX}{self.env_id} raised in reset(seed={seed}): "
                               f"{type(exc).__name__}: {exc}") from exc
        return obs

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.steps += 1
        try:
            return self.env.step(action)
        except Exception as exc:
            raise HostEnvError(f"{PREFIX}{self.env_id} raised in step {self.steps} of its episode: "
                               f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


def _worker(connection, env_id, kwargs, param_names, count) -> None:  # pragma: no cover - runs in a child process
    envs = [ScenarioEnv(env_id, kwargs, param_names) for _ in range(count)]
    while True:
        command, payload = connection.recv()
        try:
            if command == "reset":
                out = [envs[i].reset(seed, values) for i, seed, values in payload]
            elif command == "step":
                out = [envs[i].step(action)[:4] for i, action in enumerate(payload)]
            else:
                for env in envs:
                    env.close()
                connection.send(("ok", None))
                return
            connection.send(("ok", out))
        except Exception as exc:
            connection.send(("error", str(exc)))


class EnvGroup:
    """The envs of one device shard (or one evaluation): a list of ``ScenarioEnv`` in this process (sync) or
    spread over worker processes (async, one pipe per worker)."""

    def __init__(self, env_id: str, kwargs: Mapping[str, Any], param_names: tuple[str, ...], count: int,
                 vector: str, workers: int):
        self.count = count
        self.lock = threading.Lock()
        self._local = [ScenarioEnv(env_id, kwargs, param_names) for _ in range(count)] if vector == "sync" else None
        self._pipes, self._processes, self._slices = [], [], []
        if vector == "async":
            import multiprocessing as mp

            context = mp.get_context("spawn")
            workers = max(1, min(workers, count))
            bounds = np.linspace(0, count, workers + 1).astype(int)
            for lo, hi in itertools.pairwise(bounds):
                parent, child = context.Pipe()
                process = context.Process(target=_worker, args=(child, env_id, dict(kwargs), param_names, hi - lo),
                                          daemon=True)
                process.start()
                child.close()
                self._pipes.append(parent)
                self._processes.append(process)
                self._slices.append((lo, hi))

    def _ask(self, requests: list) -> list:
        for pipe, request in zip(self._pipes, requests):
            pipe.send(request)
        out = []
        for pipe in self._pipes:
            status, value = pipe.recv()
            if status != "ok":
                raise HostEnvError(value)
            out.append(value)
        return out

    def reset(self, index: np.ndarray, seeds: np.ndarray, values: list[tuple]) -> list[np.ndarray]:
        """Reset envs ``index`` with their seeds and scenario values; their first observations, in that order."""
        if self._local is not None:
            return [self._local[i].reset(s, v) for i, s, v in zip(index, seeds, values)]
        requests, order = [], []
        for lo, hi in self._slices:
            mine = [(int(i) - lo, int(s), v) for i, s, v in zip(index, seeds, values) if lo <= i < hi]
            requests.append(("reset", mine))
            order += [int(i) for i in index if lo <= i < hi]
        flat = [obs for part in self._ask(requests) for obs in part]
        position = {i: k for k, i in enumerate(order)}
        return [flat[position[int(i)]] for i in index]

    def step(self, actions: np.ndarray) -> list[tuple]:
        if self._local is not None:
            return [env.step(a)[:4] for env, a in zip(self._local, actions)]
        parts = self._ask([("step", list(actions[lo:hi])) for lo, hi in self._slices])
        return [result for part in parts for result in part]

    def close(self) -> None:
        if self._local is not None:
            for env in self._local:
                env.close()
            return
        for pipe, process in zip(self._pipes, self._processes):
            try:
                pipe.send(("close", None))
                pipe.recv()
            except (OSError, EOFError):
                pass
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


class HostEnvs:
    """A Gymnasium env id as the batched env interface ``EnvSpec`` offers (``reset_batch``, ``step_batch``),
    through io_callbacks; groups of envs live in a table of this process."""

    def __init__(self, env_id: str, kwargs: Mapping[str, Any], param_names: tuple[str, ...], obs_dim: int,
                 continuous: bool, action_shape: tuple[int, ...], vector: str = "sync", workers: int = 2):
        self.env_id, self.kwargs, self.param_names = env_id, dict(kwargs), param_names
        self.obs_dim, self.continuous, self.action_shape = obs_dim, continuous, action_shape
        self.vector, self.workers = vector, workers
        self._groups: dict[int, EnvGroup] = {}
        self._next = itertools.count(1)
        self._table_lock = threading.Lock()
        self.failure: HostEnvError | None = None  # the last error a callback raised (XLA reports it as text)

    # ------------------------------------------------------------------ host side
    def _values(self, params: tuple[np.ndarray, ...], rows: np.ndarray) -> list[tuple]:
        return [tuple(p[r].item() for p in params) for r in rows]

    def _obs(self, observations: list) -> np.ndarray:
        return np.asarray([np.ravel(o) for o in observations], np.float32).reshape(len(observations), self.obs_dim)

    def _open_unguarded(self, seeds, *params):
        seeds, params = np.asarray(seeds), tuple(np.asarray(p) for p in params)
        n = len(seeds)
        group = EnvGroup(self.env_id, self.kwargs, self.param_names, n, self.vector, self.workers)
        with self._table_lock:
            gid = next(self._next)
            self._groups[gid] = group
        rows = np.arange(n)
        with group.lock:
            obs = self._obs(group.reset(rows, seeds, self._values(params, rows)))
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
                obs[rows] = self._obs(group.reset(rows, seeds[rows], self._values(params, rows)))
        return obs, state

    def _step_unguarded(self, state, actions):
        state, actions = np.asarray(state), np.asarray(actions)
        group = self._group(state)
        if not self.continuous:
            actions = actions.astype(np.int64)
        with group.lock:
            results = group.step(actions)
        obs = self._obs([r[0] for r in results])
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


def describe(env_id: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Make the env once and describe it: obs size, action space, scenario parameters, the info keys of a first
    step. Raises ``EnvUnavailable`` naming the problem (unknown id with close matches, bad kwargs, missing extra)."""
    gymnasium = _gymnasium()
    try:
        gymnasium.spec(registered_name(env_id))
    except ImportError as exc:
        raise EnvUnavailable(f"cannot import the module of {env_id!r}: {exc}") from exc
    except gymnasium.error.Error:
        registry = list(gymnasium.envs.registry)
        close = difflib.get_close_matches(env_id.rpartition(":")[2], registry, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise EnvUnavailable(f"no Gymnasium env {env_id!r} is registered{hint}") from None
    try:
        _quiet_mujoco(env_id)
        env = gymnasium.make(env_id, **kwargs)
    except gymnasium.error.DependencyNotInstalled as exc:
        raise EnvUnavailable(_missing_extra(exc)) from exc
    except ImportError as exc:
        raise EnvUnavailable(_missing_extra(exc)) from exc
    except TypeError as exc:
        raise EnvUnavailable(f"gymnasium.make({env_id!r}, **env.kwargs) refused the keyword arguments: {exc}") from exc
    try:
        from gymnasium import spaces

        obs_space, action_space = env.observation_space, env.action_space
        if not isinstance(obs_space, spaces.Box):
            raise EnvUnavailable(f"observation space {type(obs_space).__name__} is not supported (Box only)")
        obs, _ = env.reset(seed=0)
        _, _, _, _, info = env.step(action_space.sample())
        out = {"obs_dim": int(np.prod(obs_space.shape)), "info_keys": sorted(info)}
        if isinstance(action_space, spaces.Discrete):
            out.update(continuous=False, action_dim=int(action_space.n), action_shape=(), low=None, high=None)
        elif isinstance(action_space, spaces.Box):
            low, high = np.asarray(action_space.low, np.float32), np.asarray(action_space.high, np.float32)
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise EnvUnavailable("the action space is unbounded; SAC and PPO need finite Box bounds")
            out.update(continuous=True, action_dim=int(np.prod(action_space.shape)),
                       action_shape=tuple(action_space.shape), low=low.ravel(), high=high.ravel())
        else:
            raise EnvUnavailable(f"action space {type(action_space).__name__} is not supported (Box or Discrete only)")
    finally:
        env.close()
    out["params"] = constructor_params(env_id, kwargs)
    return out


# ---------------------------------------------------------------------------------------- evaluation and films
def _scenario_rows(host: HostEnvs, scenarios) -> tuple[np.ndarray, list[tuple]]:
    keys = np.asarray(jax.device_get(scenarios.reset_keys))
    seeds = keys[:, -1]
    params = tuple(np.asarray(jax.device_get(getattr(scenarios.params, name))) for name in host.param_names)
    return seeds, host._values(params, np.arange(len(seeds)))  # noqa: SLF001


class HostEvaluator:
    """``evaluator(params, scenarios) -> (returns, lengths)``: every scenario once on host envs (reset with its
    seed and values, stepped until its episode ends), actions from the compiled deterministic policy. The same
    interface as ``rlpipe.rl.acting.Evaluator``; info values named in ``metrics`` are collected per scenario."""

    def __init__(self, host: HostEnvs, policy_of: Callable[[Any], Callable], max_steps: int,
                 metrics: tuple[str, ...] = ()):
        self.host, self.max_steps, self.metrics = host, max_steps, metrics
        from rlpipe.rl.acting import as_recurrent

        self._policy_of = lambda params: as_recurrent(policy_of(params))
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
        obs = host._obs(group.reset(rows, seeds, values))  # noqa: SLF001
        total, length = np.zeros(n, np.float64), np.zeros(n, np.int32)
        running = np.ones(n, bool)
        sums = {m: np.zeros(n) for m in self.metrics}
        last = {m: np.full(n, np.nan) for m in self.metrics}
        envs = group._local  # noqa: SLF001 - sync group: step only the envs still running
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


def host_trajectory(host: HostEnvs, params: Any, reset_seed: int, policy: Callable, steps: int
                    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """One episode on a host env, as ``rlpipe.rl.acting.trajectory`` gives it for JAX envs: "states" [steps+1]
    (here the observation components ``obs[i]``), rewards [steps] and the alive mask [steps]. ``policy``:
    observations [1, obs_dim] -> env actions, or a ``Recurrent`` one (its state carried from zeros)."""
    from rlpipe.rl.acting import as_recurrent

    policy = as_recurrent(policy)
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
