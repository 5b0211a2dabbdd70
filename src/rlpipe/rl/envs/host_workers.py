"""The Gymnasium envs behind a host env: one env per scenario slot, rebuilt when a reset brings other constructor
values (``ScenarioEnv``), and the group of them that one device shard or one evaluation steps, in this process
(sync) or in worker processes (async, ``EnvGroup``). Pure host code: no JAX here.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlpipe.rl.envs.host_describe import PREFIX, import_gymnasium, quiet_mujoco


class HostEnvError(RuntimeError):
    """A host env raised inside ``reset`` or ``step``: the message names the env id, the call, the env's step count
    and the exception."""


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
        quiet_mujoco(self.env_id)
        self.env = import_gymnasium().make(self.env_id, **{**self.kwargs, **scenario}, max_episode_steps=max_steps)
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

    @property
    def local_envs(self) -> list[ScenarioEnv]:
        """The envs of a sync group, to step one by one (an async group has none here)."""
        if self._local is None:
            raise HostEnvError("an async env group has no envs in this process")
        return self._local

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


def scenario_values(params: tuple[np.ndarray, ...], rows: np.ndarray) -> list[tuple]:
    """The constructor values of scenario ``rows``, one tuple per row (``params``: one array per parameter)."""
    return [tuple(p[r].item() for p in params) for r in rows]


def observation_rows(observations: list, obs_dim: int) -> np.ndarray:
    """Observations of any shape as float32 rows [len(observations), obs_dim]."""
    return np.asarray([np.ravel(o) for o in observations], np.float32).reshape(len(observations), obs_dim)
