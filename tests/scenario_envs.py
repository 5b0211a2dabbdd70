"""A user environment for the curriculum tests (named as ``tests.scenario_envs:Hurdle``).

``Hurdle``: whatever the agent does, every step of a scenario costs its ``hardness`` (a scenario parameter), and
every episode lasts ``max_steps_in_episode`` steps, so a scenario's return is known in advance
(``-hardness * max_steps_in_episode``): the scenarios with high hardness are the ones the policy "fails". The
observation shows the hardness, so the episodes a training chunk finishes tell which scenarios were drawn.
"""

import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class HurdleState(environment.EnvState):
    hardness: jnp.ndarray


@struct.dataclass
class HurdleParams(environment.EnvParams):
    hardness: float = 0.5
    max_steps_in_episode: int = 10


class Hurdle(environment.Environment):
    @property
    def default_params(self) -> HurdleParams:
        return HurdleParams()

    def reset_env(self, key, params):
        state = HurdleState(time=jnp.int32(0), hardness=jnp.float32(params.hardness))
        return self.get_obs(state), state

    def step_env(self, key, state, action, params):
        state = state.replace(time=state.time + 1)
        return self.get_obs(state), state, -state.hardness, jnp.bool_(False), {}

    def get_obs(self, state, params=None, key=None):
        return jnp.asarray([state.hardness, state.time / 10.0], jnp.float32)

    def is_truncated(self, state, params):
        return state.time >= params.max_steps_in_episode

    def action_space(self, params=None):
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    def observation_space(self, params):
        return spaces.Box(-10.0, 10.0, (2,), jnp.float32)

    @property
    def name(self) -> str:
        return "Hurdle"
