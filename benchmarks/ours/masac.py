"""The shipped multi-agent SAC config (``conf/base/parameters_masac.yml``, MPE_simple_spread_v3) with its attention
critics or with independent critics (``--critic-form independent``: each agent's critic sees only its own agent),
``--num-seeds`` seeds in one program (``--actions discrete``: the task's discrete form), in one process through the library (no Kedro). Prints wall seconds and, per
seed, the mean training team return over the last ``--last-logs`` progress intervals (stochastic policy, as a
training log reports it) and the final deterministic evaluation's mean team return on the held-out scenarios."""

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
    parser.add_argument("--critic-form", default="attention", choices=["attention", "independent"])
    parser.add_argument("--num-seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--last-logs", type=int, default=3)
    parser.add_argument("--actions", default="continuous", choices=["continuous", "discrete"],
                        help="the MPE task's action type (discrete: 5 actions per agent, the categorical actor)")
    parser.add_argument("--target-entropy", type=float, default=None, help="train.target_entropy (default: the config's)")
    args = parser.parse_args()
    raw = yaml.safe_load((ROOT / "conf" / "base" / "parameters_masac.yml").read_text())["masac"]
    raw["seed"] = args.seed
    raw["network"]["critic_form"] = args.critic_form
    raw["train"]["num_seeds"] = args.num_seeds
    if args.steps:
        raw["train"]["total_env_steps"] = args.steps
    if args.actions == "discrete":
        raw["env"]["kwargs"] = {"action_type": "Discrete"}
    if args.target_entropy is not None:
        raw["train"]["target_entropy"] = args.target_entropy

    config, result, seconds = train_through_library("masac", raw)
    history = result.history
    seeds = args.num_seeds
    returns = np.asarray(result.final_evaluation["returns"]).reshape(seeds, -1)
    last = history[-args.last_logs:]
    train_return = [float(np.nanmean([row.get(f"seed{k}.episode_return", np.nan) if seeds > 1 else
                                      row["episode_return"] for row in last])) for k in range(seeds)]
    emit({"peer": "ours", "case": "masac", "critic_form": args.critic_form, "actions": args.actions, "seed": args.seed, "num_seeds": seeds,
          "seconds": seconds, "train_seconds": history[-1]["train_seconds"], "env_steps": history[-1]["env_steps"],
          "env_steps_per_s": history[-1]["env_steps"] * seeds / history[-1]["train_seconds"],
          "train_team_return": train_return, "eval_team_return": [float(r.mean()) for r in returns],
          "process_seconds_total": time.perf_counter() - STARTED})


if __name__ == "__main__":
    main()
