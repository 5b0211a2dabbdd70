"""A run's schedule: the budget in env steps turned into iterations, chunks and the learning-rate horizon.

Computed in one place (``plan``) from the config and the algorithm's steps per iteration; the training core, the
host loop, the in-chunk trace and a learning-rate schedule that anneals over the run all read it from here, so they
cannot disagree about how long the run is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Schedule:
    total_iters: int
    iters_per_chunk: int
    env_steps_per_iter: int
    grad_steps_per_iter: int
    env_steps_before: int  # env steps already taken when training starts (the SAC buffer prefill)
    eval_every_env_steps: int  # 0: no evaluation during training
    checkpoint_every_env_steps: int
    history_points_per_log: int = 0  # points of the in-chunk trace a chunk records (0: none)

    @staticmethod
    def build(train_config: Any, env_steps_per_iter: int, grad_steps_per_iter: int,
              env_steps_before: int = 0) -> Schedule:
        t = train_config
        return Schedule(
            total_iters=max(1, math.ceil((t.total_env_steps - env_steps_before) / env_steps_per_iter)),
            iters_per_chunk=max(1, t.log_every_env_steps // env_steps_per_iter),
            env_steps_per_iter=env_steps_per_iter,
            grad_steps_per_iter=grad_steps_per_iter,
            env_steps_before=env_steps_before,
            eval_every_env_steps=t.eval_every_env_steps,
            checkpoint_every_env_steps=t.checkpoint_every_env_steps,
            history_points_per_log=getattr(t, "history_points_per_log", 0),
        )

    @property
    def total_env_steps(self) -> int:
        return self.env_steps_before + self.total_iters * self.env_steps_per_iter

    @property
    def total_grad_steps(self) -> int:
        """The learning-rate horizon: gradient steps of the whole run (a schedule annealing to 0 ends here)."""
        return self.total_iters * self.grad_steps_per_iter

    def env_steps_after(self, iterations: int) -> int:
        """Env steps taken once ``iterations`` iterations are done (the prefill included)."""
        return self.env_steps_before + iterations * self.env_steps_per_iter

    @property
    def trace_shape(self) -> tuple[int, int]:
        """(points, stride) of the in-chunk trace: a chunk of up to ``iters_per_chunk`` iterations records
        ``points`` values per metric, point ``j`` the mean over iterations ``j*stride .. (j+1)*stride - 1``; (0, 1)
        when ``train.history_points_per_log`` is 0."""
        wanted, per_chunk = self.history_points_per_log, self.iters_per_chunk
        if not wanted:
            return 0, 1
        stride = -(-per_chunk // min(wanted, per_chunk))
        return -(-per_chunk // stride), stride


def plan(algorithm: Any, config: Any) -> Schedule:
    """The schedule of ``config`` trained by ``algorithm``: the one place a run's length is worked out."""
    env_steps, grad_steps = algorithm.steps_per_iteration(config)
    return Schedule.build(config.train, env_steps, grad_steps, algorithm.env_steps_before_training(config))
