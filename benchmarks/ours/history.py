"""The cost of recording the training history inside the compiled chunk: a default-config run (an algorithm's
default env, a fixed budget, no early stopping) with ``train.history_points_per_log`` as given (0: one point per
progress line, nothing recorded inside), in one process through the library. Prints env steps/s of the compiled
training calls (no compilation, no evaluation) and the number of history points."""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402

from common import emit, train_through_library  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--algo", choices=("sac", "ppo"), required=True)
    parser.add_argument("--points", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    args = parser.parse_args()
    raw = {"train": {"total_env_steps": args.steps, "history_points_per_log": args.points,
                     "checkpoint_every_env_steps": 10**9, "eval_every_env_steps": 0}}
    if args.algo == "ppo":
        raw["early_stopping"] = {"target_return": None}

    from rlpipe.rl import algorithm

    config, result, _ = train_through_library(args.algo, raw, evaluate=False)
    plugin = algorithm.for_config(config)
    history = result.history
    trained = history[-1]["env_steps"] - plugin.env_steps_before_training(config)
    emit({"peer": "ours", "case": "history", "algo": args.algo, "points_per_log": args.points,
          "env_steps_per_s": trained / history[-1]["train_seconds"], "train_seconds": history[-1]["train_seconds"],
          "history_points": len(result.curve) or len(history), "process_seconds_total": time.perf_counter() - STARTED})


if __name__ == "__main__":
    main()
