"""Many seeds in one program against the same seeds one after the other: agent env steps/s (env steps summed over
the agents, per second of compiled training: no compilation, no evaluation) and whole seconds (compilation and
the periodic evaluations included), for an algorithm's default config on its default env with a fixed budget.

``--mode together``: one run with ``train.num_seeds = N``; ``--mode sequential``: N runs of one seed each (seed,
seed+1, ...), in this process one after the other (each compiles its program: the persistent cache is off, as for
the run of N seeds)."""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402

import numpy as np  # noqa: E402
from common import emit, train_through_library  # noqa: E402


def train_once(algo: str, overrides: dict):
    from rlpipe.rl import algorithm

    config, result, seconds = train_through_library(algo, overrides)
    plugin = algorithm.for_config(config)
    history = result.history
    env_steps = history[-1]["env_steps"] - plugin.env_steps_before_training(config)
    returns = np.asarray(result.final_evaluation["returns"]).reshape(config.train.num_seeds, -1).mean(axis=1)
    return {"train_seconds": history[-1]["train_seconds"], "seconds": seconds, "env_steps": env_steps,
            "eval_means": returns.tolist()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--algo", choices=("sac", "ppo"), required=True)
    parser.add_argument("--mode", choices=("together", "sequential"), required=True)
    parser.add_argument("--num-seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, required=True, help="env steps per agent")
    args = parser.parse_args()
    base = {"train": {"total_env_steps": args.steps, "checkpoint_every_env_steps": 10**9,
                      "eval_every_env_steps": args.steps}}
    if args.algo == "ppo":
        base["early_stopping"] = {"target_return": None}  # the same budget for every agent
    if args.mode == "together":
        runs = [train_once(args.algo, {**base, "train": {**base["train"], "num_seeds": args.num_seeds}})]
        agents = args.num_seeds
    else:
        runs = [train_once(args.algo, {**base, "seed": k}) for k in range(args.num_seeds)]
        agents = 1
    train_seconds = sum(r["train_seconds"] for r in runs)
    agent_steps = sum(r["env_steps"] * agents for r in runs)
    emit({"peer": "ours", "case": "seeds", "algo": args.algo, "mode": args.mode, "num_seeds": args.num_seeds,
          "agent_env_steps_per_s": agent_steps / train_seconds, "train_seconds": train_seconds,
          "seconds": sum(r["seconds"] for r in runs), "eval_means": [m for r in runs for m in r["eval_means"]],
          "process_seconds_total": time.perf_counter() - STARTED})


if __name__ == "__main__":
    main()
