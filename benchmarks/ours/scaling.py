"""Env steps/s of the SAC train node against num_envs (and the device count XLA_FLAGS gives), peak RSS, and the
replay buffer's bytes per transition. Other hyperparameters are the project defaults, except one gradient step
per iteration, so that the number of environments is what changes the work per iteration.

Started as one process of a multi-process run (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
``JAX_PROCESS_ID`` in the environment, e.g. by ``python -m rlpipe.launch``), it joins the others and trains on the
devices of all of them; only process 0 prints the JSON line then (``devices`` counts every process's devices,
``peak_rss_mb`` is process 0's)."""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import resource  # noqa: E402

from rlpipe.rl import mesh  # noqa: E402

mesh.initialize(None)  # before anything touches a JAX backend: joins a multi-process run if the environment says so

import jax  # noqa: E402
import numpy as np  # noqa: E402
from collectives import all_reduces  # noqa: E402
from common import emit  # noqa: E402

from rlpipe.rl import algorithm, training  # noqa: E402
from rlpipe.rl.buffer import init_buffer  # noqa: E402
from rlpipe.rl.envs import generate_scenarios, make_env, scenarios_to_batch  # noqa: E402
from rlpipe.rl.keys import stage_key  # noqa: E402
from rlpipe.rl.sac.algorithm import collect_random  # noqa: E402
from rlpipe.rl.schedule import plan  # noqa: E402
from rlpipe.rl.seeds import Seeds, over_seeds, stage_keys  # noqa: E402


def capture_chunk_hlo() -> dict:
    """The optimized HLO text of the training chunk this run compiles, in the returned dict once compiled."""
    import jax.numpy as jnp

    captured = {}

    def compile_and_keep(chunk, state, scenarios, num_iters, alongside=None):
        compiled = chunk.lower(state, scenarios, jnp.int32(num_iters)).compile()
        captured["text"] = compiled.as_text()
        return (lambda s, n: compiled(s, scenarios, jnp.int32(n))), 0.0

    training.compile_chunk = compile_and_keep
    return captured


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-envs", type=int, required=True)
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--history-points", type=int, default=None,
                        help="train.history_points_per_log (default: the config's)")
    parser.add_argument("--num-seeds", type=int, default=1, help="train.num_seeds")
    parser.add_argument("--seeds-per-device", type=int, default=None, help="train.seeds_per_device (default: auto)")
    parser.add_argument("--inventory", action="store_true",
                        help="also report the compiled chunk's all-reduces (count and bytes)")
    args = parser.parse_args()
    devices = mesh.device_count()  # over all processes
    n = args.num_envs
    steps = n * args.iterations
    overrides = {"buffer": {"capacity": max(100_000, 2 * n), "prefill_steps": max(1000, n)},
                 "train": {"num_envs": n, "grad_updates_per_iter": 1, "total_env_steps": max(1000, n) + steps,
                           "log_every_env_steps": steps // 3, "eval_every_env_steps": 0,
                           "checkpoint_every_env_steps": 10**9, "batch_size": 128, "num_seeds": args.num_seeds,
                           "seeds_per_device": args.seeds_per_device}}
    if args.history_points is not None:
        overrides["train"]["history_points_per_log"] = args.history_points
    sac = algorithm.get("sac")
    cfg = algorithm.load_config("sac", overrides, devices)
    spec = make_env(cfg.env.id)
    train_table, _ = generate_scenarios(spec, {}, cfg.scenarios.num_train, 1, cfg.seed)
    batch = scenarios_to_batch(train_table, spec, "train")
    state = over_seeds(cfg, lambda seed: sac.init_training_state(cfg, spec, stage_key(seed, "init")))
    prefill = over_seeds(cfg, lambda seed: collect_random(cfg, spec, batch, stage_key(seed, "prefill")))
    hlo = capture_chunk_hlo() if args.inventory else None
    result = training.train(sac, cfg, spec, batch, state, stage_keys(cfg, "train"), device_data=prefill)
    if not mesh.is_primary():
        return
    one = init_buffer(1, spec.obs_dim, spec.action_dim)
    emit({"peer": "ours", "case": "scaling", "num_envs": n, "devices": devices,
          "processes": mesh.process_count(), "local_devices": jax.local_device_count(),
          "num_seeds": args.num_seeds, "seed_groups": Seeds.of(cfg).groups,
          "env_steps_per_s": float(np.median([r["env_steps_per_s"] for r in result.history])),
          "env_steps_per_iteration": plan(sac, cfg).env_steps_per_iter,
          **({"all_reduces": all_reduces(hlo["text"])} if hlo else {}),
          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          "buffer_bytes_per_transition": sum(x.nbytes for x in jax.tree.leaves(one.data)),
          "process_seconds_total": time.perf_counter() - STARTED})


if __name__ == "__main__":
    main()
