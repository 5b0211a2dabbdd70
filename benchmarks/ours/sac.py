"""Our SAC on gymnax Pendulum-v1, measured the way benchmarks/peers measure theirs.

--case threshold: the project default config, evaluated every --eval-every env steps on --eval-episodes held-out
  scenarios (deterministic policy); training seconds (compiled training calls only) and process seconds (since
  this process started: imports and compilation included) until the eval mean first reaches --threshold.
--case throughput: the peers' identical hyperparameters (256x256, batch 256, one env, one gradient step per env
  step): gradient steps/s, XLA's FLOP count of one update, and this machine's matmul throughput for those shapes.
--case halfcheetah: gymnasium:HalfCheetah-v5 (stepped on the host) at conf/sac_halfcheetah's hyperparameters, --steps
  env steps in all (10k random first): gradient steps/s of the training calls and the eval return at the end
  (--eval-episodes held-out scenarios).
--case envspeed: the default config on --env (gymnasium:Pendulum-v1 or gymnax Pendulum-v1): env steps/s of the
  training calls, and the final eval return.
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import (ThresholdWatch, emit, first_crossing, train_through_library, use_compilation_cache,  # noqa: E402
                    versions)

use_compilation_cache(__import__("sys").argv)

from rlpipe.rl import algorithm  # noqa: E402
from rlpipe.rl.acting import Transition  # noqa: E402
from rlpipe.rl.envs import env_spec  # noqa: E402
from rlpipe.rl.sac import algorithm as sac  # noqa: E402

SAC = algorithm.get("sac")


class Reached(Exception):
    """Raised from ``on_progress`` at the first evaluation at or above the threshold: training stops there (what
    an early stopper with window 1 and patience 1 on the eval mean did; SAC's config has no early stopping)."""


def threshold_case(args):
    overrides = {"seed": args.seed, "scenarios": {"num_eval": args.eval_episodes},
                 "train": {"total_env_steps": args.max_env_steps, "log_every_env_steps": args.eval_every,
                           "eval_every_env_steps": args.eval_every, "checkpoint_every_env_steps": 10**9}}
    watch = ThresholdWatch("ours sac", args.threshold, STARTED)
    rows = []

    def on_progress(row):
        rows.append(row)
        watch(row)
        if row["eval_return_mean"] >= args.threshold:
            raise Reached

    try:
        history = train_through_library("sac", overrides, on_progress=on_progress)[1].history
    except Reached:
        history = rows
    hit = first_crossing(history, args.threshold)
    return {
        "reached": hit is not None,
        "env_steps_to_threshold": hit and hit["env_steps"],
        "train_seconds_to_threshold": hit and hit["train_seconds"],
        "process_seconds_to_threshold": watch.process_seconds,
        "env_steps_per_s": history[-1]["env_steps"] / history[-1]["train_seconds"],
        "evals": [[r["env_steps"], r["eval_return_mean"], r["train_seconds"]] for r in history],
    }


def throughput_case(args):
    overrides = {"seed": args.seed, "network": {"hidden_sizes": [256, 256]},
                 "buffer": {"capacity": 100_000, "prefill_steps": 256},
                 "train": {"num_envs": 1, "unroll_length": 1, "batch_size": 256, "grad_updates_per_iter": 1,
                           "total_env_steps": 256 + args.steps, "log_every_env_steps": args.steps // 3,
                           "eval_every_env_steps": 0, "checkpoint_every_env_steps": 10**9}}
    if jax.local_device_count() > 1:
        raise SystemExit("the throughput case is for one device: unset XLA_FLAGS")
    cfg, result, _ = train_through_library("sac", overrides, evaluate=False)
    spec, history = env_spec(cfg.env), result.history
    rates = [r["grad_steps_per_s"] for r in history]
    flops = update_flops(cfg, spec)
    peak = matmul_gflops()
    grad_steps_per_s = float(np.median(rates))
    return {"grad_steps_per_s": grad_steps_per_s, "grad_steps_per_s_chunks": rates,
            "flops_per_grad_step": flops, "achieved_gflops": flops * grad_steps_per_s / 1e9,
            "matmul_gflops_peak": peak, "fraction_of_matmul_peak": flops * grad_steps_per_s / 1e9 / peak}


def halfcheetah_case(args):
    import yaml
    from pathlib import Path

    raw = yaml.safe_load((Path(__file__).parents[2] / "conf/sac_halfcheetah/parameters_sac.yml").read_text())["sac"]
    raw.update(seed=args.seed, scenarios={"num_train": 1024, "num_eval": args.eval_episodes})
    raw["train"].update(total_env_steps=args.steps, log_every_env_steps=5000, eval_every_env_steps=0,
                        checkpoint_every_env_steps=10**9)
    if jax.local_device_count() > 1:
        raise SystemExit("the halfcheetah case is for one device: unset XLA_FLAGS")
    cfg, result, _ = train_through_library("sac", raw)
    history = result.history
    rates = [r["grad_steps_per_s"] for r in history[1:]] or [history[0]["grad_steps_per_s"]]  # chunk 1: warm-up
    return {"env": cfg.env.id, "grad_steps_per_s": float(np.median(rates)), "grad_steps_per_s_chunks": rates,
            "env_steps": history[-1]["env_steps"], "grad_steps": history[-1]["grad_steps"],
            "eval_return": float(np.mean(result.final_evaluation["returns"])),
            "train_seconds": history[-1]["train_seconds"], "eval_seconds": history[-1]["eval_seconds"]}


def envspeed_case(args):
    _, result, _ = train_through_library("sac", {"seed": args.seed, "env": {"id": args.env},
                                                 "train": {"checkpoint_every_env_steps": 10**9}})
    history = result.history
    rates = [r["env_steps_per_s"] for r in history[1:]] or [history[0]["env_steps_per_s"]]
    return {"env": args.env, "env_steps_per_s": float(np.median(rates)), "env_steps_per_s_chunks": rates,
            "eval_return": float(np.mean(result.final_evaluation["returns"])),
            "train_seconds": history[-1]["train_seconds"]}


def update_flops(cfg, spec) -> float:
    """XLA's FLOP count of one SGD update (critics, actor, temperature, targets) on a batch of 256, jitted alone."""
    nets = sac.SACNetworks.build(cfg, spec)
    update = sac.make_update_step(nets, sac.make_optimizer(cfg), 0.99, 0.005, -1.0, axis_name=None)
    state = SAC.init_training_state(cfg, spec, jax.random.PRNGKey(0))
    b = cfg.train.batch_size
    batch = Transition(jnp.zeros((b, spec.obs_dim)), jnp.zeros((b, spec.action_dim)), jnp.zeros(b), jnp.ones(b),
                       jnp.zeros((b, spec.obs_dim)))
    cost = jax.jit(update).lower(state, batch, jax.random.PRNGKey(1)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"])


def matmul_gflops(batch: int = 256, width: int = 256, repeats: int = 64) -> float:
    """This machine's throughput for the update's dominant shape: [batch, width] @ [width, width], chained."""
    w = jax.random.normal(jax.random.PRNGKey(0), (width, width)) / np.sqrt(width)
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, width))

    @jax.jit
    def chain(x, w):
        return jax.lax.fori_loop(0, repeats, lambda _, h: jnp.tanh(h @ w), x)

    chain(x, w).block_until_ready()
    best = float("inf")
    for _ in range(20):
        t = time.perf_counter()
        chain(x, w).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * batch * width * width * repeats / best / 1e9


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=("threshold", "throughput", "halfcheetah", "envspeed"), required=True)
    parser.add_argument("--env", default="Pendulum-v1", help="envspeed case: the env id")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", help="JAX persistent compilation cache (the project's default behaviour)")
    parser.add_argument("--threshold", type=float, default=-200.0)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=16)
    parser.add_argument("--max-env-steps", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    cases = {"threshold": threshold_case, "throughput": throughput_case, "halfcheetah": halfcheetah_case,
             "envspeed": envspeed_case}
    result = cases[args.case](args)
    emit({"peer": "ours", "algo": "sac", "case": args.case, "seed": args.seed, **result,
          "devices": jax.local_device_count(), "versions": versions("jax", "flax", "optax", "gymnax"),
          "process_seconds_total": time.perf_counter() - STARTED})


if __name__ == "__main__":
    main()
