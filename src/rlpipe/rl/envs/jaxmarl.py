"""JaxMARL multi-agent environments by id (``jaxmarl:MPE_simple_spread_v3``), JAX-native, as one joint env.

The adapter gives a JaxMARL env the gymnax interface the rest of rlpipe speaks, as a *joint* env: the observation is
every agent's observation side by side (agent order of ``env.agents``, each padded to the widest), the action every
agent's action side by side, the reward the team's (the sum of the agents' rewards), and the episode ends for all
agents together. A multi-agent algorithm (``masac``) reads the layout from ``num_agents``, ``agent_obs_dim`` and
``agent_action_dim`` and acts per agent; the replay buffer, scenarios, evaluation and checkpoints see one env.

Each step's info reports every agent's own reward (``reward_<agent>``) and, for the MPE spread tasks, the
``occupied_landmarks`` (landmarks with an agent within 0.1) and the agent ``collisions`` of that step: name them in
``env.metrics``. ``env.kwargs`` go to ``jaxmarl.make`` (e.g. ``action_type: Continuous`` for MPE tasks; ``num_agents``).
The time limit is the scenario parameter ``max_steps_in_episode`` (the env's own ``max_steps`` by default).
JaxMARL is an optional extra (``pip install -e '.[marl]'``).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces


@struct.dataclass
class MultiAgentParams:
    max_steps_in_episode: int = 25


@struct.dataclass
class MultiAgentState:
    inner: Any  # the JaxMARL env's own state
    time: jax.Array
    positions: jax.Array  # [entities, 2] where the env has them (MPE: agents first, then landmarks), else [0, 2]
    is_agent: jax.Array  # [entities] bool (a film draws agents and landmarks apart)


@contextlib.contextmanager
def _quiet_stdout():
    """File descriptor 1 to /dev/null meanwhile: jaxmarl prints about optional submodules on import, past a
    redirected ``sys.stdout``."""
    import os
    import sys

    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _import_jaxmarl():
    try:
        with _quiet_stdout():
            import jaxmarl
            import jaxmarl.environments  # noqa: F401  (where the printing happens)
    except ImportError as exc:
        raise ValueError(f"JaxMARL is not installed ({exc}); in this project: pip install -e '.[marl]'") from exc
    return jaxmarl


class JaxMARLEnv:
    """A JaxMARL env as one joint gymnax env (see the module doc)."""

    def __init__(self, name: str, kwargs: dict[str, Any]):
        jaxmarl = _import_jaxmarl()
        from rlpipe.rl.envs.brax import check_name

        check_name("JaxMARL", name, list(jaxmarl.registered_envs))
        try:
            with _quiet_stdout():
                self.inner = jaxmarl.make(name, **kwargs)
        except TypeError as exc:
            raise ValueError(f"jaxmarl.make({name!r}, **env.kwargs) refused the keyword arguments: {exc}") from exc
        self.name = name
        self.agents = list(self.inner.agents)
        self.num_agents = len(self.agents)
        obs_shapes = [self.inner.observation_space(a).shape for a in self.agents]
        self.agent_obs_dim = max(int(np.prod(s)) for s in obs_shapes)
        first = self.inner.action_space(self.agents[0])
        self.discrete = isinstance(first, spaces.Discrete) or type(first).__name__ == "Discrete"
        if self.discrete:
            counts = {int(self.inner.action_space(a).n) for a in self.agents}
            if len(counts) != 1:
                raise ValueError(f"{name}'s agents have different numbers of actions {sorted(counts)}: a shared "
                                 "actor needs one")
            self.num_actions = counts.pop()
            self.agent_action_dim = self.num_actions  # one score per action (see the module doc)
            self.action_low = np.full(self.num_actions, -1.0, np.float32)
            self.action_high = np.full(self.num_actions, 1.0, np.float32)
        else:
            shapes = {tuple(self.inner.action_space(a).shape) for a in self.agents}
            if len(shapes) != 1:
                raise ValueError(f"{name}'s agents have different action shapes {sorted(shapes)}: a shared actor "
                                 "needs one")
            self.num_actions = 0
            self.agent_action_dim = int(np.prod(first.shape))
            self.action_low = np.broadcast_to(np.asarray(first.low, np.float32), first.shape).reshape(-1)
            self.action_high = np.broadcast_to(np.asarray(first.high, np.float32), first.shape).reshape(-1)
        self.spread = hasattr(self.inner, "num_landmarks") and name.startswith("MPE_simple_spread")

    @property
    def default_params(self) -> MultiAgentParams:
        return MultiAgentParams(max_steps_in_episode=int(getattr(self.inner, "max_steps", 25)))

    def _joint_obs(self, obs: dict[str, jax.Array]) -> jax.Array:
        rows = []
        for agent in self.agents:
            o = jnp.reshape(obs[agent], (-1,)).astype(jnp.float32)
            rows.append(jnp.pad(o, (0, self.agent_obs_dim - o.shape[0])))
        return jnp.concatenate(rows)

    def _wrap(self, inner: Any, time: jax.Array) -> MultiAgentState:
        positions = getattr(inner, "p_pos", None)
        if positions is None:
            positions = jnp.zeros((0, 2), jnp.float32)
        is_agent = jnp.arange(positions.shape[0]) < self.num_agents
        return MultiAgentState(inner, time, jnp.asarray(positions, jnp.float32), is_agent)

    def reset_env(self, key: jax.Array, params: MultiAgentParams):
        obs, state = self.inner.reset(key)
        return self._joint_obs(obs), self._wrap(state, jnp.int32(0))

    def step_env(self, key: jax.Array, state: MultiAgentState, action: jax.Array, params: MultiAgentParams):
        per_agent = jnp.reshape(action, (self.num_agents, self.agent_action_dim))
        if self.discrete:
            per_agent = jnp.argmax(per_agent, axis=-1)
        actions = {agent: per_agent[i] for i, agent in enumerate(self.agents)}
        obs, inner, rewards, dones, _ = self.inner.step_env(key, state.inner, actions)
        time = state.time + 1
        info = {f"reward_{agent}": jnp.asarray(rewards[agent], jnp.float32) for agent in self.agents}
        if self.spread:
            info.update(self._spread_metrics(inner))
        reward = sum(jnp.asarray(rewards[a], jnp.float32) for a in self.agents)
        # the env's own end (MPE: its time limit) counts as a time limit unless it comes before the scenario's
        terminated = jnp.logical_and(jnp.asarray(dones["__all__"]), time < params.max_steps_in_episode)
        terminated = jnp.logical_and(terminated, time < getattr(self.inner, "max_steps", 2**30))
        return self._joint_obs(obs), self._wrap(inner, time), reward, terminated, info

    def _spread_metrics(self, inner: Any) -> dict[str, jax.Array]:
        n, m = self.num_agents, self.inner.num_landmarks
        agents, landmarks = inner.p_pos[:n], inner.p_pos[n:n + m]
        to_landmark = jnp.linalg.norm(agents[:, None, :] - landmarks[None, :, :], axis=-1)  # [agents, landmarks]
        occupied = jnp.sum(jnp.min(to_landmark, axis=0) < 0.1)
        between = jnp.linalg.norm(agents[:, None, :] - agents[None, :, :], axis=-1)
        radius = jnp.asarray(self.inner.rad[:n]) if hasattr(self.inner, "rad") else jnp.full((n,), 0.15)
        touching = between < (radius[:, None] + radius[None, :])
        collisions = (jnp.sum(touching) - n) / 2  # pairs, not counting each agent with itself
        return {"occupied_landmarks": occupied.astype(jnp.float32), "collisions": collisions.astype(jnp.float32)}

    def is_truncated(self, state: MultiAgentState, params: MultiAgentParams) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    def observation_space(self, params: MultiAgentParams) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.num_agents * self.agent_obs_dim,), jnp.float32)

    def action_space(self, params: MultiAgentParams) -> spaces.Box:
        return spaces.Box(jnp.tile(self.action_low, self.num_agents), jnp.tile(self.action_high, self.num_agents),
                          (self.num_agents * self.agent_action_dim,), jnp.float32)


def make_jaxmarl(name: str, kwargs: dict[str, Any]) -> JaxMARLEnv:
    return JaxMARLEnv(name, kwargs)
