"""Brax environments by name (``brax:hopper``, ``brax:ant``, ...), JAX-native: stepped inside the compiled training
program like gymnax envs, through the gymnax interface this adapter gives them.

Brax is an optional extra (``pip install -e '.[brax]'``) and says itself that it is no longer actively maintained;
GPU users may prefer MuJoCo Playground / MJX. ``env.kwargs`` go to ``brax.envs.get_environment`` (e.g.
``backend: spring``, the fastest on CPU, with simpler physics than the default ``generalized``). The time limit is
the scenario parameter ``max_steps_in_episode`` (1000 by default, as Brax's own episode wrapper); episodes start from
their scenario's reset key, and ``env.metrics`` can name any of the env's own metrics (``reward_forward``,
``x_velocity``...).
"""

from __future__ import annotations

import contextlib
import functools
import io
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from rlpipe.compat import brax_env_names

EPISODE_STEPS = 1000


@struct.dataclass
class BraxParams:
    max_steps_in_episode: int = EPISODE_STEPS


@struct.dataclass
class BraxState:
    inner: Any  # the Brax env's own State
    obs: jax.Array  # the observation (a film draws its components)
    time: jax.Array  # steps taken in this episode


def _import_brax():
    try:
        # mujoco.mjx prints "Failed to import warp ..." on stdout for an optional GPU backend this never uses
        with contextlib.redirect_stdout(io.StringIO()):
            from brax import envs
    except ImportError as exc:
        raise ValueError(f"Brax is not installed ({exc}); in this project: pip install -e '.[brax]'") from exc
    return envs


class BraxEnv:
    """A Brax env with the gymnax interface (``reset_env``, ``step_env``, ``is_truncated``, spaces)."""

    def __init__(self, name: str, kwargs: dict[str, Any]):
        envs = _import_brax()
        check_name("Brax", name, brax_env_names(envs))
        try:
            self.inner = envs.get_environment(name, **kwargs)
        except TypeError as exc:
            raise ValueError(f"brax.envs.get_environment({name!r}, **env.kwargs) refused the keyword arguments: "
                             f"{exc}") from exc
        self.name = name

    @property
    def default_params(self) -> BraxParams:
        return BraxParams()

    def reset_env(self, key: jax.Array, params: BraxParams):
        state = self.inner.reset(key)
        return state.obs, BraxState(state, state.obs, jnp.int32(0))

    def step_env(self, key: jax.Array, state: BraxState, action: jax.Array, params: BraxParams):
        inner = self.inner.step(state.inner, action)
        return (inner.obs, BraxState(inner, inner.obs, state.time + 1), inner.reward, inner.done > 0.5,
                dict(inner.metrics))

    def is_truncated(self, state: BraxState, params: BraxParams) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    def observation_space(self, params: BraxParams) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.observation_size,), jnp.float32)

    @functools.cached_property
    def observation_size(self) -> int:
        """The length of an observation, from a traced reset (Brax's own ``observation_size`` runs one, op by op:
        seconds of compiling hundreds of small programs before a config is even checked)."""
        return int(jax.eval_shape(self.inner.reset, jax.random.PRNGKey(0)).obs.shape[-1])

    def action_space(self, params: BraxParams) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self.inner.action_size,), jnp.float32)


def check_name(library: str, name: str, known: list[str]) -> None:
    """A ValueError naming the closest of ``library``'s env names when ``name`` is none of them."""
    if name in known:
        return
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(f"{library} has no env {name!r}; {hint}its envs are {', '.join(known)}")


def make_brax(name: str, kwargs: dict[str, Any]) -> BraxEnv:
    return BraxEnv(name, kwargs)
