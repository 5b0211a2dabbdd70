"""Our PPO on gymnax CartPole-v1 (project defaults), measured the way benchmarks/peers measure theirs: training
and process seconds until the deterministic eval mean first reaches --threshold, and env steps/s. Training goes
on to the whole budget (no early stop) so that env steps/s is a steady-state figure, not the first few calls."""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402

import jax  # noqa: E402
from common import (ThresholdWatch, emit, first_crossing, train_through_library, use_compilation_cache,  # noqa: E402
                    versions)

use_compilation_cache(__import__("sys").argv)



def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", help="JAX persistent compilation cache (the project's default behaviour)")
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--eval-every", type=int, default=8192)
    parser.add_argument("--eval-episodes", type=int, default=16)
    parser.add_argument("--max-env-steps", type=int, default=100_000)
    args = parser.parse_args()
    overrides = {"seed": args.seed, "scenarios": {"num_eval": args.eval_episodes},
                 "train": {"total_env_steps": args.max_env_steps, "eval_every_env_steps": args.eval_every,
                           "log_every_env_steps": args.eval_every, "checkpoint_every_env_steps": 10**9},
                 "early_stopping": {"target_return": None}}
    on_progress = ThresholdWatch("ours ppo", args.threshold, STARTED)
    history = train_through_library("ppo", overrides, on_progress=on_progress)[1].history
    hit = first_crossing(history, args.threshold)
    emit({"peer": "ours", "algo": "ppo", "case": "threshold", "seed": args.seed, "reached": hit is not None,
          "env_steps_to_threshold": hit and hit["env_steps"],
          "train_seconds_to_threshold": hit and hit["train_seconds"],
          "process_seconds_to_threshold": on_progress.process_seconds,
          "env_steps_per_s": history[-1]["env_steps"] / history[-1]["train_seconds"],
          "evals": [[r["env_steps"], r["eval_return_mean"], r["train_seconds"]] for r in history],
          "devices": jax.local_device_count(), "versions": versions("jax", "flax", "optax", "gymnax"),
          "process_seconds_total": time.perf_counter() - STARTED})


if __name__ == "__main__":
    main()
