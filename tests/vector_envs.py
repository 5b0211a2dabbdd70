"""A Gymnasium env for the ``env.vector`` tests, registered when this module is imported (the id
``tests.vector_envs:PidPendulum-v0`` makes Gymnasium import it, in a worker process too).

``PidPendulum``: Pendulum-v1 that, when ``RLPIPE_TEST_PID_DIR`` is set, leaves an empty file named for the process
that steps it in that folder, so a test can tell where its copies lived."""

import os
from pathlib import Path

import gymnasium
from gymnasium.envs.classic_control.pendulum import PendulumEnv


class PidPendulum(PendulumEnv):
    def step(self, u):
        folder = os.environ.get("RLPIPE_TEST_PID_DIR")
        if folder:
            (Path(folder) / str(os.getpid())).touch()
        return super().step(u)


gymnasium.register("PidPendulum-v0", entry_point=PidPendulum, max_episode_steps=200)
