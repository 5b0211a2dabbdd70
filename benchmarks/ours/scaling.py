"""Env steps/s of the SAC train node against num_envs (and the device count XLA_FLAGS gives), peak RSS, and the
replay buffer's bytes per transition. Other hyperparameters are the project defaults, except one gradient step
per iteration, so that the number of environments is what changes the work per iteration."""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import resource  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from common import emit  # noqa: E402

from rlpipe.rl.buffer import init_buffer  # noqa: E402
from rlpipe.rl.config import load_sac_config  # noqa: E402
from rlpipe.rl.envs import generate_scenarios, make_env, scenarios_to_batch  # noqa: E402
from rlpipe.rl.sac import train as sac  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-envs", type=int, required=True)
    parser.add_argument("--iterations", type=int, default=60)
    args = parser.parse_args()
    devices = jax.local_device_count()
    n = args.num_envs
    steps = n * args.iterations
    overrides = {"buffer": {"capacity": max(100_000, 2 * n), "prefill_steps": max(1000, n)},
                 "train": {"num_envs": n, "grad_updates_per_iter": 1, "total_env_steps": max(1000, n) + steps,
                           "log_every_env_steps": steps // 3, "eval_every_env_steps": 0,
                           "checkpoint_every_env_steps": 10**9, "batch_size": 128}}
    cfg = load_sac_config(overrides, devices)
    spec = make_env(cfg.env.id)
    train_table, _ = generate_scenarios(spec, {}, cfg.scenarios.num_train, 1, cfg.seed)
    batch = scenarios_to_batch(train_table, spec, "train")
    state = sac.init_training_state(cfg, spec, sac.stage_key(cfg.seed, "init"))
    prefill = sac.collect_random(cfg, spec, batch, sac.stage_key(cfg.seed, "prefill"))
    _, history = sac.train(cfg, spec, batch, state, prefill, sac.stage_key(cfg.seed, "train"))
    one = init_buffer(1, spec.obs_dim, spec.action_dim)
    emit({"peer": "ours", "case": "scaling", "num_envs": n, "devices": devices,
          "env_steps_per_s": float(np.median([r["env_steps_per_s"] for r in history])),
          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          "buffer_bytes_per_transition": sum(x.nbytes for x in jax.tree.leaves(one.data)),
          "process_seconds_total": time.perf_counter() - STARTED})


if __name__ == "__main__":
    main()
