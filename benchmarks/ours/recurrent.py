"""A shipped partially observable config (``conf/<env>/parameters_ppo.yml``) trained as shipped (recurrent) or with
its recurrent cell replaced by a feed-forward MLP (``--feed-forward``: hidden sizes 64x64, everything else the
same, early stopping kept), in one process through the library (no Kedro). Prints wall seconds (the train call,
compilation and evaluations included), env steps/s of the compiled training, the env steps spent, the final
evaluation's mean on the config's held-out scenarios, and the first evaluation at or above the config's target."""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from common import emit, first_crossing, train_through_library  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", required=True, help="a Kedro config environment with a parameters_ppo.yml")
    parser.add_argument("--feed-forward", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    raw = yaml.safe_load((ROOT / "conf" / args.env / "parameters_ppo.yml").read_text())["ppo"]
    raw["seed"] = args.seed
    if args.feed_forward:
        raw["network"] = {**raw["network"], "recurrent": None, "hidden_sizes": [64, 64]}

    config, result, seconds = train_through_library("ppo", raw)
    history = result.history
    target = config.early_stopping.target_return
    crossed = first_crossing(history, target) if target is not None else None
    emit({"peer": "ours", "case": "recurrent", "env": args.env, "seed": args.seed,
          "network": "feed-forward" if args.feed_forward else config.network.recurrent.cell,
          "seconds": seconds, "train_seconds": history[-1]["train_seconds"], "env_steps": history[-1]["env_steps"],
          "env_steps_per_s": history[-1]["env_steps"] / history[-1]["train_seconds"],
          "final_eval_mean": float(np.mean(result.final_evaluation["returns"])), "target": target,
          "target_env_steps": None if crossed is None else crossed["env_steps"],
          "process_seconds_total": time.perf_counter() - STARTED})


if __name__ == "__main__":
    main()
