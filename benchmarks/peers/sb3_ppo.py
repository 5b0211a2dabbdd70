import time; PROCESS_T0 = time.perf_counter()  # noqa: E702  (must be the first statement)

# Peer benchmark: Stable-Baselines3 PPO on gymnasium CartPole-v1 with the
# rl-baselines3-zoo CartPole-v1 hyperparameters. Evaluates every --eval-every env
# steps (deterministic policy, fixed seeds, eval time excluded from the training
# clock) and stops at the first eval whose mean return >= --threshold.
#
# Progress goes to stderr; the last stdout line is one JSON object.

import argparse
import os
import sys

sys.dont_write_bytecode = True  # keep __pycache__ of the helper modules out of the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import claim_stdout, emit, log, versions  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description="SB3 PPO peer benchmark (CartPole-v1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=475.0)
    p.add_argument("--eval-every", type=int, default=2048)
    p.add_argument("--eval-episodes", type=int, default=16)
    p.add_argument("--max-env-steps", type=int, default=100_000)
    p.add_argument("--torch-threads", type=int, default=1)
    return p.parse_args()


ENV_ID = "CartPole-v1"

# rl-baselines3-zoo hyperparams/ppo.yml, CartPole-v1 (n_timesteps 1e5, MlpPolicy).
# Values not set by the zoo are SB3 PPO defaults (listed in the JSON as "sb3_defaults").
ZOO_HPARAMS = dict(
    n_envs=8,
    n_steps=32,
    batch_size=256,
    gae_lambda=0.8,
    gamma=0.98,
    n_epochs=20,
    ent_coef=0.0,
    learning_rate="lin_1e-3",
    clip_range="lin_0.2",
)
SB3_DEFAULTS = dict(
    vf_coef=0.5,
    max_grad_norm=0.5,
    normalize_advantage=True,
    clip_range_vf=None,
    net_arch="pi [64, 64], vf [64, 64], tanh, orthogonal init",
    vec_env="DummyVecEnv",
)


def main():
    args = parse_args()
    claim_stdout()

    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.utils import LinearSchedule

    from _sb3 import (SB3_VERSION_PACKAGES, EvalStopCallback, PolicyEvaluator,
                      set_torch_threads, threshold_result)

    threads = set_torch_threads(args.torch_threads)
    log(f"imports done after {time.perf_counter() - PROCESS_T0:.1f}s; torch threads = {threads}")

    hp = ZOO_HPARAMS
    t_setup = time.perf_counter()
    env = make_vec_env(ENV_ID, n_envs=hp["n_envs"], seed=args.seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=hp["n_steps"],
        batch_size=hp["batch_size"],
        gae_lambda=hp["gae_lambda"],
        gamma=hp["gamma"],
        n_epochs=hp["n_epochs"],
        ent_coef=hp["ent_coef"],
        # zoo "lin_X": X * progress_remaining, i.e. linear from X to 0 over n_timesteps
        learning_rate=LinearSchedule(1e-3, 0.0, 1.0),
        clip_range=LinearSchedule(0.2, 0.0, 1.0),
        seed=args.seed,
        device="cpu",
        verbose=0,
    )
    setup_s = time.perf_counter() - t_setup

    cb = EvalStopCallback(PolicyEvaluator(ENV_ID, args.eval_episodes),
                          args.eval_every, args.threshold, PROCESS_T0)
    cb.start()
    # total_timesteps = --max-env-steps (the zoo's n_timesteps is 1e5): the linear
    # schedules anneal to 0 over it, whether or not the threshold stops training early.
    model.learn(total_timesteps=args.max_env_steps, callback=cb)
    train_total = cb.train_seconds_now()
    steps_total = int(model.num_timesteps)
    cb.finish()

    result = {
        "peer": "sb3",
        "algo": "ppo",
        "case": "threshold",
        "env": ENV_ID,
        "seed": args.seed,
        "versions": versions(*SB3_VERSION_PACKAGES),
        "torch_threads": threads,
        "device": "cpu",
        "threshold": args.threshold,
        "eval_every": args.eval_every,
        "eval_episodes": args.eval_episodes,
        "max_env_steps": args.max_env_steps,
        "hyperparams_source": "rl-baselines3-zoo ppo.yml CartPole-v1 (+ SB3 defaults)",
        "hyperparams": hp,
        "sb3_defaults": SB3_DEFAULTS,
        "setup_seconds": setup_s,
    }
    result.update(threshold_result(cb, train_total, steps_total))
    result["process_seconds_total"] = time.perf_counter() - PROCESS_T0
    emit(result)


if __name__ == "__main__":
    main()
