"""A user environment (named as ``tests.nan_env:NaNRewardPendulum``) whose reward turns NaN late in an episode:
training on it must stop with a named error while its earlier checkpoints stay on disk."""

import jax.numpy as jnp
from gymnax.environments.classic_control.pendulum import Pendulum


class NaNRewardPendulum(Pendulum):
    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return obs, state, jnp.where(state.time >= 150, jnp.nan, reward), terminated, info
