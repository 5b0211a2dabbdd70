"""A user environment for the imitation tests (named as ``tests.imitation_envs:MisleadingPendulum``).

``MisleadingPendulum`` is Pendulum-v1 in every respect (dynamics, observations, scenario parameters) except its
reward: it pays 1000 times Pendulum's cost, so an agent that learned from it would learn to hang and spin, the
opposite of the swing-up. An imitator with ``task_weight: 0`` must train to the same bits on it as on Pendulum-v1.
"""

from gymnax.environments.classic_control.pendulum import Pendulum


class MisleadingPendulum(Pendulum):
    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return obs, state, -1000.0 * reward, terminated, info
