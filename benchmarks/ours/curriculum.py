"""The shipped randomized-Pendulum SAC config (``conf/sac_pendulum_randomized``) with its curriculum or with uniform
scenario sampling (``--uniform``), ``--num-seeds`` seeds trained together in one program, in one process through the
library (no Kedro). Prints wall seconds, env steps/s and, per seed, the final evaluation on the config's 64 held-out
scenarios: its mean and its worst-decile return (the mean of the lowest tenth of the scenarios' returns)."""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from common import emit, train_through_library  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--uniform", action="store_true")
    parser.add_argument("--num-seeds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    raw = yaml.safe_load((ROOT / "conf" / "sac_pendulum_randomized" / "parameters_sac.yml").read_text())["sac"]
    raw["seed"] = args.seed
    raw["train"]["num_seeds"] = args.num_seeds
    if args.steps:
        raw["train"]["total_env_steps"] = args.steps
    if args.uniform:
        raw["scenarios"]["curriculum"] = None

    from rlpipe.rl import curriculum

    config, result, seconds = train_through_library("sac", raw)
    returns = np.asarray(result.final_evaluation["returns"]).reshape(args.num_seeds, -1)
    history = result.history
    weights = result.curriculum["weights"] if result.curriculum is not None else None
    emit({"peer": "ours", "case": "curriculum", "sampling": "uniform" if args.uniform else "curriculum",
          "seed": args.seed, "num_seeds": args.num_seeds, "seconds": seconds,
          "train_seconds": history[-1]["train_seconds"], "env_steps": history[-1]["env_steps"],
          "env_steps_per_s": history[-1]["env_steps"] * args.num_seeds / history[-1]["train_seconds"],
          "eval_mean": [float(r.mean()) for r in returns],
          "eval_worst_decile": [float(curriculum.worst_decile(r)) for r in returns],
          "final_weight_entropy": None if weights is None else float(np.mean(curriculum.entropy(weights))),
          "process_seconds_total": time.perf_counter() - STARTED})


if __name__ == "__main__":
    main()
