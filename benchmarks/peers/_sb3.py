"""Stable-Baselines3 helpers shared by sb3_sac.py and sb3_ppo.py.

Evaluation protocol (same as the rejax scripts):
  * a separate set of evaluation environments, never the training env;
  * episode i of every evaluation is reset with seed 10_000 + i, so every
    evaluation sees the same start states;
  * the deterministic policy (``predict(..., deterministic=True)``) is used;
  * the score is the mean undiscounted return over the episodes.

Evaluation runs inside an SB3 callback at the start of a rollout, i.e. after the
gradient updates for all env steps collected so far. Its wall time is measured and
subtracted from the training clock, so ``train_seconds`` never contain eval time.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from _common import log

EVAL_SEED_BASE = 10_000


def set_torch_threads(n: int) -> int:
    import torch

    torch.set_num_threads(n)
    return torch.get_num_threads()


class PolicyEvaluator:
    """Evaluate a SB3 model on ``n_episodes`` fixed-seed episodes, run in lockstep."""

    def __init__(self, env_id: str, n_episodes: int):
        self.envs = [gym.make(env_id) for _ in range(n_episodes)]
        self.n = n_episodes

    def __call__(self, model) -> float:
        obs = []
        for i, env in enumerate(self.envs):
            o, _ = env.reset(seed=EVAL_SEED_BASE + i)
            obs.append(o)
        obs = np.stack(obs)
        returns = np.zeros(self.n, dtype=np.float64)
        active = np.ones(self.n, dtype=bool)
        while active.any():
            idx = np.flatnonzero(active)
            actions, _ = model.predict(obs[idx], deterministic=True)
            for j, i in enumerate(idx):
                o, r, terminated, truncated, _ = self.envs[i].step(actions[j])
                returns[i] += float(r)
                obs[i] = o
                if terminated or truncated:
                    active[i] = False
        return float(returns.mean())


class EvalStopCallback(BaseCallback):
    """Evaluate every ``eval_every`` env steps; stop once mean >= threshold.

    ``start()`` must be called right before ``model.learn``; the training clock is
    wall time since then minus the accumulated evaluation wall time.
    """

    def __init__(self, evaluator: PolicyEvaluator, eval_every: int, threshold: float,
                 process_t0: float):
        super().__init__(verbose=0)
        self.evaluator = evaluator
        self.eval_every = eval_every
        self.threshold = threshold
        self.process_t0 = process_t0
        self.next_eval = eval_every
        self.evals: list[list[float]] = []
        self.eval_seconds_total = 0.0
        self.t_start: float | None = None
        self.stop = False
        self.hit: dict | None = None

    def start(self) -> None:
        self.t_start = time.perf_counter()

    def train_seconds_now(self) -> float:
        return time.perf_counter() - self.t_start - self.eval_seconds_total

    def run_eval(self) -> None:
        t0 = time.perf_counter()
        train_s = t0 - self.t_start - self.eval_seconds_total
        steps = int(self.model.num_timesteps)
        mean = self.evaluator(self.model)
        t1 = time.perf_counter()
        self.evals.append([steps, mean, train_s])
        while self.next_eval <= steps:
            self.next_eval += self.eval_every
        if self.hit is None and mean >= self.threshold:
            self.hit = {
                "env_steps": steps,
                "train_seconds": train_s,
                "process_seconds": t1 - self.process_t0,
            }
            self.stop = True
        log(f"eval @ {steps} env steps: mean return {mean:.1f} "
            f"(train {train_s:.1f}s, eval {t1 - t0:.2f}s)")
        # bookkeeping and logging count as evaluation time, too
        self.eval_seconds_total += time.perf_counter() - t0

    def _on_rollout_start(self) -> None:
        if not self.stop and self.model.num_timesteps >= self.next_eval:
            self.run_eval()

    def _on_step(self) -> bool:
        return not self.stop

    def finish(self) -> None:
        """Final evaluation when training ended on the step budget."""
        if self.stop:
            return
        if not self.evals or self.evals[-1][0] != int(self.model.num_timesteps):
            self.run_eval()


def threshold_result(cb: EvalStopCallback, train_seconds_total: float,
                     env_steps_total: int) -> dict:
    hit = cb.hit
    return {
        "evals": cb.evals,
        "reached": hit is not None,
        "env_steps_to_threshold": hit["env_steps"] if hit else None,
        "train_seconds_to_threshold": hit["train_seconds"] if hit else None,
        "process_seconds_to_threshold": hit["process_seconds"] if hit else None,
        "env_steps_total": env_steps_total,
        "train_seconds_total": train_seconds_total,
        "eval_seconds_total": cb.eval_seconds_total,
        "env_steps_per_s": env_steps_total / train_seconds_total if train_seconds_total > 0 else None,
    }


SB3_VERSION_PACKAGES = ("stable-baselines3", "torch", "gymnasium", "numpy")
