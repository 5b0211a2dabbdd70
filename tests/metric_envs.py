"""A user environment for the env-metric tests (named as ``tests.metric_envs:Countdown``).

``Countdown``: whatever the agent does, an episode ends after ``stop_at`` steps (terminated; ``stop_at`` is a
scenario parameter) or at ``max_steps_in_episode`` (truncated), whichever comes first, and the step info reports
``elapsed_squared`` (the square of the steps taken so far: 1, 4, 9, ...). So an episode of L steps has a known
mean (L + 1)(2L + 1) / 6 and last value L^2 of that metric, whatever the policy.
"""

import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class CountdownParams(environment.EnvParams):
    stop_at: float = 5.0
    max_steps_in_episode: int = 8


class Countdown(environment.Environment):
    @property
    def default_params(self) -> CountdownParams:
        return CountdownParams()

    def reset_env(self, key, params):
        state = environment.EnvState(time=jnp.int32(0))
        return self.get_obs(state), state

    def step_env(self, key, state, action, params):
        state = state.replace(time=state.time + 1)
        terminated = state.time >= params.stop_at
        info = {"elapsed_squared": jnp.float32(state.time) ** 2}
        return self.get_obs(state), state, jnp.float32(-1.0), terminated, info

    def get_obs(self, state, params=None, key=None):
        return jnp.asarray([state.time / 10.0, 1.0], jnp.float32)

    def is_truncated(self, state, params):
        return state.time >= params.max_steps_in_episode

    def action_space(self, params=None):
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    def observation_space(self, params):
        return spaces.Box(-10.0, 10.0, (2,), jnp.float32)

    @property
    def name(self) -> str:
        return "Countdown"
