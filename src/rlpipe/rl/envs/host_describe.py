"""What a Gymnasium env id (``gymnasium:<id>``) offers, found by making the env once: its observation size, action
space, info keys and scenario parameters (the numeric keyword arguments of its constructor and
``max_steps_in_episode``). Every way the env cannot be made is an ``EnvUnavailable`` naming the fix.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
from flax import struct

PREFIX = "gymnasium:"
EXTRAS = {"mujoco": "mujoco", "box2d": "box2d"}  # gymnasium module folder -> the project's extra that installs it


class EnvUnavailable(ValueError):
    """The env cannot be made; the message says why and, for a missing optional extra, which install fixes it."""


def import_gymnasium():
    try:
        import gymnasium
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise EnvUnavailable("gymnasium is not installed: pip install -e .") from exc
    return gymnasium


def missing_extra_hint(exc: BaseException) -> str:
    text = str(exc)
    for folder, extra in EXTRAS.items():
        if folder in text.lower():
            return f"{text.strip()} (in this project: pip install -e '.[{extra}]')"
    return text.strip()


_MUJOCO_QUIETED = False


def quiet_mujoco(env_id: str) -> None:
    """MuJoCo prints a warning about the XML of Gymnasium's own tasks ('settotalmass' is deprecated) to stderr for
    every env built (64 per evaluation), and appends it to MUJOCO_LOG.TXT in the working directory: its warnings go
    to the ``mujoco`` logger instead, at DEBUG (``kedro run -v`` shows them)."""
    global _MUJOCO_QUIETED
    if _MUJOCO_QUIETED:
        return
    entry = getattr(import_gymnasium().spec(registered_name(env_id)), "entry_point", "")
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
    gymnasium = import_gymnasium()
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


def describe(env_id: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Make the env once and describe it: obs size, action space, scenario parameters, the info keys of a first
    step. Raises ``EnvUnavailable`` naming the problem (unknown id with close matches, bad kwargs, missing extra)."""
    gymnasium = import_gymnasium()
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
        quiet_mujoco(env_id)
        env = gymnasium.make(env_id, **kwargs)
    except gymnasium.error.DependencyNotInstalled as exc:
        raise EnvUnavailable(missing_extra_hint(exc)) from exc
    except ImportError as exc:
        raise EnvUnavailable(missing_extra_hint(exc)) from exc
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
            out.update(continuous=False, action_dim=int(action_space.n), low=None, high=None)
        elif isinstance(action_space, spaces.Box):
            low, high = np.asarray(action_space.low, np.float32), np.asarray(action_space.high, np.float32)
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise EnvUnavailable("the action space is unbounded; SAC and PPO need finite Box bounds")
            out.update(continuous=True, action_dim=int(np.prod(action_space.shape)), low=low.ravel(),
                       high=high.ravel())
        else:
            raise EnvUnavailable(f"action space {type(action_space).__name__} is not supported (Box or Discrete only)")
    finally:
        env.close()
    out["params"] = constructor_params(env_id, kwargs)
    return out
