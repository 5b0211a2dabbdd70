"""Gymnasium envs for the tests of host environments: registered when this module is imported (an env id
``tests.host_envs:<Name>`` makes Gymnasium import it, in a ``kedro run`` subprocess too)."""

import gymnasium
from gymnasium.envs.classic_control.pendulum import PendulumEnv
from gymnasium.error import DependencyNotInstalled


class FailingPendulum(PendulumEnv):
    """Pendulum whose ``step`` raises once the process has stepped any of its copies ``fail_after`` times."""

    steps_in_process = 0

    def __init__(self, fail_after: int = 100, **kwargs):
        super().__init__(**kwargs)
        self.fail_after = fail_after

    def step(self, u):
        FailingPendulum.steps_in_process += 1
        if FailingPendulum.steps_in_process > self.fail_after:
            raise RuntimeError("simulator exploded")
        return super().step(u)


class SuccessPendulum(PendulumEnv):
    """Pendulum that reports ``is_success`` (pole within 0.5 rad of upright) and ``upright`` in its step info."""

    def step(self, u):
        obs, reward, terminated, truncated, info = super().step(u)
        upright = float(obs[0])  # cos(theta)
        return obs, reward, terminated, truncated, {**info, "is_success": upright > 0.878, "upright": upright}


def _needs_missing_extra(**kwargs):
    raise DependencyNotInstalled('MuJoCo is not installed, run `pip install "gymnasium[mujoco]"`')


gymnasium.register("FailingPendulum-v0", entry_point=FailingPendulum, max_episode_steps=200)
gymnasium.register("SuccessPendulum-v0", entry_point=SuccessPendulum, max_episode_steps=200)
gymnasium.register("NeedsMujoco-v0", entry_point=_needs_missing_extra, max_episode_steps=100)
