"""Which environment an id names: a gymnax id, ``gymnasium:<id>`` (a Gymnasium env stepped on the host, see
``rlpipe.rl.envs.host``), ``brax:<name>`` (see ``rlpipe.rl.envs.brax``), ``jaxmarl:<id>`` (a multi-agent env as one
joint env, see ``rlpipe.rl.envs.jaxmarl``), or a user class given as ``package.module:ClassName``.

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
    """An environment with the facts the agents need about it, and its batched interface (``reset_batch``,
    ``step_batch``) that the acting code uses: vmapped JAX functions, or host callbacks for a host env."""

    id: str
    env: Any
    default_params: Any
    obs_dim: int
    continuous: bool
    action_dim: int  # continuous: action vector length; discrete: number of actions
    action_low: np.ndarray | None
    action_high: np.ndarray | None
    host: Any = None  # rlpipe.rl.envs.host.HostEnvs for a Gymnasium env, else None
    host_info_keys: tuple[str, ...] = ()  # a host env's step info keys (seen when it was described)

    @functools.cached_property
    def info_keys(self) -> tuple[str, ...]:
        """What a step reports beside the reward: Gymnasium's info keys, or a JAX env's info dict keys (traced
        when first asked: only a config that names env metrics pays for it)."""
        if self.host is not None:
            return self.host_info_keys
        space = self.env.action_space(self.default_params)
        return _info_keys(self.env, self.default_params, space)

    def reset_batch(self, keys: Any, params: Any, current: Any = None, mask: Any = None, obs: Any = None):
        """``(obs, env_state)`` of envs starting episodes from ``keys`` and ``params`` (leading [num_envs] axis).
        With ``current`` (the envs' state) and ``mask``, only the masked envs of a host env are reset; a JAX env
        computes every env's start and the caller keeps the masked ones."""
        if self.host is not None:
            return self.host.reset_batch(keys, params, current, mask, obs)
        import jax

        return jax.vmap(self.env.reset_env)(keys, params)

    def step_batch(self, keys: Any, state: Any, action: Any, params: Any):
        """``(obs, env_state, reward, terminated, truncated, info)`` of one step of every env (a host env's
        ``info`` inside compiled code is empty: its evaluation reads the info on the host)."""
        if self.host is not None:
            return (*self.host.step_batch(state, action), {})
        import jax

        obs, state, reward, terminated, info = jax.vmap(self.env.step_env)(keys, state, action, params)
        return obs, state, reward, terminated, jax.vmap(self.env.is_truncated)(state, params), info

    def close_host_envs(self) -> None:
        """Close the host envs this process opened for training (nothing for a JAX env)."""
        if self.host is not None:
            self.host.close_all()

    @property
    def param_fields(self) -> dict[str, type]:
        """Env parameter names and their Python types (int or float), as scenarios store them."""
        out = {}
        for f in dataclasses.fields(self.default_params):
            value = getattr(self.default_params, f.name)
            out[f.name] = int if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else float
        return out


def make_env(env_id: str, kwargs: dict | None = None, vector: str = "sync", workers: int = 2) -> EnvSpec:
    """Instantiate ``env_id`` (with ``kwargs`` for its constructor, where it takes them) and describe it, once per
    process and arguments; raises ValueError with the reason when it cannot. ``vector`` and ``workers`` say how a
    host env's copies are stepped (``sync``: in this process; ``async``: in ``workers`` worker processes)."""
    import json

    return _make_env(env_id, json.dumps(kwargs or {}, sort_keys=True), vector, workers)


def env_spec(env_config: Any) -> EnvSpec:
    """``make_env`` for an ``env`` config section."""
    return make_env(env_config.id, dict(env_config.kwargs), env_config.vector, env_config.workers)


@functools.lru_cache(maxsize=32)
def _make_env(env_id: str, kwargs_json: str, vector: str, workers: int) -> EnvSpec:
    import json

    kwargs = json.loads(kwargs_json)
    if env_id.startswith("gymnasium:"):
        return _gymnasium_env(env_id, kwargs, vector, workers)
    if env_id.startswith("brax:"):
        from rlpipe.rl.envs.brax import make_brax

        env = make_brax(env_id.removeprefix("brax:"), kwargs)
        return _describe(env_id, env, env.default_params)
    if env_id.startswith("jaxmarl:"):
        from rlpipe.rl.envs.jaxmarl import make_jaxmarl

        env = make_jaxmarl(env_id.removeprefix("jaxmarl:"), kwargs)
        return _describe(env_id, env, env.default_params)
    if kwargs:
        raise ValueError(f"env.kwargs are for Gymnasium, Brax and JaxMARL envs; {env_id} takes its parameters from "
                         "scenarios (scenarios.ranges)")
    if ":" in env_id:
        from rlpipe.rl.imports import import_object

        env = import_object(env_id)()
        missing = [name for name in _REQUIRED if not hasattr(env, name)]
        if missing:
            raise ValueError(f"{env_id} lacks the gymnax Environment interface: missing {', '.join(missing)}")
        params = env.default_params
    elif env_id in gymnax.registered_envs:
        env, params = gymnax.make(env_id)
    else:
        import difflib

        close = difflib.get_close_matches(env_id, gymnax.registered_envs, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(f"unknown environment; {hint}gymnax ids are {', '.join(gymnax.registered_envs)}; "
                         "or 'gymnasium:<id>', 'brax:<name>', 'jaxmarl:<id>', or a user class as "
                         "'package.module:ClassName'")
    return _describe(env_id, env, params)


def _gymnasium_env(env_id: str, kwargs: dict, vector: str, workers: int) -> EnvSpec:
    from rlpipe.rl.envs.host import HostEnvs
    from rlpipe.rl.envs.host_describe import PREFIX, describe, params_struct

    name = env_id.removeprefix(PREFIX)
    facts = describe(name, kwargs)
    params = params_struct(name, facts["params"])
    envs = HostEnvs(name, kwargs, tuple(facts["params"]), facts["obs_dim"], facts["continuous"], vector, workers)
    return EnvSpec(env_id, envs, params, facts["obs_dim"], facts["continuous"], facts["action_dim"], facts["low"],
                   facts["high"], host=envs, host_info_keys=tuple(facts["info_keys"]))


def _describe(env_id: str, env: Any, params: Any) -> EnvSpec:
    """The EnvSpec of a JAX env with the gymnax interface."""
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


def _info_keys(env: Any, params: Any, space: Any) -> tuple[str, ...]:
    """The keys of the info dict a JAX env's step returns (traced, nothing is run); () if it is no dict."""
    import jax

    def one_step(key):
        obs, state = env.reset_env(key, params)
        action = space.sample(key)
        return env.step_env(key, state, action, params)[4]

    try:
        info = jax.eval_shape(one_step, jax.random.PRNGKey(0))
    except Exception:  # an env that cannot be traced here reports no keys; training will say what is wrong
        return ()
    return tuple(sorted(info)) if isinstance(info, dict) else ()


def check_env_id(env_id: str, key: str, continuous: bool | None = None, env_config: Any = None,
                 multi_agent: bool = False) -> EnvSpec:
    """``make_env`` for config validation: every failure is a ConfigError naming ``key`` (or, for a problem with
    the env's keyword arguments, ``env.kwargs`` beside it). Only a ``multi_agent`` algorithm takes a joint env
    whose agents act discretely (their actions are per-agent scores, see ``rlpipe.rl.envs.jaxmarl``)."""
    try:
        spec = env_spec(env_config) if env_config is not None else make_env(env_id)
    except Exception as exc:  # a user env may fail in any way while importing or constructing
        where = key
        if "keyword argument" in str(exc) and env_config is not None:
            where = key.rsplit(".", 1)[0] + ".kwargs"
        raise ConfigError(where, f"{env_id!r}: {exc}") from exc
    if continuous is not None and spec.continuous != continuous:
        kind = "continuous (Box)" if continuous else "discrete"
        raise ConfigError(key, f"{env_id!r} has a {'continuous' if spec.continuous else 'discrete'} action space; "
                               f"this algorithm needs a {kind} one")
    if env_id.startswith("jaxmarl:") and spec.env.discrete and not multi_agent:
        raise ConfigError(key, f"{env_id!r} is a multi-agent env with discrete actions: train it with the masac "
                               "pipeline (or give it continuous actions, e.g. MPE tasks' env.kwargs "
                               "{action_type: Continuous})")
    return spec


# The named observation masks (``env.observation_mask: <name>``): per base env id (a gymnax id, or the Gymnasium id
# after 'gymnasium:'; both lay these tasks' observations out alike), the indices kept.
NAMED_MASKS: dict[str, dict[str, tuple[int, ...]]] = {
    "no_velocity": {
        "CartPole-v1": (0, 2),  # x, theta (without x_dot, theta_dot)
        "Pendulum-v1": (0, 1),  # cos theta, sin theta (without theta_dot)
        "MountainCar-v0": (0,),  # position
        "MountainCarContinuous-v0": (0,),
        "Acrobot-v1": (0, 1, 2, 3),  # cos/sin of both joints (without their angular velocities)
    },
}


def observation_mask(mask: Any, env_id: str, obs_dim: int, key: str) -> tuple[int, ...] | None:
    """The observation indices ``env.observation_mask`` keeps for ``env_id`` (an observation of ``obs_dim``
    values), sorted; None for all. A bad index or an unknown variant is a ConfigError on ``key``."""
    if mask is None:
        return None
    if isinstance(mask, str):
        variants = NAMED_MASKS.get(mask)
        base = env_id.removeprefix("gymnasium:")
        if variants is None:
            raise ConfigError(key, f"{mask!r} is no named mask; named masks: {', '.join(map(repr, NAMED_MASKS))}, "
                                   "or a list of the observation indices kept")
        if base not in variants:
            raise ConfigError(key, f"{mask!r} is defined for {', '.join(variants)}, not {env_id}: give the "
                                   f"observation indices kept as a list (0 .. {obs_dim - 1})")
        mask = variants[base]
    bad = [i for i in mask if not 0 <= i < obs_dim]
    if bad:
        raise ConfigError(key, f"index {bad[0]} is outside {env_id}'s observation of {obs_dim} values "
                               f"(0 .. {obs_dim - 1})")
    if len(mask) == obs_dim:
        return None
    return tuple(sorted(mask))
