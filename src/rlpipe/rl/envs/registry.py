"""Which environment an id names: a gymnax id, or a user class given as ``package.module:ClassName``.

A user class follows the gymnax ``Environment`` interface: ``default_params`` (a flax struct),
``reset_env(key, params) -> (obs, state)``, ``step_env(key, state, action, params) -> (obs, state, reward,
terminated, info)``, ``is_truncated(state, params)``, ``action_space(params)``, ``observation_space(params)``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from typing import Any

import numpy as np


class _LazyModule(types.ModuleType):
    """Stands in for a module until something reads one of its attributes; then imports it for real."""

    def __getattr__(self, attribute: str):
        del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)
        return getattr(real, attribute)


def _import_lazily(name: str) -> None:
    """Register module ``name`` so that it is imported on first attribute access, not on import. (The standard
    library's LazyLoader does not help here: the import system reads ``__spec__`` on every import, which loads it.)"""
    if name in sys.modules or (spec := importlib.util.find_spec(name)) is None:
        return
    stub = _LazyModule(name)
    stub.__spec__ = spec
    sys.modules[name] = stub


# gymnax imports every env it ships, and its Pong imports seaborn (with scipy.stats: 0.7 s here) for rendering
# alone; seaborn is loaded only if something uses it.
_import_lazily("seaborn")

import gymnax  # noqa: E402
from gymnax.environments import spaces  # noqa: E402

from rlpipe.rl.errors import ConfigError

_REQUIRED = ("default_params", "reset_env", "step_env", "is_truncated", "action_space", "observation_space")


@dataclass(frozen=True)
class EnvSpec:
    """An environment with the facts the agents need about it."""

    id: str
    env: Any
    default_params: Any
    obs_dim: int
    continuous: bool
    action_dim: int  # continuous: action vector length; discrete: number of actions
    action_low: np.ndarray | None
    action_high: np.ndarray | None

    @property
    def param_fields(self) -> dict[str, type]:
        """Env parameter names and their Python types (int or float), as scenarios store them."""
        out = {}
        for f in dataclasses.fields(self.default_params):
            value = getattr(self.default_params, f.name)
            out[f.name] = int if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else float
        return out


@functools.lru_cache(maxsize=32)
def make_env(env_id: str) -> EnvSpec:
    """Instantiate ``env_id`` and describe it (once per process and id); raises ValueError with the reason when it
    cannot."""
    if ":" in env_id:
        module_name, _, class_name = env_id.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"cannot import module {module_name!r}: {exc}") from exc
        cls = getattr(module, class_name, None)
        if cls is None:
            raise ValueError(f"module {module_name!r} has no attribute {class_name!r}")
        env = cls()
        missing = [name for name in _REQUIRED if not hasattr(env, name)]
        if missing:
            raise ValueError(f"{env_id} lacks the gymnax Environment interface: missing {', '.join(missing)}")
        params = env.default_params
    elif env_id in gymnax.registered_envs:
        env, params = gymnax.make(env_id)
    else:
        raise ValueError(f"unknown environment; gymnax ids are {', '.join(gymnax.registered_envs)}, "
                         "or name a user class as 'package.module:ClassName'")
    obs_shape = np.shape(env.observation_space(params).shape)
    obs_dim = int(np.prod(env.observation_space(params).shape)) if obs_shape else 1
    space = env.action_space(params)
    if isinstance(space, spaces.Discrete):
        return EnvSpec(env_id, env, params, obs_dim, False, int(space.n), None, None)
    if isinstance(space, spaces.Box):
        shape = tuple(space.shape)
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape).copy()
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape).copy()
        return EnvSpec(env_id, env, params, obs_dim, True, int(np.prod(shape)), low, high)
    raise ValueError(f"action space {type(space).__name__} is not supported (Box or Discrete only)")


def check_env_id(env_id: str, key: str, continuous: bool | None = None) -> EnvSpec:
    """``make_env`` for config validation: every failure is a ConfigError naming ``key``."""
    try:
        spec = make_env(env_id)
    except Exception as exc:  # a user env may fail in any way while importing or constructing
        raise ConfigError(key, f"{env_id!r}: {exc}") from exc
    if continuous is not None and spec.continuous != continuous:
        kind = "continuous (Box)" if continuous else "discrete"
        raise ConfigError(key, f"{env_id!r} has a {'continuous' if spec.continuous else 'discrete'} action space; "
                               f"this algorithm needs a {kind} one")
    return spec
