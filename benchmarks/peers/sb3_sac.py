import time; PROCESS_T0 = time.perf_counter()  # noqa: E702  (must be the first statement)

# Peer benchmark: Stable-Baselines3 SAC on gymnasium Pendulum-v1.
#
#   --case threshold : rl-baselines3-zoo Pendulum-v1 hyperparameters (learning_rate 1e-3,
#                      everything else SB3 defaults); evaluate every --eval-every env steps,
#                      stop at the first eval whose mean return >= --threshold.
#   --case throughput: the project's SAC hyperparameters; time only the learning phase
#                      (after learning_starts) and report gradient steps / s.
#   --case halfcheetah: HalfCheetah-v5 (MuJoCo) at zoo-like hyperparameters (256x256, batch 256, one
#                      gradient step per env step, 10k random steps first, lr 3e-4); --steps env steps in
#                      all; gradient steps / s of the learning phase and the deterministic eval return
#                      (--eval-episodes fixed-seed episodes) at the end.
#
# Progress goes to stderr; the last stdout line is one JSON object.

import argparse
import copy
import os
import sys

sys.dont_write_bytecode = True  # keep __pycache__ of the helper modules out of the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import claim_stdout, emit, log, versions  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description="SB3 SAC peer benchmark (Pendulum-v1)")
    p.add_argument("--case", choices=("threshold", "throughput", "halfcheetah"), required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=-200.0)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--eval-episodes", type=int, default=16)
    p.add_argument("--max-env-steps", type=int, default=20_000)
    p.add_argument("--steps", type=int, default=3000,
                   help="throughput case: env steps (= gradient steps) timed after learning_starts")
    p.add_argument("--torch-threads", type=int, default=1)
    return p.parse_args()


ENV_ID = "Pendulum-v1"

# rl-baselines3-zoo hyperparams/sac.yml, Pendulum-v1: n_timesteps 20000, MlpPolicy,
# learning_rate 1e-3; every other value is a SAC default of SB3 (spelled out here).
ZOO_HPARAMS = dict(
    learning_rate=1e-3,
    buffer_size=1_000_000,
    learning_starts=100,
    batch_size=256,
    tau=0.005,
    gamma=0.99,
    train_freq=1,
    gradient_steps=1,
    ent_coef="auto",
    target_update_interval=1,
    target_entropy="auto",
    policy_kwargs=dict(net_arch=[256, 256]),  # SB3 SAC default; ReLU
)

# The project's (rlpipe) SAC settings, for the throughput comparison.
PROJECT_HPARAMS = dict(
    learning_rate=1e-3,
    buffer_size=100_000,
    learning_starts=256,
    batch_size=256,
    tau=0.005,
    gamma=0.99,
    train_freq=1,
    gradient_steps=1,
    ent_coef="auto",
    target_update_interval=1,
    target_entropy="auto",
    policy_kwargs=dict(net_arch=dict(pi=[256, 256], qf=[256, 256])),
)


# HalfCheetah-v5, the project's conf/sac_halfcheetah settings (rl-baselines3-zoo-like): SB3 defaults but
# learning_starts 10000 (the zoo's HalfCheetah value) and 256x256 networks.
HALFCHEETAH_HPARAMS = dict(
    learning_rate=3e-4,
    buffer_size=1_000_000,
    learning_starts=10_000,
    batch_size=256,
    tau=0.005,
    gamma=0.99,
    train_freq=1,
    gradient_steps=1,
    ent_coef="auto",
    target_update_interval=1,
    target_entropy="auto",
    policy_kwargs=dict(net_arch=dict(pi=[256, 256], qf=[256, 256])),
)


def make_learn_phase_timer(base, learning_starts):
    """A callback that starts the clock at the first rollout followed by a gradient step."""

    class LearnPhaseTimer(base):
        def __init__(self):
            super().__init__(verbose=0)
            self.t0 = self.steps0 = self.updates0 = None

        def _on_rollout_start(self):
            if self.t0 is None and self.model.num_timesteps >= learning_starts:
                self.steps0 = int(self.model.num_timesteps)
                self.updates0 = int(self.model._n_updates)
                self.t0 = time.perf_counter()

        def _on_step(self):
            return True

    return LearnPhaseTimer()


def main():
    args = parse_args()
    claim_stdout()

    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from _sb3 import (SB3_VERSION_PACKAGES, EvalStopCallback, PolicyEvaluator,
                      set_torch_threads, threshold_result)

    threads = set_torch_threads(args.torch_threads)
    log(f"imports done after {time.perf_counter() - PROCESS_T0:.1f}s; torch threads = {threads}")

    result = {
        "peer": "sb3",
        "algo": "sac",
        "case": args.case,
        "env": ENV_ID,
        "seed": args.seed,
        "versions": versions(*SB3_VERSION_PACKAGES),
        "torch_threads": threads,
        "device": "cpu",
    }

    if args.case == "halfcheetah":
        hp = HALFCHEETAH_HPARAMS
        result.update(env="HalfCheetah-v5", steps=args.steps, eval_episodes=args.eval_episodes,
                      hyperparams_source="rl-baselines3-zoo-like HalfCheetah (the project's conf/sac_halfcheetah)")
        model = SAC("MlpPolicy", gym.make("HalfCheetah-v5"), seed=args.seed, device="cpu", verbose=0,
                    **copy.deepcopy(hp))
        timer = make_learn_phase_timer(BaseCallback, hp["learning_starts"])
        t_learn = time.perf_counter()
        model.learn(total_timesteps=args.steps, callback=timer)
        learn_s = time.perf_counter() - timer.t0
        grad_steps = int(model._n_updates) - timer.updates0
        eval_started = time.perf_counter()
        eval_return = PolicyEvaluator("HalfCheetah-v5", args.eval_episodes)(model)
        result.update(warmup_seconds=timer.t0 - t_learn, learn_phase_seconds=learn_s, grad_steps=grad_steps,
                      grad_steps_per_s=grad_steps / learn_s, env_steps=int(model.num_timesteps),
                      eval_return=eval_return, eval_seconds=time.perf_counter() - eval_started)
        log(f"{grad_steps} gradient steps in {learn_s:.1f}s -> {grad_steps / learn_s:.1f}/s; eval {eval_return:.1f}")
    elif args.case == "threshold":
        hp = ZOO_HPARAMS
        result.update(threshold=args.threshold, eval_every=args.eval_every,
                      eval_episodes=args.eval_episodes, max_env_steps=args.max_env_steps,
                      hyperparams_source="rl-baselines3-zoo sac.yml Pendulum-v1 (+ SB3 defaults)")
        t_setup = time.perf_counter()
        model = SAC("MlpPolicy", gym.make(ENV_ID), seed=args.seed, device="cpu", verbose=0,
                    **copy.deepcopy(hp))
        setup_s = time.perf_counter() - t_setup
        cb = EvalStopCallback(PolicyEvaluator(ENV_ID, args.eval_episodes),
                              args.eval_every, args.threshold, PROCESS_T0)
        cb.start()
        model.learn(total_timesteps=args.max_env_steps, callback=cb)
        train_total = cb.train_seconds_now()
        steps_total = int(model.num_timesteps)
        cb.finish()
        result.update(threshold_result(cb, train_total, steps_total))
        result["setup_seconds"] = setup_s
    else:
        hp = PROJECT_HPARAMS

        result.update(steps=args.steps, hyperparams_source="rlpipe SAC settings")
        t_setup = time.perf_counter()
        model = SAC("MlpPolicy", gym.make(ENV_ID), seed=args.seed, device="cpu", verbose=0,
                    **copy.deepcopy(hp))
        setup_s = time.perf_counter() - t_setup
        timer = make_learn_phase_timer(BaseCallback, hp["learning_starts"])
        t_learn = time.perf_counter()
        model.learn(total_timesteps=hp["learning_starts"] + args.steps, callback=timer)
        t1 = time.perf_counter()
        learn_s = t1 - timer.t0
        grad_steps = int(model._n_updates) - timer.updates0
        env_steps = int(model.num_timesteps) - timer.steps0
        result.update(
            setup_seconds=setup_s,
            warmup_seconds=timer.t0 - t_learn,
            learn_phase_seconds=learn_s,
            grad_steps=grad_steps,
            env_steps=env_steps,
            grad_steps_per_s=grad_steps / learn_s,
            env_steps_per_s=env_steps / learn_s,
        )
        log(f"{grad_steps} gradient steps in {learn_s:.1f}s -> {grad_steps / learn_s:.1f}/s")

    result["hyperparams"] = {k: v for k, v in hp.items()}
    result["process_seconds_total"] = time.perf_counter() - PROCESS_T0
    emit(result)


if __name__ == "__main__":
    main()
