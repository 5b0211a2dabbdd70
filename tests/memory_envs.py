"""User environments for the recurrent-policy tests (named as ``tests.memory_envs:<Class>``).

``Countdown``: the observation is the step count within the episode; an episode terminates at step ``term_at``
(a scenario parameter) or is truncated at ``max_steps_in_episode``, whichever comes first, so a scenario table
with ``term_at`` on both sides of the limit has episodes of both kinds, at steps known in advance.
"""

import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class CountdownState(environment.EnvState):
    pass


@struct.dataclass
class CountdownParams(environment.EnvParams):
    term_at: int = 3
    max_steps_in_episode: int = 5


class Countdown(environment.Environment):
    @property
    def default_params(self) -> CountdownParams:
        return CountdownParams()

    def reset_env(self, key, params):
        state = CountdownState(time=jnp.int32(0))
        return self.get_obs(state), state

    def step_env(self, key, state, action, params):
        state = CountdownState(time=state.time + 1)
        terminated = state.time >= params.term_at
        return self.get_obs(state), state, jnp.float32(1.0), terminated, {}

    def get_obs(self, state, params=None, key=None):
        return jnp.asarray([state.time], jnp.float32)

    def is_truncated(self, state, params):
        return state.time >= params.max_steps_in_episode

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 100.0, (1,), jnp.float32)

    @property
    def name(self) -> str:
        return "Countdown"

    @property
    def num_actions(self) -> int:
        return 2

